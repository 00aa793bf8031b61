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
 * The mapped reads run under mapguard.c's SIGBUS guard: a page lost under
 * the mapping (another process cut the file short, or it could not be
 * read) fails the read-back - "came up short", or EIO - instead of killing
 * the process. Only the pure reading and hashing calls are guarded: the
 * signer's room is reserved before them, and the parallel digest guards
 * each thread's own subtrees (pd_blake3_update_par_mapped).
 *
 * With pd_sink_hash_threads the digest's whole 1 MiB subtrees are hashed
 * on several threads (pd_blake3_update_par): the digest is one BLAKE3
 * pass over the whole result, on the patch's critical path.
 *
 * On request (pd_sink_sign) the same read-back also makes the block
 * signature of the result, entry for entry what pd_sig_blocks makes over
 * the whole file (the weak sum and truncated BLAKE3 of every block_len
 * bytes, the last block short; the strong sums of the kind asked, BLAKE3
 * or XXH3-128): a sync's receiving end keeps it in its
 * signature cache for the next sync, without reading the file again. A
 * block split across two read-backs is carried over in a running weak sum
 * (pd_weak_more) and a BLAKE3 or XXH3 state; whole blocks are hashed in
 * place. The
 * entries grow into a buffer bounded by the caller's limit; past it (or
 * out of memory) signing stops and there is no signature - the patch goes
 * on. It runs on the digest's thread, or on a reader thread of its own
 * (two readers of the same ranges; each maps what it reads).
 *
 * With PD_SINK_WRITEBACK the sink starts writeback of every
 * PD_SINK_WB_CHUNK bytes written (sync_file_range, asynchronous), so the
 * caller's final fsync has little left to wait for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SINK_BUF (1u << 20)          /* fallback copy and read-back buffer */
#define SINK_WB_CHUNK (64ull << 20)  /* writeback started every this many bytes */
#define SINK_CFR_MAX (1ull << 30)    /* largest single copy_file_range call */
#define SINK_MAP (16ull << 20)       /* bytes read back per mapping */
#define SINK_PIECE (1u << 20)        /* read-back given to one job at a time */
#define SIGN_FIRST (64u << 10)       /* first size of the entries buffer */
#define SIGN_MAX_BLOCK (1u << 30)    /* longest block pd_sink_sign takes */

/* The block signature of the result, made as it is read back. */
typedef struct sink_signer {
    uint32_t block_len, strong_len;
    int strong_kind; /* PD_STRONG_* */
    size_t entry;   /* bytes per entry: PD_WEAK_LEN + strong_len */
    uint64_t fill;  /* bytes of the current block so far */
    uint64_t weak;  /* their weak sum */
    pd_blake3 *bh;  /* their BLAKE3 (a block split across read-backs) */
    pd_xxh3_state *xh; /* or their XXH3-128 */
    uint8_t *out;   /* the entries */
    size_t len, cap, limit;
    int failed;     /* past the limit, no memory or a read-back failed */
} sink_signer;

/* A reader of the output: reads back, in order, the ranges written and
 * hands them to its jobs (the digest, the signature or both). */
typedef struct sink_reader {
    pd_sink *s;
    int digest, sign; /* its jobs (set under the sink's mutex) */
    uint64_t done;    /* bytes read back */
    int err;          /* errno of a failed read-back (-1: came up short) */
    int running;      /* on a thread of its own (else inline in publish) */
    pthread_t th;
    uint8_t *rbuf;    /* pread fallback buffer, SINK_BUF bytes */
} sink_reader;

