/* SPDX-License-Identifier: LGPL-2.1-only */
/* The xen driver's pure parts (libs/driver/xen/xen-stream.c), without Xen. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tdm-util.h"
#include "xen-stream.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The stream head byte for byte, as the specs lay it out. */
static void test_stream_head(void **state)
{
    static const uint8_t libxl_ident[8] = {'L', 'i', 'b', 'x', 'l', 'F',
                                           'm', 't'};
    struct tdm_xbuf b;

    tdm_xbuf_init(&b);
    tdm_xstream_head(&b, 4, 17);
    assert_int_equal(b.len, 16 + 8 + 24 + 16);
    assert_memory_equal(b.p, libxl_ident, 8);
    assert_int_equal(be32(b.p + 8), 2);             /* libxl version */
    assert_int_equal(be32(b.p + 12), 0);            /* little-endian */
    assert_int_equal(tdm_get_le32(b.p + 16), TDM_XLREC_LIBXC_CONTEXT);
    assert_int_equal(tdm_get_le32(b.p + 20), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(b.p[24 + i], 0xff);        /* marker */
    assert_memory_equal(b.p + 32, "XENF", 4);
    assert_int_equal(be32(b.p + 36), 3);
    assert_int_equal(b.p[40] | b.p[41], 0);         /* options */
    assert_int_equal(tdm_get_le32(b.p + 48), 2);    /* x86 HVM */
    assert_int_equal(tdm_get_le16(b.p + 52), 12);   /* page shift */
    assert_int_equal(tdm_get_le32(b.p + 56), 4);
    assert_int_equal(tdm_get_le32(b.p + 60), 17);
    tdm_xbuf_dispose(&b);
    tdm_xbuf_dispose(&b);   /* idempotent */
}

static void test_record_padding(void **state)
{
    struct tdm_xbuf b;
    uint8_t body[13];

    memset(body, 0xab, sizeof(body));
    tdm_xbuf_init(&b);
    tdm_xrec_put(&b, 0x42, body, sizeof(body));
    assert_int_equal(b.len, 8 + 16);
    assert_int_equal(tdm_get_le32(b.p), 0x42);
    assert_int_equal(tdm_get_le32(b.p + 4), 13);
    assert_memory_equal(b.p + 8, body, 13);
    for (size_t i = 8 + 13; i < b.len; i++)
        assert_int_equal(b.p[i], 0);
    tdm_xstream_checkpoint(&b);
    assert_int_equal(b.len, 24 + 16);
    assert_int_equal(tdm_get_le32(b.p + 24), TDM_XREC_CHECKPOINT);
    assert_int_equal(tdm_get_le32(b.p + 32), TDM_XLREC_CHECKPOINT_END);
    tdm_xbuf_dispose(&b);
}

static void test_page_data(void **state)
{
    struct tdm_xbuf b;
    uint64_t pfns[3] = {0, 0xfeff0, 7};
    uint8_t *data = tdm_malloc(3 * TDM_XPAGE_SIZE);

    for (int i = 0; i < 3; i++)
        memset(data + i * TDM_XPAGE_SIZE, 'a' + i, TDM_XPAGE_SIZE);
    tdm_xbuf_init(&b);
    assert_int_equal(tdm_xrec_page_data(&b, pfns, data, 3), 0);
    assert_int_equal(b.len, 8 + 8 + 3 * 8 + 3 * TDM_XPAGE_SIZE);
    assert_int_equal(b.len, tdm_xstream_epoch_size(3) - 16);
    assert_int_equal(tdm_get_le32(b.p), TDM_XREC_PAGE_DATA);
    assert_int_equal(tdm_get_le32(b.p + 4), b.len - 8);
    assert_int_equal(tdm_get_le32(b.p + 8), 3);
    assert_int_equal(tdm_get_le32(b.p + 12), 0);
    assert_int_equal(tdm_get_le64(b.p + 24), 0xfeff0);  /* type bits 0 */
    assert_int_equal(b.p[16 + 24], 'a');
    assert_int_equal(b.p[16 + 24 + 2 * TDM_XPAGE_SIZE], 'c');
    /* bad counts and frames are refused, and nothing is written */
    assert_int_equal(tdm_xrec_page_data(&b, pfns, data, 0), -1);
    assert_int_equal(tdm_xrec_page_data(&b, pfns, data, TDM_XPAGE_BATCH + 1),
                     -1);
    pfns[1] = TDM_XPFN_LIMIT;
    assert_int_equal(tdm_xrec_page_data(&b, pfns, data, 3), -1);
    assert_int_equal(b.len, 8 + 8 + 3 * 8 + 3 * TDM_XPAGE_SIZE);
    /* the head alone, with the pages after it, is the same record */
    {
        struct tdm_xbuf h;

        pfns[1] = 0xfeff0;
        tdm_xbuf_init(&h);
        assert_int_equal(tdm_xrec_page_data_head(&h, pfns, 3), 0);
        assert_int_equal(h.len, 16 + 3 * 8);
        tdm_xbuf_put(&h, data, 3 * TDM_XPAGE_SIZE);
        assert_int_equal(h.len, b.len);
        assert_memory_equal(h.p, b.p, b.len);
        h.len = 0;
        assert_int_equal(tdm_xrec_page_data_head(&h, pfns, 0), -1);
        pfns[2] = TDM_XPFN_LIMIT;
        assert_int_equal(tdm_xrec_page_data_head(&h, pfns, 3), -1);
        assert_int_equal(h.len, 0);
        tdm_xbuf_dispose(&h);
    }
    tdm_xbuf_dispose(&b);
    free(data);
}

/* A blob as the primary writes one. */
static void make_blob(struct tdm_xbuf *b, uint16_t flags, bool config)
{
    uint8_t tsc[24] = {1}, ctx[100], params[8 + 2 * 16];

    memset(ctx, 0x5a, sizeof(ctx));
    memset(params, 0, sizeof(params));
    tdm_put_le32(params, 2);
    tdm_put_le64(params + 8, 1);                /* STORE_PFN */
    tdm_put_le64(params + 16, 0xfeffc);
    tdm_put_le64(params + 24, 17);              /* CONSOLE_PFN */
    tdm_put_le64(params + 32, 0xfeffb);
    tdm_xstate_begin(b, flags);
    if (config) {
        uint8_t cpuid[48] = {0}, msr[16] = {0};
        const char *json = "{\"c_info\": {\"name\": \"g\"}}";
        tdm_xrec_put(b, TDM_XREC_TDM_DOMCONFIG, json, (uint32_t)strlen(json));
        tdm_xrec_put(b, TDM_XREC_X86_CPUID_POLICY, cpuid, sizeof(cpuid));
        tdm_xrec_put(b, TDM_XREC_X86_MSR_POLICY, msr, sizeof(msr));
    }
    tdm_xrec_put(b, TDM_XREC_X86_TSC_INFO, tsc, sizeof(tsc));
    tdm_xrec_put(b, TDM_XREC_HVM_PARAMS, params, sizeof(params));
    tdm_xrec_put(b, TDM_XREC_HVM_CONTEXT, ctx, sizeof(ctx));
    tdm_xstate_finish(b);
}

static void test_state_roundtrip(void **state)
{
    struct tdm_xbuf b;
    struct tdm_xslots sl;
    struct tdm_xstate s;
    uint32_t slot;
    char err[256];

    tdm_xbuf_init(&b);
    tdm_xslots_init(&sl);
    assert_int_equal(tdm_xslots_alloc(&sl, 1u << 20, 8), 0);
    assert_int_equal(tdm_xslots_get(&sl, 0xfeffc, &slot), 0);
    assert_int_equal(slot, 0);
    assert_int_equal(tdm_xslots_get(&sl, 3, &slot), 0);
    assert_int_equal(slot, 1);
    assert_int_equal(tdm_xslots_get(&sl, 0xfeffc, &slot), 0);
    assert_int_equal(slot, 0);

    tdm_xstate_begin(&b, TDM_XSTATE_FULL);
    tdm_xslots_put_new(&sl, &b);
    b.len = 0;          /* make_blob starts over; keep the slots sent */
    make_blob(&b, TDM_XSTATE_FULL | TDM_XSTATE_COOP, true);
    assert_int_equal(tdm_xstate_decode(b.p, b.len, &s, err, sizeof(err)), 0);
    assert_int_equal(s.flags, TDM_XSTATE_FULL | TDM_XSTATE_COOP);
    assert_non_null(s.config);
    assert_int_equal(s.cpuid.len, 48);
    assert_int_equal(s.msr.len, 16);
    assert_int_equal(s.nrec, 3);
    assert_int_equal(s.rec[0].type, TDM_XREC_X86_TSC_INFO);
    assert_int_equal(s.rec[2].type, TDM_XREC_HVM_CONTEXT);
    assert_int_equal(s.rec[2].len, 100);
    assert_int_equal(s.slot_count, 0);

    /* a later epoch: new slots only */
    assert_int_equal(tdm_xslots_get(&sl, 9, &slot), 0);
    assert_int_equal(slot, 2);
    tdm_xstate_begin(&b, 0);
    tdm_xslots_put_new(&sl, &b);
    tdm_xslots_put_new(&sl, &b);        /* nothing new: no record */
    {
        uint8_t ctx[8] = {1};
        tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, ctx, sizeof(ctx));
    }
    tdm_xstate_finish(&b);
    assert_int_equal(tdm_xstate_decode(b.p, b.len, &s, err, sizeof(err)), 0);
    assert_int_equal(s.slot_first, 2);
    assert_int_equal(s.slot_count, 1);
    assert_int_equal(tdm_xstate_slot_pfn(&s, 0), 9);
    assert_null(s.config);

    /* slots run out; frames past the end have none */
    for (uint64_t f = 100; f < 105; f++)
        assert_int_equal(tdm_xslots_get(&sl, f, &slot), 0);
    assert_int_equal(tdm_xslots_get(&sl, 200, &slot), -1);
    assert_int_equal(tdm_xslots_get(&sl, 1u << 20, &slot), -1);
    tdm_xslots_reset(&sl);
    assert_int_equal(tdm_xslots_get(&sl, 200, &slot), 0);
    assert_int_equal(slot, 0);
    tdm_xslots_dispose(&sl);
    tdm_xslots_dispose(&sl);
    tdm_xbuf_dispose(&b);
}

