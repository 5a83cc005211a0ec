/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xen-capture-bench: tandem's pause on a real Xen domain, epoch after
 * epoch, without the network (libs/driver/xen/xc-capture.c): pause in the
 * hypervisor, dirty bitmap, copy of the dirty frames into staging, HVM
 * context, unpause.
 *
 *   xen-capture-bench DOMID [-i INTERVAL_MS] [-d SECONDS]
 *
 * Prints one line per epoch ("epoch N pause_us P dirty D") and RESULT
 * lines: epochs, epochs per second, pause median/p99 (ms), dirty pages
 * median, first (full) copy.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tdm-util.h"
#include "xc-capture.h"

int main(int argc, char **argv)
{
    struct tdm_xc_capture *c = NULL;
    struct tdm_staging st;
    struct tdm_xc_epoch_stats s;
    struct tdm_stat pause, dirty;
    uint64_t domid, iv = 100, secs = 20, t_end, t_start, n = 0;
    char err[256];
    int opt;

    while ((opt = getopt(argc, argv, "i:d:")) != -1) {
        if ((opt == 'i' && tdm_parse_u64(optarg, 1, 10000, &iv) < 0) ||
            (opt == 'd' && tdm_parse_u64(optarg, 1, 3600, &secs) < 0) ||
            (opt != 'i' && opt != 'd')) {
            fprintf(stderr, "usage: xen-capture-bench DOMID [-i MS] [-d S]\n");
            return 2;
        }
    }
    if (optind + 1 != argc || tdm_parse_u64(argv[optind], 0, 0x7fef, &domid) < 0) {
        fprintf(stderr, "usage: xen-capture-bench DOMID [-i MS] [-d S]\n");
        return 2;
    }
    tdm_log_init("xen-capture-bench", true, TDM_LOG_INFO);
    if (tdm_xc_capture_open((uint32_t)domid, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "xen-capture-bench: %s\n", err);
        return 1;
    }
    tdm_staging_init(&st);
    /* Twice the domain: the first epoch stages every frame live, then
     * those written meanwhile again. */
    if (tdm_staging_alloc_sparse(&st, 2 * tdm_xc_capture_npages(c),
                                 TDM_MAX(tdm_xc_capture_p2m_size(c),
                                         2 * tdm_xc_capture_npages(c))) < 0)
        return 1;
    printf("# domain %" PRIu64 ": p2m %" PRIu64 " frames, staging %" PRIu64 "\n",
           domid, tdm_xc_capture_p2m_size(c), tdm_xc_capture_npages(c));
    tdm_stat_init(&pause);
    tdm_stat_init(&dirty);
    tdm_staging_reset(&st, 0);
    if (tdm_xc_capture_epoch(c, &st, &s) < 0)
        return 1;
    printf("RESULT first_live_pages=%" PRIu64 " first_paused_pages=%" PRIu64
           " first_pause_ms=%.1f hvm_ctx_bytes=%u\n", s.live, s.dirty,
           s.pause_ns / 1e6, s.hvm_ctx_len);
    t_start = tdm_now_ns();
    t_end = t_start + secs * 1000000000ull;
    while (tdm_now_ns() < t_end) {
        struct timespec ts = { (time_t)(iv / 1000), (long)(iv % 1000) * 1000000 };
        nanosleep(&ts, NULL);
        tdm_staging_reset(&st, ++n);
        if (tdm_xc_capture_epoch(c, &st, &s) < 0)
            return 1;
        tdm_stat_add(&pause, s.pause_ns);
        tdm_stat_add(&dirty, s.dirty);
        printf("epoch %" PRIu64 " pause_us %" PRIu64 " dirty %" PRIu64 "\n", n,
               s.pause_ns / 1000, s.dirty);
    }
    printf("RESULT tandem_epochs=%" PRIu64 " tandem_epochs_per_s=%.2f "
           "tandem_pause_median_ms=%.2f tandem_pause_p99_ms=%.2f "
           "tandem_dirty_median=%" PRIu64 "\n", n,
           n / ((tdm_now_ns() - t_start) / 1e9),
           tdm_stat_pct(&pause, 50) / 1e6, tdm_stat_pct(&pause, 99) / 1e6,
           tdm_stat_pct(&dirty, 50));
    tdm_xc_capture_close(c);
    tdm_staging_dispose(&st);
    return 0;
}