struct pd_sink {
    int fd, flags;
    uint64_t start;   /* file offset of the result's first byte */
    uint64_t pos;     /* result bytes written */
    int cfr;          /* copy_file_range still in use */
    uint64_t kcopied; /* bytes copied by the kernel */
    uint64_t wb;      /* writeback started up to here */
    int werr;         /* errno of a failed write (0: none) */
    uint8_t *cbuf;    /* fallback copy buffer */
    pd_blake3 *h;     /* the result's digest */
    sink_signer *sg;  /* the result's signature (NULL: not asked) */
    sink_reader rd[2]; /* rd[0]: the digest; rd[1]: the signature's own */
    int nrd;
    unsigned hthreads; /* threads hashing the digest (tree-parallel) */
    uint64_t avail;   /* bytes the readers may read back */
    int closing;      /* no more writes */
    int finished;     /* pd_sink_finish ran */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* ---- the signature ------------------------------------------------------ */

static void sign_fail(sink_signer *g)
{
    free(g->out);
    g->out = NULL;
    g->len = g->cap = 0;
    g->failed = 1;
}

/* Room for k more entries, made before the bytes that complete them are
 * read: the reading (over a mapping, under the SIGBUS guard) then
 * allocates nothing. 0 if signing has stopped (past the limit, no memory). */
static int sign_reserve(sink_signer *g, uint64_t k)
{
    if (g->failed)
        return 0;
    if (k > (g->limit - g->len) / g->entry) { /* len <= limit always */
        sign_fail(g);
        return 0;
    }
    size_t need = (size_t)k * g->entry;
    if (need > g->cap - g->len) {
        size_t cap = g->cap ? g->cap : SIGN_FIRST;
        while (cap - g->len < need && cap < g->limit)
            cap = cap > g->limit / 2 ? g->limit : cap * 2;
        if (cap > g->limit)
            cap = g->limit;
        uint8_t *p = realloc(g->out, cap);
        if (!p) {
            sign_fail(g);
            return 0;
        }
        g->out = p;
        g->cap = cap;
    }
    return 1;
}

/* The next entry, in the room reserved, or NULL (signing has stopped). No
 * allocation: this runs inside guarded reads. */
static uint8_t *sign_slot(sink_signer *g)
{
    if (g->failed)
        return NULL;
    if (g->entry > g->cap - g->len) { /* not reserved: never, but stop */
        g->failed = 1;
        return NULL;
    }
    uint8_t *e = g->out + g->len;
    g->len += g->entry;
    return e;
}

/* The current block is complete (or the result ended): its entry. */
static void sign_block_end(sink_signer *g)
{
    uint8_t *e = sign_slot(g);
    if (e) {
        pd_put_u64(e, g->weak);
        if (g->xh) {
            uint8_t h[PD_XXH3_LEN];
            pd_xxh3_final(g->xh, h);
            memcpy(e + PD_WEAK_LEN, h, g->strong_len);
        } else {
            pd_blake3_final(g->bh, e + PD_WEAK_LEN, g->strong_len);
        }
    }
    g->fill = 0;
    g->weak = 0;
    if (g->xh)
        pd_xxh3_reset(g->xh);
    else
        pd_blake3_reset(g->bh);
}

/* The next n bytes of the result. */
static void sign_feed(sink_signer *g, const uint8_t *p, size_t n)
{
    size_t bl = g->block_len;
    while (n && !g->failed) {
        if (g->fill == 0 && n >= bl) { /* a whole block in place */
            uint8_t *e = sign_slot(g);
            if (!e)
                return;
            pd_put_u64(e, pd_weak(p, bl));
            pd_strong(g->strong_kind, p, bl, e + PD_WEAK_LEN, g->strong_len);
            p += bl;
            n -= bl;
            continue;
        }
        size_t take = bl - (size_t)g->fill;
        if (take > n)
            take = n;
        g->weak = pd_weak_more(g->weak, p, take);
        if (g->xh)
            pd_xxh3_update(g->xh, p, take);
        else
            pd_blake3_update(g->bh, p, take);
        g->fill += take;
        p += take;
        n -= take;
        if (g->fill == bl)
            sign_block_end(g);
    }
}

typedef struct {
    sink_signer *g;
    const uint8_t *p;
    size_t n;
} sign_args;

static void sign_feed_call(void *arg)
{
    const sign_args *a = arg;
    sign_feed(a->g, a->p, a->n);
}

/* Sign the next n bytes (over a mapping: under the SIGBUS guard, the room
 * for their entries reserved first). PD_OK, or PD_ERR_IO if the mapping
 * lost a page (the signer is then left midway: the caller fails it). */
static int sign_take(sink_signer *g, const uint8_t *p, size_t n, int mapped)
{
    if (!sign_reserve(g, (g->fill + n) / g->block_len))
        return PD_OK; /* signing has stopped; the patch goes on */
    if (!mapped) {
        sign_feed(g, p, n);
        return PD_OK;
    }
    sign_args a = {g, p, n};
    return pd_map_call(sign_feed_call, &a);
}

static void sign_free(sink_signer *g)
{
    if (!g)
        return;
    pd_blake3_free(g->bh);
    free(g->xh);
    free(g->out);
    free(g);
}

/* ---- reading the output back -------------------------------------------- */

/* The digest's next n bytes (over a mapping: each thread's reads guarded). */
static int digest_take(pd_sink *s, const uint8_t *p, size_t n, int mapped)
{
    if (s->hthreads > 1) {
        if (mapped)
            return pd_blake3_update_par_mapped(s->h, p, n, s->hthreads);
        pd_blake3_update_par(s->h, p, n, s->hthreads);
        return PD_OK;
    }
    if (mapped)
        return pd_blake3_update_mapped(s->h, p, n);
    pd_blake3_update(s->h, p, n);
    return PD_OK;
}

/* Give out[..] read back to the reader's jobs: the digest tree-parallel
 * on the sink's hash threads, if it has more than one; otherwise a piece
 * at a time, so the second job finds the piece still in the CPU's cache.
 * mapped: p is a mapping of the file, read under the SIGBUS guard - only
 * the pure reading and hashing calls, never an allocation or a thread's
 * start (those come before each guarded call). PD_OK, or PD_ERR_IO if the
 * mapping lost a page (the jobs' states are then unusable). */
static int consume(pd_sink *s, const sink_reader *r, const uint8_t *p,
                   size_t n, int mapped)
{
    int rc = PD_OK;
    if (r->digest && s->hthreads > 1) {
        rc = digest_take(s, p, n, mapped);
        if (rc == PD_OK && r->sign)
            rc = sign_take(s->sg, p, n, mapped);
        return rc;
    }
    while (n && rc == PD_OK) {
        size_t k = n < SINK_PIECE ? n : SINK_PIECE;
        if (r->digest)
            rc = digest_take(s, p, k, mapped);
        if (rc == PD_OK && r->sign)
            rc = sign_take(s->sg, p, k, mapped);
        p += k;
        n -= k;
    }
    return rc;
}

/* A guarded read of the mapping of out[.., end) faulted: the file is now
 * shorter than that (another process cut it) - -1, as a pread that comes
 * up short - or its page could not be read - EIO. */
static int read_fault(const pd_sink *s, uint64_t end)
{
    struct stat st;
    if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < s->start + end)
        return -1;
    return EIO;
}

