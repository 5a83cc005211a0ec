/* SPDX-License-Identifier: LGPL-2.1-only */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tdm-cfg.h"
#include "tdm-util.h"
#include "xl-tandem.h"

static void params(yajl_gen g, void *arg)
{
    tdm_ctl_gen_kv_str(g, "config", arg);
}

int cmd_create(struct xlt *x, int argc, char **argv)
{
    struct tdm_cfg cfg;
    yajl_val root, result;
    char err[512], msg[128];
    const char *name;
    int rc;

    if (argc != 2)
        return xlt_usage_error("create", "create takes one configuration "
                               "file");
    tdm_cfg_init(&cfg);
    /* Parse here too: a syntax error is reported with the file's name. */
    if (tdm_cfg_parse_file(&cfg, argv[1], err, sizeof(err)) < 0) {
        fprintf(stderr, "xl-tandem: %s\n", err);
        return XLT_EXIT_USAGE;
    }
    name = tdm_cfg_get(&cfg, "name");
    snprintf(msg, sizeof(msg), "%s: created", name ? name : "?");
    rc = xlt_call(x, "create", params, cfg.text, &root, &result);
    if (!rc) {
        x->out->done(msg);
        yajl_tree_free(root);
    }
    tdm_cfg_dispose(&cfg);
    return rc;
}