static int decode(struct tdm_xbuf *b, char *err, size_t errlen)
{
    struct tdm_xstate s;
    return tdm_xstate_decode(b->p, b->len, &s, err, errlen);
}

/* Every way a blob can be wrong is refused with a message. */
static void test_state_rejects(void **state)
{
    struct tdm_xbuf b;
    struct tdm_xstate s;
    char err[256];
    uint8_t body[40];

    tdm_xbuf_init(&b);
    make_blob(&b, 0, false);
    assert_int_equal(decode(&b, err, sizeof(err)), 0);
    /* every truncation */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(tdm_xstate_decode(b.p, n, &s, err, sizeof(err)), -1);
    /* every single bit flip either fails or decodes to something in
     * bounds (pfns, lengths); never reads outside */
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.p[i] ^= (uint8_t)(1u << bit);
            if (tdm_xstate_decode(b.p, b.len, &s, err, sizeof(err)) == 0)
                for (unsigned r = 0; r < s.nrec; r++)
                    assert_true(s.rec[r].body + s.rec[r].len <= b.p + b.len);
            b.p[i] ^= (uint8_t)(1u << bit);
        }
    }

    /* bad magic, version, flags */
    b.p[0] ^= 1;
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    b.p[0] ^= 1;
    b.p[4] = 2;
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version"));
    b.p[4] = 1;
    b.p[6] = 0x80;
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "flags"));

    /* config in a non-full epoch */
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_TDM_DOMCONFIG, "{}", 2);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "outside a full"));

    /* a full epoch without config */
    make_blob(&b, TDM_XSTATE_FULL, false);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "configuration"));

    /* no context */
    tdm_xstate_begin(&b, 0);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HVM_CONTEXT"));

    /* two contexts */
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "two"));

    /* unknown record (e.g. PAGE_DATA, which never belongs in a blob) */
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_PAGE_DATA, "12345678", 8);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown record"));

    /* TSC_INFO of the wrong size */
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_X86_TSC_INFO, body, 16);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "X86_TSC_INFO"));

    /* HVM parameter a migration never carries (CALLBACK_IRQ = 0) */
    memset(body, 0, sizeof(body));
    tdm_put_le32(body, 1);
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_HVM_PARAMS, body, 24);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HVM parameter 0"));

    /* HVM_PARAMS whose count disagrees with its length */
    tdm_put_le32(body, 2);
    tdm_put_le64(body + 8, 1);
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_HVM_PARAMS, body, 24);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);

    /* slots: a frame beyond 52-bit addresses; a count past the body */
    tdm_put_le32(body, 0);
    tdm_put_le32(body + 4, 1);
    tdm_put_le64(body + 8, TDM_XPFN_LIMIT);
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_TDM_SLOTS, body, 16);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a guest frame"));
    tdm_put_le64(body + 8, 5);
    tdm_put_le32(body + 4, 0x20000000);
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_TDM_SLOTS, body, 16);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    /* a full epoch's slots start at 0 */
    tdm_put_le32(body, 3);
    tdm_put_le32(body + 4, 1);
    tdm_xstate_begin(&b, TDM_XSTATE_FULL);
    tdm_xrec_put(&b, TDM_XREC_TDM_DOMCONFIG, "{}", 2);
    tdm_xrec_put(&b, TDM_XREC_TDM_SLOTS, body, 16);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "start"));

    /* a NUL inside the configuration */
    tdm_xstate_begin(&b, TDM_XSTATE_FULL);
    tdm_xrec_put(&b, TDM_XREC_TDM_DOMCONFIG, "{\0}", 3);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);

    /* nonzero padding; a length running past the end */
    tdm_xstate_begin(&b, 0);
    tdm_xrec_put(&b, TDM_XREC_HVM_CONTEXT, "x", 1);
    tdm_xstate_finish(&b);
    b.p[TDM_XSTATE_HDR + 8 + 3] = 1;
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "padding"));
    b.p[TDM_XSTATE_HDR + 8 + 3] = 0;
    tdm_put_le32(b.p + TDM_XSTATE_HDR + 4, 0xfffffff0u);
    assert_int_equal(decode(&b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "overruns"));
    tdm_xbuf_dispose(&b);
}

