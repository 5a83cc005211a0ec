/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * kvdisk: the micro-VM KV guest's disk image, offline (layout:
 * guest/kv-disk.h, the same code the guest writes it with).
 *
 *   kvdisk IMAGE           the items, "KEY VALUE" per line, sorted by key
 *                          (bytes outside printable ASCII, space and
 *                          backslash as \xHH)
 *   kvdisk --check IMAGE   validate the header and every slot: checksums,
 *                          lengths, hashes, every item reachable from its
 *                          home slot, no key twice, not over-full
 *
 * Both check the image first; exit 0 if it is a consistent table, 1 with a
 * message if not, 2 on usage or I/O errors.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kv-disk.h"

struct item {
    uint32_t slot;
    uint8_t key_len;
    uint16_t value_len;
    uint8_t key[KV_KEY_MAX];
    uint8_t value[KV_VALUE_MAX];
};

static int cmp_item(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);

    if (c)
        return c;
    return (int)a->key_len - (int)b->key_len;
}

static void print_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: kvdisk [--check] IMAGE\n");
}

int main(int argc, char **argv)
{
    bool check = false;
    const char *path, *why;
    uint8_t hdr[KVD_HDR_SIZE], buf[KVD_SLOT_SIZE];
    uint32_t seed, slots, nitems = 0;
    struct item *items = NULL;
    uint8_t *used = NULL;
    struct stat sb;
    FILE *f;
    int rc = 1;

    if (argc == 3 && !strcmp(argv[1], "--check")) {
        check = true;
        path = argv[2];
    } else if (argc == 2 && argv[1][0] != '-') {
        path = argv[1];
    } else {
        usage();
        return 2;
    }
    f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &sb) < 0) {
        fprintf(stderr, "kvdisk: %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr)) {
        fprintf(stderr, "kvdisk: %s: shorter than a header\n", path);
        goto out;
    }
    why = kvd_header_decode(hdr, &seed, &slots);
    if (why) {
        fprintf(stderr, "kvdisk: %s: header: %s\n", path, why);
        goto out;
    }
    if ((uint64_t)sb.st_size < kvd_disk_bytes(slots)) {
        fprintf(stderr, "kvdisk: %s: %lld bytes, a table of %u slots needs "
                "%llu\n", path, (long long)sb.st_size, slots,
                (unsigned long long)kvd_disk_bytes(slots));
        goto out;
    }
    used = calloc(slots, 1);
    items = calloc(kvd_max_items(slots) + 1, sizeof(*items));
    if (!used || !items) {
        fprintf(stderr, "kvdisk: out of memory\n");
        rc = 2;
        goto out;
    }
    for (uint32_t i = 0; i < slots; i++) {
        struct kvd_slot s;
        struct item *it;

        if (fread(buf, 1, sizeof(buf), f) != sizeof(buf)) {
            fprintf(stderr, "kvdisk: %s: slot %u: %s\n", path, i,
                    ferror(f) ? strerror(errno) : "short read");
            rc = 2;
            goto out;
        }
        why = kvd_slot_decode(buf, seed, &s);
        if (why) {
            fprintf(stderr, "kvdisk: %s: slot %u: %s\n", path, i, why);
            goto out;
        }
        if (!s.used)
            continue;
        used[i] = 1;
        if (nitems == kvd_max_items(slots)) {
            fprintf(stderr, "kvdisk: %s: more than the %u items %u slots "
                    "may hold\n", path, kvd_max_items(slots), slots);
            goto out;
        }
        it = &items[nitems++];
        it->slot = i;
        it->key_len = s.key_len;
        it->value_len = s.value_len;
        memcpy(it->key, s.key, s.key_len);
        memcpy(it->value, s.value, s.value_len);
    }
    /* Linear probing: a lookup walks from the home slot to the first free
     * one; an item behind a free slot is lost to lookups. */
    for (uint32_t k = 0; k < nitems; k++) {
        uint32_t mask = slots - 1, i = items[k].slot;
        uint32_t home = kvd_hash(seed, items[k].key, items[k].key_len) & mask;
        for (uint32_t j = home; j != i; j = (j + 1) & mask) {
            if (!used[j]) {
                fprintf(stderr, "kvdisk: %s: slot %u: not reachable from its "
                        "home slot %u (slot %u is free)\n", path, i, home, j);
                goto out;
            }
        }
    }
    qsort(items, nitems, sizeof(*items), cmp_item);
    for (uint32_t k = 1; k < nitems; k++) {
        if (!cmp_item(&items[k - 1], &items[k])) {
            fprintf(stderr, "kvdisk: %s: slots %u and %u hold the same key\n",
                    path, items[k - 1].slot, items[k].slot);
            goto out;
        }
    }
    if (check) {
        printf("kvdisk: %s: consistent: %u items in %u slots\n", path, nitems,
               slots);
    } else {
        for (uint32_t k = 0; k < nitems; k++) {
            print_bytes(items[k].key, items[k].key_len);
            putchar(' ');
            print_bytes(items[k].value, items[k].value_len);
            putchar('\n');
        }
    }
    rc = 0;
out:
    free(items);
    free(used);
    fclose(f);
    if (fflush(stdout) != 0)
        rc = 2;
    return rc;
}
