/* SPDX-License-Identifier: LGPL-2.1-only */
#ifndef XL_TANDEM_H
#define XL_TANDEM_H

#include <stdbool.h>

#include "tdm-ctl.h"

#define XLT_EXIT_USAGE 2
#define XLT_EXIT_FAIL 1

struct xlt {
    const char *socket;
    bool json;
    const struct output *out;
};

/* One output vtable: people by default, JSON with -j. */
struct output {
    void (*list)(yajl_val domains);
    void (*status)(yajl_val domain_or_array);
    void (*done)(const char *message);
    void (*version)(yajl_val info);
};
extern const struct output output_human, output_json;

struct xlt_cmd {
    const char *name;
    int (*fn)(struct xlt *x, int argc, char **argv);
    const char *usage;      /* after "xl-tandem NAME " */
    const char *help;
};
extern const struct xlt_cmd xlt_cmds[];
const struct xlt_cmd *xlt_cmd_find(const char *name);

/* Print "xl-tandem: msg" and the command's usage; returns XLT_EXIT_USAGE. */
int xlt_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Call tandemd; on failure prints the error and returns XLT_EXIT_FAIL. On
 * success *root_r owns *result_r. */
int xlt_call(struct xlt *x, const char *method,
             void (*params)(yajl_gen g, void *arg), void *arg,
             yajl_val *root_r, yajl_val *result_r);
/* The shape of commands taking just <vm>. */
int xlt_by_name(struct xlt *x, const char *cmd, const char *method,
                const char *done_fmt, int argc, char **argv);
bool xlt_valid_vm(const char *s);

int cmd_create(struct xlt *x, int argc, char **argv);
int cmd_protect(struct xlt *x, int argc, char **argv);
int cmd_unprotect(struct xlt *x, int argc, char **argv);
int cmd_failover(struct xlt *x, int argc, char **argv);
int cmd_destroy(struct xlt *x, int argc, char **argv);
int cmd_list(struct xlt *x, int argc, char **argv);
int cmd_status(struct xlt *x, int argc, char **argv);
int cmd_help(struct xlt *x, int argc, char **argv);
int cmd_version(struct xlt *x, int argc, char **argv);
int cmd_xs_protect(struct xlt *x, int argc, char **argv);
int cmd_xs_unprotect(struct xlt *x, int argc, char **argv);
int cmd_xs_list(struct xlt *x, int argc, char **argv);

#endif