static void test_bitmap_collect(void **state)
{
    const unsigned w = 8 * sizeof(unsigned long);
    unsigned long bm[4] = {0};
    uint64_t out[8], pos = 0;
    size_t n;

    bm[0] = 1ul | (1ul << (w - 1));
    bm[1] = 0;
    bm[2] = 1ul << 3;
    bm[3] = ~0ul;           /* bits past nbits must not come out */
    n = tdm_xbm_collect(bm, 3 * w + 2, &pos, out, 2);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], w - 1);
    n = tdm_xbm_collect(bm, 3 * w + 2, &pos, out, 8);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 2 * w + 3);
    assert_int_equal(out[1], 3 * w);
    assert_int_equal(out[2], 3 * w + 1);
    assert_int_equal(pos, 3 * w + 2);
    assert_int_equal(tdm_xbm_collect(bm, 3 * w + 2, &pos, out, 8), 0);
    /* nbits inside a word with higher bits set */
    pos = 0;
    n = tdm_xbm_collect(bm, 5, &pos, out, 8);
    assert_int_equal(n, 1);
    assert_int_equal(pos, 5);
    /* an empty bitmap */
    memset(bm, 0, sizeof(bm));
    pos = 0;
    assert_int_equal(tdm_xbm_collect(bm, 4 * w, &pos, out, 8), 0);
    assert_int_equal(pos, 4 * w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_head),
        cmocka_unit_test(test_record_padding),
        cmocka_unit_test(test_page_data),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_rejects),
        cmocka_unit_test(test_bitmap_collect),
    };

    tdm_log_init("test-xen-stream", true, TDM_LOG_ERR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
