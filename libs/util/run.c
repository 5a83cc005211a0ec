/* SPDX-License-Identifier: LGPL-2.1-only */
/* Running a helper program (iptables, nbd-client) and reading its output. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tdm-util.h"

extern char **environ;

int tdm_run(char *const argv[], char *out, size_t outlen, char *err,
            size_t errlen)
{
    posix_spawn_file_actions_t fa;
    int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 };
    char ebuf[512];
    size_t olen = 0, elen = 0;
    pid_t pid;
    int status, r, rc = -1;
    struct pollfd pf[2];

    if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
        tdm_errf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
    r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(opipe[1]);
    close(epipe[1]);
    opipe[1] = epipe[1] = -1;
    if (r != 0) {
        tdm_errf(err, errlen, "cannot run %s: %s", argv[0], strerror(r));
        goto out;
    }
    /* Drain both pipes until both are closed, so a chatty child never
     * blocks on a full pipe. */
    pf[0] = (struct pollfd){ .fd = opipe[0], .events = POLLIN };
    pf[1] = (struct pollfd){ .fd = epipe[0], .events = POLLIN };
    while (pf[0].fd >= 0 || pf[1].fd >= 0) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            char tmp[4096];
            ssize_t n;

            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(pf[i].fd, tmp, sizeof(tmp));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                pf[i].fd = -1;
                continue;
            }
            if (i == 0 && out && olen + 1 < outlen) {
                size_t k = TDM_MIN((size_t)n, outlen - 1 - olen);
                memcpy(out + olen, tmp, k);
                olen += k;
            } else if (i == 1 && elen + 1 < sizeof(ebuf)) {
                size_t k = TDM_MIN((size_t)n, sizeof(ebuf) - 1 - elen);
                memcpy(ebuf + elen, tmp, k);
                elen += k;
            }
        }
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            tdm_errf(err, errlen, "waitpid %s: %s", argv[0], strerror(errno));
            goto out;
        }
    if (out)
        out[olen] = '\0';
    ebuf[elen] = '\0';
    if (!WIFEXITED(status)) {
        tdm_errf(err, errlen, "%s killed by signal %d", argv[0],
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        goto out;
    }
    rc = WEXITSTATUS(status);
    if (rc != 0) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        tdm_errf(err, errlen, "%s exited with %d: %s", argv[0], rc,
                 ebuf[0] ? ebuf : "(no message)");
    }
out:
    for (int i = 0; i < 2; i++) {
        if (opipe[i] >= 0)
            close(opipe[i]);
        if (epipe[i] >= 0)
            close(epipe[i]);
    }
    return rc;
}
