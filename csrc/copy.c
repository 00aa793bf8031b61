/** \file copy.c
 * Direct output for the patch jobs: a pd_sink writes the result straight
 * to a regular file, so COPY ops never pass through user space.
 *
 * A COPY goes through copy_file_range(2): the kernel copies the range
 * from the basis (on XFS/btrfs it may share extents instead). When the
 * call is refused (EXDEV, ENOSYS, EOPNOTSUPP, EINVAL, any other error, or
 * it copies nothing) the sink switches for good to pread() + pwrite()
 * through its own buffer, which also attributes a real error to the side
 * it belongs to (a basis read: the job's err_no; a write: the sink's).
 * LITERAL bytes are staged by the job and written with pwrite().
 *
 * The result's BLAKE3 is computed beside the writing: a hashing thread
 * reads back, in order, each range of the output as soon as it is
 * written and hashes it, while the writing goes on. It reads through a
 * read-only mapping of the page cache (no copy; pread() where mapping
 * fails or PD_SINK_NO_MAP asks). The digest is therefore of the bytes in the file, identical to
 * hashing the produced stream. Without the thread (it could not be
 * started) each write is read back and hashed inline.
 *
 * With PD_SINK_WRITEBACK the sink starts writeback of every
 * PD_SINK_WB_CHUNK bytes written (sync_file_range, asynchronous), so the
 * caller's final fsync has little left to wait for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define SINK_BUF (1u << 20)          /* fallback copy and read-back buffer */
#define SINK_WB_CHUNK (64ull << 20)  /* writeback started every this many bytes */
#define SINK_CFR_MAX (1ull << 30)    /* largest single copy_file_range call */
#define SINK_MAP (16ull << 20)       /* bytes hashed per mapping */

struct pd_sink {
    int fd, flags;
    uint64_t start;   /* file offset of the result's first byte */
    uint64_t pos;     /* result bytes written */
    int cfr;          /* copy_file_range still in use */
    uint64_t kcopied; /* bytes copied by the kernel */
    uint64_t wb;      /* writeback started up to here */
    int werr;         /* errno of a failed write (0: none) */
    uint8_t *cbuf;    /* fallback copy buffer */
    /* the hasher: reads back [hashed, avail) of the output */
    pd_blake3 *h;
    uint8_t *rbuf;
    uint64_t hashed, avail;
    int rerr;    /* errno of a failed read-back (-1: came up short) */
    int closing; /* no more writes */
    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Hash out[*hashed, end) through a read-only mapping of the file (the
 * page cache itself: no copy). Returns 0, or -2 if it cannot be mapped.
 * The file is the caller's own new temporary file, never the basis, so
 * nothing truncates it under the mapping. */
static int hash_mapped(pd_sink *s, uint64_t *hashed, uint64_t end)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || (s->flags & PD_SINK_NO_MAP))
        return -2;
    while (*hashed < end) {
        uint64_t at = s->start + *hashed;
        uint64_t base = at - at % (uint64_t)page;
        uint64_t want = end - *hashed;
        if (want > SINK_MAP)
            want = SINK_MAP;
        size_t len = (size_t)(at - base + want);
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd,
                       (off_t)base);
        if (m == MAP_FAILED)
            return -2;
        pd_blake3_update(s->h, (const uint8_t *)m + (at - base), (size_t)want);
        munmap(m, len);
        *hashed += want;
    }
    return 0;
}

/* Hash out[hashed, end) read back from the file. Returns 0 or an errno. */
static int hash_back(pd_sink *s, uint64_t *hashed, uint64_t end)
{
    if (hash_mapped(s, hashed, end) == 0)
        return 0;
    while (*hashed < end) {
        uint64_t want = end - *hashed;
        size_t n = want < SINK_BUF ? (size_t)want : SINK_BUF;
        ssize_t r = pread(s->fd, s->rbuf, n, (off_t)(s->start + *hashed));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (r == 0)
            return -1;
        pd_blake3_update(s->h, s->rbuf, (size_t)r);
        *hashed += (uint64_t)r;
    }
    return 0;
}

