/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The backup's epoch write log. Records are kept in one list in arrival
 * order; since epochs never go backwards that is also epoch order, so a
 * commit takes a prefix of the list and a drop a suffix.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tdm-blkrep.h"
#include "tdm-util.h"

struct tdm_wlog_rec {
    struct tdm_wlog_rec *next;
    uint64_t epoch;
    uint64_t offset;
    uint32_t len;
    uint16_t kind;
    uint8_t data[];             /* len bytes for WRITE */
};

static uint64_t rec_cost(uint16_t kind, uint32_t len)
{
    return (kind == TDM_BLK_WRITE ? len : 0) + (uint64_t)TDM_WLOG_REC_COST;
}

static uint64_t rec_bytes(const struct tdm_wlog_rec *r)
{
    return r->kind == TDM_BLK_WRITE ? r->len : 0;
}

void tdm_wlog_init(struct tdm_wlog *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
}

int tdm_wlog_create(struct tdm_wlog *w, int fd, uint64_t image_size,
                    uint64_t limit, uint64_t committed, char *err,
                    size_t errlen)
{
    if (fd < 0)
        return tdm_errf(err, errlen, "write log: bad image descriptor %d", fd);
    if (image_size == 0)
        return tdm_errf(err, errlen, "write log: image of 0 bytes");
    if (limit < TDM_WLOG_REC_COST)
        return tdm_errf(err, errlen, "write log: limit of %llu bytes cannot "
                        "hold a record", (unsigned long long)limit);
    tdm_wlog_dispose(w);
    w->fd = fd;
    w->image_size = image_size;
    w->limit = limit;
    w->committed = committed;
    w->last = committed;
    return 0;
}

static void free_list(struct tdm_wlog_rec *r)
{
    while (r) {
        struct tdm_wlog_rec *next = r->next;
        free(r);
        r = next;
    }
}

void tdm_wlog_dispose(struct tdm_wlog *w)
{
    free_list(w->head);
    tdm_wlog_init(w);
}

