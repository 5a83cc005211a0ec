/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: tandem-xenstore(7) entries as tandemd reads them. The
 * input is split at NUL bytes into a name and key/value pairs; whatever
 * passes must render a domain configuration that parses back. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tdm-cfg.h"
#include "tdm-xsconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *parts[17];
    const char *keys[8], *vals[8];
    size_t np = 0, n;
    struct tdm_xsconf c;
    char err[256], cfg[1024];

    memcpy(buf, data, size);
    buf[size] = '\0';
    parts[np++] = buf;
    for (size_t i = 0; i < size && np < 17; i++)
        if (!buf[i])
            parts[np++] = buf + i + 1;
    n = (np - 1) / 2;
    for (size_t i = 0; i < n; i++) {
        keys[i] = parts[1 + 2 * i];
        vals[i] = parts[2 + 2 * i];
    }
    if (tdm_xsconf_parse(parts[0], keys, vals, n, &c, err, sizeof(err)) == 0 &&
        tdm_xsconf_domain_cfg(&c, cfg, sizeof(cfg)) == 0) {
        struct tdm_cfg p;
        tdm_cfg_init(&p);
        if (tdm_cfg_parse(&p, cfg, strlen(cfg), err, sizeof(err)) < 0)
            abort();    /* a checked entry must render a valid file */
        if (strcmp(tdm_cfg_get(&p, "domain"), c.domain))
            abort();
        tdm_cfg_dispose(&p);
    }
    free(buf);
    return 0;
}
