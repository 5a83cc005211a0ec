/* SPDX-License-Identifier: LGPL-2.1-only */
/* Whole reads and writes at an offset, and zeroed ranges (io.c). */
#ifndef TDM_IO_H
#define TDM_IO_H

#include <stddef.h>
#include <stdint.h>

/* All of buf at off, retrying short writes and EINTR. 0, or -1 with
 * errno; a write that makes no progress is EIO, never a loop. */
int tdm_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* All of len bytes at off. 0, or -1 with errno; end of file before len
 * bytes is EIO. */
int tdm_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* All of buf to a blocking descriptor (a pipe, a socket). */
int tdm_write_all(int fd, const void *buf, size_t len);

enum tdm_zero_how {
    TDM_ZERO_WRITE,         /* the range stays allocated (NBD's ZERO) */
    TDM_ZERO_PUNCH,         /* the space may be given back (TRIM) */
};
/* Make [off, off + len) read as zeroes: fallocate (ZERO_RANGE or
 * PUNCH_HOLE, size kept) where the file system can, written zeroes where
 * it cannot. 0, or -1 with errno. */
int tdm_zero_range(int fd, uint64_t off, uint64_t len, enum tdm_zero_how how);

#endif
