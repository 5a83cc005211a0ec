/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: the control request parser and its parameter getters. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "tdm-ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tdm_ctl_req r;
    const char *const names[] = {"name", "host", "port", "interval_ms", NULL};
    const char *s;
    uint64_t v;
    char err[256];

    tdm_ctl_req_init(&r);
    if (tdm_ctl_req_parse(&r, (const char *)data, size, err, sizeof(err)) == 0) {
        tdm_ctl_params_only(&r, names, err, sizeof(err));
        tdm_ctl_param_str(&r, "name", true, &s, err, sizeof(err));
        tdm_ctl_param_u64(&r, "port", 7390, 1, 65535, &v, err, sizeof(err));
    }
    tdm_ctl_req_dispose(&r);
    return 0;
}
