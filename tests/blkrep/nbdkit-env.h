/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * For tests that run nbdkit with our plugin (tests/blkrep/blkrep-test,
 * tests/unit/test-engine-disk): where the plugin is, and the environment
 * nbdkit needs to load it in a sanitizer build.
 */
#ifndef TDM_TEST_NBDKIT_ENV_H
#define TDM_TEST_NBDKIT_ENV_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* name found in $PATH: its path in out. */
static inline bool tdm_test_find_in_path(const char *name, char *out,
                                         size_t outlen)
{
    const char *path = getenv("PATH");
    char *dup, *save = NULL;
    bool found = false;

    if (!path || !(dup = strdup(path)))
        return false;
    for (char *d = strtok_r(dup, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, outlen, "%s/%s", *d ? d : ".", name);
        found = access(out, X_OK) == 0;
    }
    free(dup);
    return found;
}

/* The plugin in the build tree: $BLKREP_PLUGIN, else below $top_builddir
 * (make check sets it), else up_from_exe (e.g. "../..") above the directory
 * of this test program. Returns 0, or -1 with errno. */
static inline int tdm_test_find_plugin(char *out, size_t len,
                                       const char *up_from_exe)
{
    const char *env = getenv("BLKREP_PLUGIN");
    const char *top = getenv("top_builddir");
    char exe[PATH_MAX - 64];
    ssize_t n;

    if (env) {
        snprintf(out, len, "%s", env);
    } else if (top) {
        snprintf(out, len, "%s/libs/blkrep/nbdkit-tandem-plugin.so", top);
    } else {
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0)
            return -1;
        exe[n] = '\0';
        *strrchr(exe, '/') = '\0';
        snprintf(out, len, "%s/%s/libs/blkrep/nbdkit-tandem-plugin.so", exe,
                 up_from_exe);
    }
    return access(out, R_OK);
}

/* In a sanitizer build (tests/run-all.sh's step 2) the plugin needs the
 * ASan runtime loaded first, which nbdkit does not have: give it ours,
 * through the environment nbdkit inherits. */
#if defined(__SANITIZE_ADDRESS__)
#define TDM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TDM_TEST_ASAN 1
#endif
#endif

static inline void tdm_test_preload_asan(void)
{
#ifdef TDM_TEST_ASAN
    char line[PATH_MAX + 128];
    FILE *f = fopen("/proc/self/maps", "r");

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *path = strchr(line, '/');

        if (path && strstr(path, "/libasan.so")) {
            path[strcspn(path, "\n")] = '\0';
            setenv("LD_PRELOAD", path, 1);
            /* nbdkit's own allocations are not ours to judge */
            setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 1);
            break;
        }
    }
    fclose(f);
#endif
}

#endif