/* Read out[*done, end) through a read-only mapping of the file (the page
 * cache itself: no copy). Returns 0, -2 if it cannot be mapped (or the
 * SIGBUS guard cannot be installed), or the error of a guarded read that
 * faulted (read_fault). The file is the caller's own new temporary file,
 * but another process may still cut it short, or a page fail to read: a
 * SIGBUS, turned into that error by the guard (mapguard.c). */
static int read_mapped(pd_sink *s, sink_reader *r, uint64_t *done,
                       uint64_t end)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || (s->flags & PD_SINK_NO_MAP) || pd_map_guard() != PD_OK)
        return -2;
    while (*done < end) {
        uint64_t at = s->start + *done;
        uint64_t base = at - at % (uint64_t)page;
        /* mappings end on multiples of SINK_MAP in the result, so the
         * digest's parallel subtrees are seldom cut */
        uint64_t want = end - *done;
        if (want > SINK_MAP - *done % SINK_MAP)
            want = SINK_MAP - *done % SINK_MAP;
        size_t len = (size_t)(at - base + want);
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd,
                       (off_t)base);
        if (m == MAP_FAILED)
            return -2;
        const uint8_t *in = (const uint8_t *)m + (at - base);
        int rc = consume(s, r, in, (size_t)want, 1);
        munmap(m, len);
        if (rc != PD_OK)
            return read_fault(s, *done + want);
        *done += want;
    }
    return 0;
}

