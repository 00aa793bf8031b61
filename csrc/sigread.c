/** \file sigread.c
 * Signature entries of a range of a regular file, read and hashed in
 * small pieces.
 *
 * Why this exists: read() into a large buffer costs the copy out of the
 * page cache plus the cache misses of writing megabytes that are evicted
 * before they are hashed (measured here: ~0.6 system-s per GiB into an
 * 8 MiB buffer, ~0.13 into one reused 64 KiB buffer). So each thread
 * preads its own range of the file into its own small buffer, one piece
 * at a time, and hashes that piece while it is still in the CPU cache.
 *
 * A piece is a whole number of blocks (the caller sizes the buffer), so
 * every block is hashed in one call of the per-block kernel
 * (pd_sig_blocks) and the entries are exactly those of the buffered path,
 * for any split of the file among threads. The only short piece is the
 * last one, at end of file.
 *
 * Runs with no Python in it, so cffi releases the GIL for the whole range.
 */
#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

/* Read up to len bytes at off into buf, retrying short reads; stops early
 * only at end of file. Returns the bytes read, or -1 with errno set. */
static ssize_t read_piece(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t have = 0;
    while (have < len) {
        ssize_t n = pread(fd, buf + have, len - have, (off_t)(off + have));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

/* What hashes one piece: the native or the librsync per-block kernel. */
typedef struct piece_hasher {
    uint32_t magic; /* librsync's signature magic; 0: native */
    uint32_t block_len, strong_len;
    int strong_kind; /* native: the strong sum's kind */
} piece_hasher;

static size_t hash_piece(const piece_hasher *h, const uint8_t *buf, size_t n,
                         uint8_t *out)
{
    if (h->magic)
        return pd_rs_sig_blocks(h->magic, buf, n, h->block_len, h->strong_len,
                                out);
    return pd_sig_blocks(buf, n, h->block_len, h->strong_len, h->strong_kind,
                         out);
}

/* The loop both entry points share: entry bytes per block. */
static int sig_fd(const piece_hasher *h, size_t entry, int fd, uint64_t offset,
                  uint64_t len, uint8_t *buf, size_t buf_cap, uint8_t *out,
                  uint64_t *got, int *err)
{
    uint32_t block_len = h->block_len;
    *got = 0;
    *err = 0;
    if (fd < 0 || block_len == 0 || buf_cap < block_len ||
        buf_cap % block_len != 0 || offset > (uint64_t)INT64_MAX ||
        len > (uint64_t)INT64_MAX - offset)
        return PD_ERR_PARAM;
    uint64_t done = 0;
    while (done < len) {
        uint64_t left = len - done;
        size_t want = left < buf_cap ? (size_t)left : buf_cap;
        ssize_t n = read_piece(fd, buf, want, offset + done);
        if (n < 0) {
            *err = errno ? errno : EIO;
            return PD_ERR_IO;
        }
        if (n > 0) {
            /* done is a whole number of blocks until the last piece */
            if (hash_piece(h, buf, (size_t)n,
                           out + (done / block_len) * entry) == 0)
                return PD_ERR_PARAM;
            done += (uint64_t)n;
        }
        if ((size_t)n < want)
            break; /* end of file */
    }
    *got = done;
    return PD_OK;
}

int pd_sig_fd(int fd, uint64_t offset, uint64_t len, uint32_t block_len,
              uint32_t strong_len, int strong_kind, uint8_t *buf,
              size_t buf_cap, uint8_t *out, uint64_t *got, int *err)
{
    if (!pd_strong_ok(strong_kind, strong_len)) {
        *got = 0;
        *err = 0;
        return PD_ERR_PARAM;
    }
    piece_hasher h = {0, block_len, strong_len, strong_kind};
    return sig_fd(&h, PD_WEAK_LEN + strong_len, fd, offset, len, buf, buf_cap,
                  out, got, err);
}

int pd_rs_sig_fd(uint32_t magic, int fd, uint64_t offset, uint64_t len,
                 uint32_t block_len, uint32_t strong_len, uint8_t *buf,
                 size_t buf_cap, uint8_t *out, uint64_t *got, int *err)
{
    if (magic == 0 || strong_len == 0 || strong_len > 32) {
        *got = 0;
        *err = 0;
        return PD_ERR_PARAM; /* the kernel checks the magic's own limits */
    }
    piece_hasher h = {magic, block_len, strong_len, 0};
    return sig_fd(&h, 4 + (size_t)strong_len, fd, offset, len, buf, buf_cap,
                  out, got, err);
}

int pd_blake3_fd(pd_blake3 *h, int fd, uint64_t offset, uint64_t len,
                 uint8_t *buf, size_t buf_cap, uint64_t *got, int *err)
{
    *got = 0;
    *err = 0;
    if (fd < 0 || buf_cap == 0 || offset > (uint64_t)INT64_MAX ||
        len > (uint64_t)INT64_MAX - offset)
        return PD_ERR_PARAM;
    uint64_t done = 0;
    while (done < len) {
        uint64_t left = len - done;
        size_t want = left < buf_cap ? (size_t)left : buf_cap;
        ssize_t n = read_piece(fd, buf, want, offset + done);
        if (n < 0) {
            *err = errno ? errno : EIO;
            *got = done;
            return PD_ERR_IO;
        }
        pd_blake3_update(h, buf, (size_t)n);
        done += (uint64_t)n;
        if ((size_t)n < want)
            break; /* end of file */
    }
    *got = done;
    return PD_OK;
}