static void *hasher_main(void *arg)
{
    pd_sink *s = arg;
    uint64_t hashed = 0;
    int err = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (hashed == s->avail && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        uint64_t end = s->avail;
        int closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (hashed == end && closing)
            break;
        if (!err)
            err = hash_back(s, &hashed, end);
        if (err)
            hashed = end; /* keep draining so the writer never waits */
    }
    pthread_mutex_lock(&s->mu);
    s->hashed = hashed;
    s->rerr = err;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

pd_sink *pd_sink_new(int out_fd, uint64_t start, int flags)
{
    if (out_fd < 0 || start > (uint64_t)INT64_MAX)
        return NULL;
    pd_sink *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fd = out_fd;
    s->flags = flags;
    s->start = start;
    s->cfr = !(flags & PD_SINK_NO_CFR);
    s->cbuf = malloc(SINK_BUF);
    s->rbuf = malloc(SINK_BUF);
    s->h = pd_blake3_new();
    if (!s->cbuf || !s->rbuf || !s->h) {
        pd_sink_free(s);
        return NULL;
    }
    if (pthread_mutex_init(&s->mu, NULL)) {
        pd_sink_free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->cv, NULL)) {
        pthread_mutex_destroy(&s->mu);
        free(s->cbuf);
        free(s->rbuf);
        pd_blake3_free(s->h);
        free(s);
        return NULL;
    }
    s->threaded = !(flags & PD_SINK_NO_THREAD) &&
                  pthread_create(&s->th, NULL, hasher_main, s) == 0;
    return s;
}

/* Stop the hasher (if running) and collect its result. */
static void sink_join(pd_sink *s)
{
    if (!s->threaded)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    s->threaded = 0;
}

void pd_sink_free(pd_sink *s)
{
    if (!s)
        return;
    if (s->h) { /* fully made: the mutex and condition exist */
        sink_join(s);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    pd_blake3_free(s->h);
    free(s->cbuf);
    free(s->rbuf);
    free(s);
}

/* n more bytes are in the file: hand them to the hasher, start writeback. */
static int publish(pd_sink *s, uint64_t n)
{
    s->pos += n;
    if (s->threaded) {
        pthread_mutex_lock(&s->mu);
        s->avail = s->pos;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    } else if (!s->rerr) {
        int e = hash_back(s, &s->hashed, s->pos);
        if (e) {
            s->rerr = e;
            s->hashed = s->pos;
        }
    } else {
        s->hashed = s->pos;
    }
    if ((s->flags & PD_SINK_WRITEBACK) && s->pos - s->wb >= SINK_WB_CHUNK) {
        /* advisory: an error here shows up again at fsync */
        (void)sync_file_range(s->fd, (off64_t)(s->start + s->wb),
                              (off64_t)(s->pos - s->wb), SYNC_FILE_RANGE_WRITE);
        s->wb = s->pos;
    }
    return PD_OK;
}

int pd_sink_write(pd_sink *s, const uint8_t *buf, size_t len)
{
    if (s->werr)
        return PD_ERR_IO;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(s->fd, buf + done, len - done,
                           (off_t)(s->start + s->pos + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            s->werr = errno ? errno : EIO;
            return PD_ERR_IO;
        }
        if (r == 0) {
            s->werr = ENOSPC;
            return PD_ERR_IO;
        }
        done += (size_t)r;
    }
    return publish(s, len);
}

int pd_sink_copy(pd_sink *s, int basis_fd, uint64_t off, uint64_t len,
                 int *err_no)
{
    if (s->werr)
        return PD_ERR_IO;
    while (len && s->cfr) {
        loff_t in = (loff_t)off, out = (loff_t)(s->start + s->pos);
        size_t n = len < SINK_CFR_MAX ? (size_t)len : (size_t)SINK_CFR_MAX;
        ssize_t r = copy_file_range(basis_fd, &in, s->fd, &out, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (uint64_t)r > n) {
            /* refused, failed, or nothing copied (the basis may have
             * ended, or the file system copies nothing): the read/write
             * path below takes over and tells which */
            s->cfr = 0;
            break;
        }
        s->kcopied += (uint64_t)r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
        publish(s, (uint64_t)r);
    }
    while (len) {
        size_t n = len < SINK_BUF ? (size_t)len : SINK_BUF;
        int rc = pd_read_basis(basis_fd, s->cbuf, n, off, err_no);
        if (rc != PD_OK)
            return rc;
        rc = pd_sink_write(s, s->cbuf, n);
        if (rc != PD_OK)
            return rc;
        off += n;
        len -= n;
    }
    return PD_OK;
}

int pd_sink_finish(pd_sink *s, uint64_t *size, uint8_t *digest)
{
    sink_join(s);
    *size = s->pos;
    pd_blake3_final(s->h, digest, PD_HASH_LEN);
    if (s->werr)
        return PD_ERR_IO;
    return s->rerr || s->hashed != s->pos ? PD_ERR_IO : PD_OK;
}

int pd_sink_errno(const pd_sink *s)
{
    if (s->werr)
        return s->werr;
    return s->rerr > 0 ? s->rerr : 0;
}

int pd_sink_write_failed(const pd_sink *s)
{
    return s->werr != 0;
}

uint64_t pd_sink_kernel_copied(const pd_sink *s)
{
    return s->kcopied;
}
