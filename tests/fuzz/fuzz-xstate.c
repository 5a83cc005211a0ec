/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: the xen driver's state blob, which a backup decodes
 * from its primary's epochs (tdm_xstate_decode), and what it then reads
 * out of a blob that passed. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xen-stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tdm_xstate s;
    struct tdm_xbuf b;
    char err[256];
    uint64_t sum = 0;

    if (tdm_xstate_decode(data, size, &s, err, sizeof(err)) < 0)
        return 0;
    /* everything a decoded blob points at is inside it */
    for (uint32_t i = 0; i < s.slot_count; i++)
        sum += tdm_xstate_slot_pfn(&s, i);
    tdm_xbuf_init(&b);
    for (unsigned i = 0; i < s.nrec; i++)
        tdm_xrec_put(&b, s.rec[i].type, s.rec[i].body, s.rec[i].len);
    if (s.config_len)
        sum += s.config[s.config_len - 1];
    tdm_xbuf_dispose(&b);
    return (int)(sum & 0);
}