/* Read out[*done, end) back from the file. Returns 0 or an errno. */
static int read_back(pd_sink *s, sink_reader *r, uint64_t *done, uint64_t end)
{
    int rc = read_mapped(s, r, done, end);
    if (rc != -2)
        return rc;
    while (*done < end) {
        uint64_t want = end - *done;
        size_t n = want < SINK_BUF ? (size_t)want : SINK_BUF;
        ssize_t got = pread(s->fd, r->rbuf, n, (off_t)(s->start + *done));
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (got == 0)
            return -1;
        consume(s, r, r->rbuf, (size_t)got, 0);
        *done += (uint64_t)got;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    sink_reader *r = arg;
    pd_sink *s = r->s;
    uint64_t done = 0;
    int err = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (done == s->avail && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        uint64_t end = s->avail;
        int closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (done == end && closing)
            break;
        if (!err)
            err = read_back(s, r, &done, end);
        if (err)
            done = end; /* keep draining so the writer never waits */
    }
    pthread_mutex_lock(&s->mu);
    r->done = done;
    r->err = err;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Start a reader's thread; 0 if it could not be started. */
static int reader_start(pd_sink *s, sink_reader *r)
{
    r->s = s;
    r->running = pthread_create(&r->th, NULL, reader_main, r) == 0;
    return r->running;
}

/* Read [done, pos) back on the writing thread (a reader without a thread). */
static void reader_inline(pd_sink *s, sink_reader *r)
{
    if (!r->err) {
        int e = read_back(s, r, &r->done, s->pos);
        if (e)
            r->err = e;
    }
    if (r->err)
        r->done = s->pos;
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
    s->rd[0].rbuf = malloc(SINK_BUF);
    s->rd[0].s = s;
    s->rd[0].digest = 1;
    s->nrd = 1;
    if (!s->cbuf || !s->rd[0].rbuf)
        goto fail;
    if (pthread_mutex_init(&s->mu, NULL))
        goto fail;
    if (pthread_cond_init(&s->cv, NULL))
        goto fail_mutex;
    s->h = pd_blake3_new();
    if (!s->h)
        goto fail_cond;
    if (!(flags & PD_SINK_NO_THREAD))
        reader_start(s, &s->rd[0]);
    return s;
fail_cond:
    pthread_cond_destroy(&s->cv);
fail_mutex:
    pthread_mutex_destroy(&s->mu);
fail:
    free(s->cbuf);
    free(s->rd[0].rbuf);
    free(s);
    return NULL;
}

int pd_sink_sign(pd_sink *s, uint32_t block_len, uint32_t strong_len,
                 int strong_kind, size_t limit, int own_thread)
{
    if (s->sg || s->pos || s->closing || block_len == 0 ||
        block_len > SIGN_MAX_BLOCK || !pd_strong_ok(strong_kind, strong_len) ||
        limit > SIZE_MAX / 4)
        return PD_ERR_PARAM;
    sink_signer *g = calloc(1, sizeof *g);
    if (!g)
        return PD_ERR_NOMEM;
    g->block_len = block_len;
    g->strong_len = strong_len;
    g->strong_kind = strong_kind;
    g->entry = PD_WEAK_LEN + strong_len;
    g->limit = limit;
    if (strong_kind == PD_STRONG_XXH3) {
        g->xh = malloc(sizeof *g->xh);
        if (g->xh)
            pd_xxh3_reset(g->xh);
    } else {
        g->bh = pd_blake3_new();
    }
    if (!g->bh && !g->xh) {
        free(g);
        return PD_ERR_NOMEM;
    }
    s->sg = g;
    sink_reader *r = &s->rd[1];
    if (own_thread && s->rd[0].running) {
        r->rbuf = malloc(SINK_BUF);
        r->sign = 1;
        if (r->rbuf && reader_start(s, r)) {
            s->nrd = 2;
            return PD_OK;
        }
        free(r->rbuf);
        memset(r, 0, sizeof *r);
    }
    /* on the digest's reader (no own thread, or it could not start) */
    pthread_mutex_lock(&s->mu);
    s->rd[0].sign = 1;
    pthread_mutex_unlock(&s->mu);
    return PD_OK;
}

int pd_sink_hash_threads(pd_sink *s, unsigned threads)
{
    if (s->pos || s->closing || threads == 0)
        return PD_ERR_PARAM;
    pthread_mutex_lock(&s->mu);
    s->hthreads = threads;
    pthread_mutex_unlock(&s->mu);
    return PD_OK;
}

/* Stop the readers' threads and collect their results. */
static void sink_join(pd_sink *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nrd; i++) {
        if (s->rd[i].running) {
            pthread_join(s->rd[i].th, NULL);
            s->rd[i].running = 0;
        }
    }
}

void pd_sink_free(pd_sink *s)
{
    if (!s)
        return;
    sink_join(s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pd_blake3_free(s->h);
    sign_free(s->sg);
    free(s->cbuf);
    for (int i = 0; i < 2; i++)
        free(s->rd[i].rbuf);
    free(s);
}

/* n more bytes are in the file: hand them to the readers, start writeback. */
static int publish(pd_sink *s, uint64_t n)
{
    s->pos += n;
    int threads = 0;
    for (int i = 0; i < s->nrd; i++) {
        if (s->rd[i].running)
            threads = 1;
        else
            reader_inline(s, &s->rd[i]);
    }
    if (threads) {
        pthread_mutex_lock(&s->mu);
        s->avail = s->pos;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
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
    const sink_reader *d = &s->rd[0];
    int ok = !s->werr && !d->err && d->done == s->pos;
    if (s->sg && !s->finished) {
        sink_signer *g = s->sg;
        const sink_reader *r = s->nrd == 2 ? &s->rd[1] : d;
        if (!ok || r->err || r->done != s->pos)
            sign_fail(g);
        else if (g->fill && sign_reserve(g, 1))
            sign_block_end(g); /* the last, short block */
    }
    s->finished = 1;
    if (s->werr)
        return PD_ERR_IO;
    return ok ? PD_OK : PD_ERR_IO;
}

const uint8_t *pd_sink_sig(const pd_sink *s, size_t *len)
{
    *len = 0;
    if (!s->sg || !s->finished || s->sg->failed)
        return NULL;
    *len = s->sg->len;
    return s->sg->out ? s->sg->out : (const uint8_t *)"";
}

int pd_sink_errno(const pd_sink *s)
{
    if (s->werr)
        return s->werr;
    return s->rd[0].err > 0 ? s->rd[0].err : 0;
}

int pd_sink_write_failed(const pd_sink *s)
{
    return s->werr != 0;
}

uint64_t pd_sink_kernel_copied(const pd_sink *s)
{
    return s->kcopied;
}
