/* SPDX-License-Identifier: LGPL-2.1-only */
/* The two outputs: for people (tables like xl list) and JSON (-j). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "tdm-util.h"
#include "xl-tandem.h"

static yajl_val get(yajl_val o, const char *k)
{
    const char *path[] = {k, NULL};
    return o ? yajl_tree_get(o, path, yajl_t_any) : NULL;
}

static const char *str(yajl_val o, const char *k)
{
    yajl_val v = get(o, k);
    return v && YAJL_IS_STRING(v) ? v->u.string : "-";
}

static long long num(yajl_val o, const char *k)
{
    yajl_val v = get(o, k);
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

/* ---- people ---- */

static void h_list(yajl_val a)
{
    printf("%-20s %-6s %-8s %-12s %-22s %10s\n", "Name", "Driver", "Role",
           "State", "Peer", "Epoch");
    for (size_t i = 0; a && YAJL_IS_ARRAY(a) && i < a->u.array.len; i++) {
        yajl_val d = a->u.array.values[i];
        printf("%-20s %-6s %-8s %-12s %-22s %10lld\n", str(d, "name"),
               str(d, "driver"), str(d, "role"), str(d, "state"),
               *str(d, "peer") ? str(d, "peer") : "-", num(d, "epoch"));
    }
}

static void h_stat(yajl_val d, const char *k, const char *label, double div,
                   const char *unit)
{
    yajl_val s = get(d, k);

    if (!s || !num(s, "count"))
        return;
    printf("  %-14s median %.3g %s, p99 %.3g %s, max %.3g %s (%lld samples)\n",
           label, (double)num(s, "median") / div, unit,
           (double)num(s, "p99") / div, unit, (double)num(s, "max") / div,
           unit, num(s, "count"));
}

/* Disk replication (tandem-domain.cfg(5): disk). */
static void h_disk(yajl_val k)
{
    long long total, done;

    if (!k || !YAJL_IS_OBJECT(k))
        return;
    total = num(k, "sync_total");
    done = num(k, "sync_done");
    printf("  disk           %s, %lld MiB; %lld changes (%lld KiB) "
           "replicated\n", str(k, "state"), num(k, "size") >> 20,
           num(k, "records"), num(k, "bytes") >> 10);
    if (num(k, "syncs") || num(k, "resyncs"))
        printf("  disk sync      %lld/%lld MiB read (%lld%%), %lld MiB sent, "
               "%lld full and %lld partial syncs\n", done >> 20,
               total >> 20, total ? done * 100 / total : 100,
               num(k, "sync_sent") >> 20, num(k, "syncs"),
               num(k, "resyncs"));
    if (num(k, "held_records") || num(k, "committed_epoch"))
        printf("  disk writes    %lld held (%lld KiB), committed up to "
               "epoch %lld\n", num(k, "held_records"),
               num(k, "held_bytes") >> 10, num(k, "committed_epoch"));
}

static void h_domain(yajl_val d)
{
    yajl_val o = get(d, "output");

    printf("%s: %s, %s (driver %s, %lld pages)\n", str(d, "name"),
           str(d, "role"), str(d, "state"), str(d, "driver"), num(d, "pages"));
    if (*str(d, "peer"))
        printf("  peer           %s\n", str(d, "peer"));
    printf("  epochs         %lld (last %lld, acked %lld), every %lld ms; "
           "heartbeat %lld ms, timeout %lld ms\n", num(d, "epochs"),
           num(d, "epoch"), num(d, "acked_epoch"), num(d, "interval_ms"),
           num(d, "heartbeat_ms"), num(d, "timeout_ms"));
    if (num(d, "syncs"))
        printf("  initial sync   %lld pages, pause %.3g ms (%lld syncs; not "
               "in the figures below)\n", num(d, "sync_pages"),
               (double)num(d, "sync_pause_ns") / 1e6, num(d, "syncs"));
    if (num(d, "sync_live_steps"))
        printf("  live copy      %.3g ms in %lld steps, the longest %.3g ms "
               "(the guest running)\n",
               (double)num(d, "sync_live_ns") / 1e6,
               num(d, "sync_live_steps"),
               (double)num(d, "sync_live_step_max_ns") / 1e6);
    h_stat(d, "pause_ns", "pause", 1000.0, "us");
    h_stat(d, "dirty_pages", "dirty pages", 1.0, "");
    h_stat(d, "epoch_bytes", "epoch bytes", 1024.0, "KiB");
    h_stat(d, "ack_ns", "ack after", 1000.0, "us");
    h_stat(d, "apply_ns", "apply", 1000.0, "us");
    if (o)
        printf("  output (%s) %lld held (%lld bytes), %lld released, "
               "%lld discarded, %lld pushed back, %lld dropped (queue full)\n",
               str(o, "mechanism"), num(o, "held_frames"),
               num(o, "held_bytes"), num(o, "released_frames"),
               num(o, "discarded_frames"), num(o, "backpressure"),
               num(o, "dropped_frames"));
    if (num(d, "rejected_frames") || num(d, "torn_epochs"))
        printf("  rejected       %lld frames, %lld torn epochs dropped\n",
               num(d, "rejected_frames"), num(d, "torn_epochs"));
    if (num(d, "failovers"))
        printf("  failovers      %lld\n", num(d, "failovers"));
    h_disk(get(d, "disk"));
}

static void h_status(yajl_val v)
{
    if (v && YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            h_domain(v->u.array.values[i]);
        if (!v->u.array.len)
            printf("no domains\n");
    } else {
        h_domain(v);
    }
}

static void h_done(const char *msg) { printf("%s\n", msg); }

static void h_version(yajl_val v)
{
    printf("xl-tandem %s\ntandemd %s (drivers: %s; replication port %lld)\n",
           PACKAGE_VERSION, str(v, "version"), str(v, "drivers"),
           num(v, "replication_port"));
}

const struct output output_human = {h_list, h_status, h_done, h_version};

/* ---- JSON ---- */

static void gen(yajl_gen g, yajl_val v)
{
    if (!v || YAJL_IS_NULL(v)) {
        yajl_gen_null(g);
    } else if (YAJL_IS_STRING(v)) {
        tdm_ctl_gen_str(g, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            gen(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            tdm_ctl_gen_str(g, v->u.object.keys[i]);
            gen(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    }
}

static void j_print(yajl_val v)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t len;

    gen(g, v);
    yajl_gen_get_buf(g, &buf, &len);
    printf("%.*s\n", (int)len, buf);
    yajl_gen_free(g);
}

static void j_done(const char *msg)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t len;

    yajl_gen_map_open(g);
    tdm_ctl_gen_kv_str(g, "result", msg);
    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &buf, &len);
    printf("%.*s\n", (int)len, buf);
    yajl_gen_free(g);
}

const struct output output_json = {j_print, j_print, j_done, j_print};