int tdm_wlog_add(struct tdm_wlog *w, uint64_t epoch, uint16_t kind,
                 uint64_t offset, uint32_t len, const void *data, char *err,
                 size_t errlen)
{
    struct tdm_blk_rec chk = {.kind = kind, .epoch = epoch, .offset = offset,
                              .len = len, .data = data};
    struct tdm_wlog_rec *r;
    uint64_t cost;
    size_t dlen;

    if (w->fd < 0)
        return tdm_errf(err, errlen, "write log not created");
    if (tdm_blk_rec_check(&chk, err, errlen) < 0)
        return -1;
    if (kind == TDM_BLK_DIRTY)
        return tdm_errf(err, errlen, "a DIRTY record (a range without its "
                        "data) cannot be held for a replica");
    if (kind != TDM_BLK_FLUSH && offset + len > w->image_size)
        return tdm_errf(err, errlen, "%s of %u bytes at %llu ends beyond the "
                        "image (%llu bytes)", tdm_blk_kind_name(kind), len,
                        (unsigned long long)offset,
                        (unsigned long long)w->image_size);
    if (kind == TDM_BLK_WRITE && !data)
        return tdm_errf(err, errlen, "WRITE of %u bytes without data", len);
    if (epoch <= w->committed)
        return tdm_errf(err, errlen, "%s for epoch %llu, which is already "
                        "committed (%llu)", tdm_blk_kind_name(kind),
                        (unsigned long long)epoch,
                        (unsigned long long)w->committed);
    if (epoch < w->last)
        return tdm_errf(err, errlen, "%s for epoch %llu after epoch %llu: "
                        "epochs went backwards", tdm_blk_kind_name(kind),
                        (unsigned long long)epoch,
                        (unsigned long long)w->last);
    cost = rec_cost(kind, len);
    if (cost > w->limit - w->cost)
        return tdm_errf(err, errlen, "%s of %u bytes for epoch %llu: the "
                        "write log is full (%llu of %llu bytes held)",
                        tdm_blk_kind_name(kind), len,
                        (unsigned long long)epoch,
                        (unsigned long long)w->cost,
                        (unsigned long long)w->limit);

    dlen = kind == TDM_BLK_WRITE ? len : 0;
    r = tdm_malloc(sizeof(*r) + dlen);
    r->next = NULL;
    r->epoch = epoch;
    r->offset = offset;
    r->len = len;
    r->kind = kind;
    if (dlen)
        memcpy(r->data, data, dlen);
    if (w->tail)
        w->tail->next = r;
    else
        w->head = r;
    w->tail = r;
    w->last = epoch;
    w->cost += cost;
    w->st.held_records++;
    w->st.held_bytes += dlen;
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int apply(struct tdm_wlog *w, const struct tdm_wlog_rec *r)
{
    static const uint8_t zeroes[64 * 1024];
    uint64_t off = r->offset, left = r->len;

    switch (r->kind) {
    case TDM_BLK_WRITE:
        return pwrite_all(w->fd, r->data, r->len, r->offset);
    case TDM_BLK_TRIM:
    case TDM_BLK_ZERO:
        /* a trimmed range reads as zeroes on the primary (a punched hole),
         * so the replica writes them rather than leave stale data */
        while (left) {
            size_t n = (size_t)TDM_MIN(left, (uint64_t)sizeof(zeroes));
            if (pwrite_all(w->fd, zeroes, n, off) < 0)
                return -1;
            off += n;
            left -= n;
        }
        return 0;
    case TDM_BLK_FLUSH:
        if (fdatasync(w->fd) < 0)
            return -1;
        w->st.flushes++;
        return 0;
    default:
        errno = EINVAL;          /* add let nothing else in */
        return -1;
    }
}

int tdm_wlog_commit(struct tdm_wlog *w, uint64_t epoch, char *err,
                    size_t errlen)
{
    struct tdm_wlog_rec *r;

    if (w->fd < 0)
        return tdm_errf(err, errlen, "write log not created");
    if (epoch < w->committed)
        return tdm_errf(err, errlen, "commit of epoch %llu after epoch %llu: "
                        "epochs went backwards", (unsigned long long)epoch,
                        (unsigned long long)w->committed);
    while ((r = w->head) && r->epoch <= epoch) {
        if (apply(w, r) < 0)
            return tdm_errf(err, errlen, "commit of epoch %llu: %s of %u "
                            "bytes at %llu (epoch %llu): %s",
                            (unsigned long long)epoch,
                            tdm_blk_kind_name(r->kind), r->len,
                            (unsigned long long)r->offset,
                            (unsigned long long)r->epoch, strerror(errno));
        w->head = r->next;
        if (!w->head)
            w->tail = NULL;
        w->cost -= rec_cost(r->kind, r->len);
        w->st.held_records--;
        w->st.held_bytes -= rec_bytes(r);
        w->st.applied_records++;
        w->st.applied_bytes += rec_bytes(r);
        free(r);
    }
    w->committed = epoch;
    w->last = TDM_MAX(w->last, epoch);
    return 0;
}

int tdm_wlog_move(struct tdm_wlog *from, uint64_t epoch, struct tdm_wlog *to,
                  char *err, size_t errlen)
{
    struct tdm_wlog_rec *r, *last = NULL;

    if (from->fd < 0)
        return tdm_errf(err, errlen, "write log not created");
    if (epoch < from->committed)
        return tdm_errf(err, errlen, "move of epoch %llu after epoch %llu: "
                        "epochs went backwards", (unsigned long long)epoch,
                        (unsigned long long)from->committed);
    tdm_wlog_init(to);
    to->fd = from->fd;
    to->image_size = from->image_size;
    to->limit = UINT64_MAX;
    to->committed = from->committed;
    to->last = from->committed;
    for (r = from->head; r && r->epoch <= epoch; r = r->next) {
        uint64_t cost = rec_cost(r->kind, r->len);

        from->cost -= cost;
        from->st.held_records--;
        from->st.held_bytes -= rec_bytes(r);
        to->cost += cost;
        to->st.held_records++;
        to->st.held_bytes += rec_bytes(r);
        to->last = r->epoch;
        last = r;
    }
    if (last) {
        to->head = from->head;
        to->tail = last;
        from->head = last->next;
        last->next = NULL;
        if (!from->head)
            from->tail = NULL;
    }
    from->committed = epoch;
    from->last = TDM_MAX(from->last, epoch);
    return 0;
}

int tdm_wlog_drop_after(struct tdm_wlog *w, uint64_t epoch, char *err,
                        size_t errlen)
{
    struct tdm_wlog_rec **pp, *r;

    if (w->fd < 0)
        return tdm_errf(err, errlen, "write log not created");
    if (epoch < w->committed)
        return tdm_errf(err, errlen, "drop after epoch %llu: epoch %llu is "
                        "already committed", (unsigned long long)epoch,
                        (unsigned long long)w->committed);
    w->tail = NULL;
    for (pp = &w->head; *pp && (*pp)->epoch <= epoch; pp = &(*pp)->next)
        w->tail = *pp;
    r = *pp;
    *pp = NULL;
    while (r) {
        struct tdm_wlog_rec *next = r->next;
        w->cost -= rec_cost(r->kind, r->len);
        w->st.held_records--;
        w->st.held_bytes -= rec_bytes(r);
        w->st.dropped_records++;
        w->st.dropped_bytes += rec_bytes(r);
        free(r);
        r = next;
    }
    w->last = TDM_MIN(w->last, epoch);
    return 0;
}

void tdm_wlog_stats(const struct tdm_wlog *w, struct tdm_wlog_stats *st_r)
{
    *st_r = w->st;
}
