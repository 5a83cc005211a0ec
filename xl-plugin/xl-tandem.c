/* SPDX-License-Identifier: LGPL-2.1-only */
/* xl-tandem: the xl-style command line of tandem. See xl-tandem(1). */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tdm-util.h"
#include "xl-tandem.h"

#define CALL_TIMEOUT_MS 10000
/* create attaches: for a Xen domain with a disk that runs nbd-client and
 * libxl's hotplug scripts, seconds on a loaded dom0 */
#define CREATE_TIMEOUT_MS 120000

int xlt_usage_error(const char *cmd, const char *fmt, ...)
{
    const struct xlt_cmd *c = cmd ? xlt_cmd_find(cmd) : NULL;
    va_list ap;

    fprintf(stderr, "xl-tandem: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c)
        fprintf(stderr, "usage: xl-tandem %s %s\n", c->name, c->usage);
    else
        fprintf(stderr, "usage: xl-tandem [-s SOCKET] [-j] COMMAND ... "
                "(xl-tandem help)\n");
    return XLT_EXIT_USAGE;
}

bool xlt_valid_vm(const char *s)
{
    return tdm_valid_name(s);
}

int xlt_call(struct xlt *x, const char *method,
             void (*params)(yajl_gen g, void *arg), void *arg,
             yajl_val *root_r, yajl_val *result_r)
{
    char err[1024], *reply = NULL, *req;
    size_t len;
    bool ok;
    int rc = XLT_EXIT_FAIL;

    req = tdm_ctl_request(method, params, arg, &len);
    if (tdm_ctl_call(x->socket, req, len,
                     strcmp(method, "create") ? CALL_TIMEOUT_MS
                                              : CREATE_TIMEOUT_MS,
                     &reply, err, sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        goto out;
    }
    if (tdm_ctl_reply_parse(reply, root_r, &ok, result_r, err,
                            sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        goto out;
    }
    if (!ok) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        yajl_tree_free(*root_r);
        *root_r = NULL;
        goto out;
    }
    rc = 0;
out:
    free(req);
    free(reply);
    return rc;
}

static void name_param(yajl_gen g, void *arg)
{
    tdm_ctl_gen_kv_str(g, "name", arg);
}

int xlt_by_name(struct xlt *x, const char *cmd, const char *method,
                const char *done_fmt, int argc, char **argv)
{
    yajl_val root, result;
    char msg[256];

    if (argc != 2)
        return xlt_usage_error(cmd, "%s takes exactly one domain name", cmd);
    if (!xlt_valid_vm(argv[1]))
        return xlt_usage_error(cmd, "'%s' is not a domain name", argv[1]);
    if (xlt_call(x, method, name_param, argv[1], &root, &result))
        return XLT_EXIT_FAIL;
    snprintf(msg, sizeof(msg), done_fmt, argv[1]);
    x->out->done(msg);
    yajl_tree_free(root);
    return 0;
}

int cmd_help(struct xlt *x, int argc, char **argv)
{
    const struct xlt_cmd *c;

    if (argc > 2)
        return xlt_usage_error("help", "help takes at most one command");
    if (argc == 2) {
        c = xlt_cmd_find(argv[1]);
        if (!c)
            return xlt_usage_error("help", "unknown command '%s'", argv[1]);
        printf("usage: xl-tandem %s %s\n\n%s\n", c->name, c->usage, c->help);
        return 0;
    }
    printf("usage: xl-tandem [-s SOCKET] [-j] COMMAND [ARGS]\n\n"
           "  -s SOCKET  tandemd's control socket (default %s/tandem/"
           "tandemd.sock)\n  -j         JSON output\n\ncommands:\n",
           TDM_RUNSTATEDIR);
    for (c = xlt_cmds; c->name; c++)
        printf("  %-10s %s\n", c->name, c->usage);
    printf("\n'xl-tandem help COMMAND' for more.\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct xlt x = {.socket = TDM_RUNSTATEDIR "/tandem/tandemd.sock"};
    const struct xlt_cmd *c;
    int ch;

    while ((ch = getopt(argc, argv, "+s:jh")) != -1) {
        switch (ch) {
        case 's': x.socket = optarg; break;
        case 'j': x.json = true; break;
        case 'h': return cmd_help(&x, 1, argv);
        default: return xlt_usage_error(NULL, "bad option");
        }
    }
    if (optind >= argc)
        return xlt_usage_error(NULL, "no command given");
    c = xlt_cmd_find(argv[optind]);
    if (!c)
        return xlt_usage_error(NULL, "unknown command '%s'", argv[optind]);
    argc -= optind;
    argv += optind;
    /* "status -j" as well as "-j status" */
    if (argc >= 2 && !strcmp(argv[1], "-j") && !strcmp(c->name, "status")) {
        x.json = true;
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    x.out = x.json ? &output_json : &output_human;
    optind = 1;
    return c->fn(&x, argc, argv);
}
