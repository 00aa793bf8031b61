/** \file rs_job.c
 * librsync-format jobs: signature blocks, the signature table, the delta
 * scan and the patch command decoder.
 *
 * Signature: each block of block_len bytes (the last may be short) becomes
 * u32 big-endian weak sum + the first strong_len bytes of its strong sum.
 *
 * Table: the entries of a librsync signature in the weak-sum index of
 * sigtable.c (deduplicated, the lowest index of identical blocks winning;
 * keyed buckets that chosen weak sums cannot flood; a Bloom-style bit set
 * in front), the 32-bit sums widened to 64. A librsync
 * signature does not say how long its last block is, so that block is
 * indexed like the others (its strong sum cannot match a full window
 * unless it is full) and is additionally tried at every shorter length
 * where it can still appear: right after a copy of the block before it
 * (a prefix of what follows) and at the end of NEW (a suffix).
 *
 * Delta scan: the resumable job of delta.c over 32-bit weak sums: roll the
 * window through NEW, try the block after the last copy first, then the
 * table. A run of unchanged blocks is verified several blocks at a time
 * (strong sums through pd_rs_strong_many, which hashes them in SIMD lanes;
 * the weak sum of a window is computed only when the run breaks, or first
 * when the strong sums are short); the decisions are exactly those of a
 * block-by-block scan, so the delta depends only on NEW and the signature.
 * The end of a literal run is found by rolling the weak sum two bytes per
 * step behind a Bloom-style pre-filter.
 * Commands use librsync's encoding (one-byte literal opcodes up to 64
 * bytes, otherwise the smallest integer width for every parameter),
 * written by the op writer of scan.c that the native scan uses too.
 *
 * Patch: decodes every command form librsync defines and checks each one
 * before acting on it (zero lengths, reserved opcodes, copies outside the
 * basis, all without overflow); the job around the parser (op loop,
 * basis reads with pread(), output hash) is patch.c's pd_patcher.
 */
#include <errno.h>
#include <unistd.h>

#include "rs_internal.h"

#define RS_NONE UINT64_MAX
/** Most blocks verified at once in a run of unchanged data. */
#define RS_BATCH 16
/** At most this many lengths of the last block get a strong hash when
 * its weak sum agrees (the search at the end of NEW). */
#define RS_MAX_CANDIDATES PD_MAX_CANDIDATES
/** Strong sums at least this long are trusted without the weak sum when a
 * run of copied blocks continues (96+ bits; librsync's default is 256). */
#define RS_STRONG_ONLY 12

static int magic_kinds(uint32_t magic, int *weak, int *strong)
{
    switch (magic) {
    case PD_RS_MD4_MAGIC:
        *weak = PD_RS_WEAK_ROLLSUM;
        *strong = PD_RS_STRONG_MD4;
        return 1;
    case PD_RS_BLAKE2_MAGIC:
        *weak = PD_RS_WEAK_ROLLSUM;
        *strong = PD_RS_STRONG_BLAKE2;
        return 1;
    case PD_RS_RK_MD4_MAGIC:
        *weak = PD_RS_WEAK_RABINKARP;
        *strong = PD_RS_STRONG_MD4;
        return 1;
    case PD_RS_RK_BLAKE2_MAGIC:
        *weak = PD_RS_WEAK_RABINKARP;
        *strong = PD_RS_STRONG_BLAKE2;
        return 1;
    default:
        return 0;
    }
}

static uint32_t strong_max(int strong)
{
    return strong == PD_RS_STRONG_MD4 ? PD_RS_MD4_LEN : PD_RS_BLAKE2_LEN;
}

/* ---- signature ---------------------------------------------------------- */

size_t pd_rs_sig_blocks(uint32_t magic, const uint8_t *buf, size_t len,
                        uint32_t block_len, uint32_t strong_len, uint8_t *out)
{
    int weak, strong;
    if (!magic_kinds(magic, &weak, &strong) || block_len == 0 ||
        strong_len < 1 || strong_len > strong_max(strong))
        return 0;
    size_t entry = 4 + strong_len;
    size_t nfull = len / block_len, n = 0;
    uint8_t digests[RS_BATCH * PD_RS_BLAKE2_LEN];
    while (n < nfull) {
        size_t k = nfull - n < RS_BATCH ? nfull - n : RS_BATCH;
        const uint8_t *p = buf + n * block_len;
        pd_rs_strong_many(strong, p, block_len, k, block_len, digests);
        for (size_t i = 0; i < k; i++) {
            uint8_t *e = out + (n + i) * entry;
            pd_rs_put_be(e, pd_rs_weak(weak, p + i * block_len, block_len), 4);
            memcpy(e + 4, digests + i * PD_RS_BLAKE2_LEN, strong_len);
        }
        n += k;
    }
    size_t tail = len - nfull * block_len;
    if (tail) {
        const uint8_t *p = buf + nfull * block_len;
        uint8_t *e = out + n * entry;
        pd_rs_put_be(e, pd_rs_weak(weak, p, tail), 4);
        pd_rs_strong(strong, p, tail, digests);
        memcpy(e + 4, digests, strong_len);
        n++;
    }
    return n;
}

/* ---- table -------------------------------------------------------------- */

struct pd_rs_sigtable {
    int weak_kind, strong_kind;
    uint64_t nblocks;
    uint32_t block_len, strong_len;
    uint32_t *weak;      /* [nblocks] */
    uint8_t *strong;     /* [nblocks * strong_len] */
    pd_windex ix;        /* the weak-sum index of sigtable.c */
    pd_rs_roller roller; /* for windows of block_len */
};

/* The pre-filter over 32-bit weak sums (the index keys them as 64-bit). */
static inline int bloom_test(const pd_rs_sigtable *t, uint32_t w)
{
    return pd_bloom_test(&t->ix, w);
}

void pd_rs_sigtable_free(pd_rs_sigtable *t)
{
    if (!t)
        return;
    free(t->weak);
    free(t->strong);
    pd_windex_free(&t->ix);
    free(t);
}

pd_rs_sigtable *pd_rs_sigtable_new(uint32_t magic, const uint8_t *entries,
                                   uint64_t nblocks, uint32_t block_len,
                                   uint32_t strong_len, int *err)
{
    int weak, strong;
    *err = PD_ERR_PARAM;
    if (!magic_kinds(magic, &weak, &strong) || block_len == 0 ||
        strong_len < 1 || strong_len > strong_max(strong))
        return NULL;
    if (nblocks > (SIZE_MAX / 64) / (4 + (uint64_t)strong_len)) {
        *err = PD_ERR_NOMEM;
        return NULL;
    }
    *err = PD_ERR_NOMEM;
    pd_rs_sigtable *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->weak_kind = weak;
    t->strong_kind = strong;
    t->nblocks = nblocks;
    t->block_len = block_len;
    t->strong_len = strong_len;
    pd_rs_roller_init(&t->roller, block_len);
    size_t entry = 4 + strong_len, cnt = nblocks ? nblocks : 1;
    t->weak = malloc(cnt * sizeof *t->weak);
    t->strong = malloc(cnt * strong_len);
    pd_witem *items = malloc(cnt * sizeof *items);
    if (!t->weak || !t->strong || !items)
        goto fail;
    for (uint64_t i = 0; i < nblocks; i++) {
        const uint8_t *e = entries + i * entry;
        t->weak[i] = (uint32_t)pd_rs_get_be(e, 4);
        memcpy(t->strong + i * strong_len, e + 4, strong_len);
        items[i].weak = t->weak[i];
        items[i].idx = i;
        items[i].strong = t->strong + i * strong_len;
        items[i].slen = strong_len;
    }
    if (pd_windex_build(&t->ix, items, nblocks) != PD_OK)
        goto fail;
    free(items);
    *err = PD_OK;
    return t;

fail:
    free(items);
    pd_rs_sigtable_free(t);
    return NULL;
}

/* A distinct block whose weak sum is w and whose strong sum matches
 * data[0..block_len) (hashed at most once into sh), or -1. */
static int64_t table_match(const pd_rs_sigtable *t, uint32_t w,
                           const uint8_t *data, uint8_t *sh, int *have_sh)
{
    if (!bloom_test(t, w))
        return -1;
    const pd_wrun *r = pd_windex_find(&t->ix, w);
    if (!r)
        return -1;
    if (!*have_sh) {
        pd_rs_strong(t->strong_kind, data, t->block_len, sh);
        *have_sh = 1;
    }
    return pd_windex_pick(&t->ix, r, sh, t->strong, t->strong_len);
}

int64_t pd_rs_sigtable_find(const pd_rs_sigtable *t, const uint8_t *data)
{
    uint8_t sh[PD_RS_BLAKE2_LEN];
    int have = 0;
    if (!t->ix.nuniq)
        return -1;
    return table_match(t, pd_rs_weak(t->weak_kind, data, t->block_len), data,
                       sh, &have);
}

uint64_t pd_rs_sigtable_unique(const pd_rs_sigtable *t)
{
    return t->ix.nuniq;
}

/* Does data[0..len) match block j (weak and strong)? */
static int block_matches(const pd_rs_sigtable *t, uint64_t j,
                         const uint8_t *data, size_t len, uint32_t w)
{
    if (w != t->weak[j])
        return 0;
    uint8_t sh[PD_RS_BLAKE2_LEN];
    pd_rs_strong(t->strong_kind, data, len, sh);
    return !memcmp(sh, t->strong + j * t->strong_len, t->strong_len);
}

/* The last block as a prefix of data[0..avail): the shortest length L in
 * 1..min(avail, block_len - 1) it matches at, or 0. At most
 * RS_MAX_CANDIDATES lengths whose weak sum agrees get a strong hash, so
 * crafted data cannot make this quadratic in the block length. */
static size_t last_as_prefix(const pd_rs_sigtable *t, const uint8_t *data,
                             size_t avail)
{
    uint64_t j = t->nblocks - 1;
    size_t max = avail < t->block_len - 1 ? avail : t->block_len - 1;
    pd_rs_wstate s = pd_rs_wempty(t->weak_kind);
    int tries = 0;
    for (size_t L = 1; L <= max; L++) {
        s = pd_rs_wpush(t->weak_kind, s, data[L - 1]);
        uint32_t w = pd_rs_wdigest(t->weak_kind, s);
        if (w != t->weak[j])
            continue;
        if (block_matches(t, j, data, L, w))
            return L;
        if (++tries == RS_MAX_CANDIDATES)
            break;
    }
    return 0;
}

/* The last block as a suffix of data[0..avail) (avail < block_len): the
 * longest length L it matches at, or 0. */
static size_t last_as_suffix(const pd_rs_sigtable *t, const uint8_t *data,
                             size_t avail)
{
    if (!t->nblocks)
        return 0;
    uint64_t j = t->nblocks - 1;
    int kind = t->weak_kind;
    size_t best = 0;
    /* Grow the suffix backwards: for RabinKarp the sum without its seed
     * gains b * M^(L-1); for rollsum s1 gains b + 31 and s2 L (b + 31). */
    uint32_t acc = 0, pw = 1, s1 = 0, s2 = 0;
    int tries = 0;
    for (size_t L = 1; L <= avail && tries < RS_MAX_CANDIDATES; L++) {
        uint8_t b = data[avail - L];
        uint32_t w;
        if (kind == PD_RS_WEAK_RABINKARP) {
            acc += b * pw;
            pw *= PD_RS_RK_MULT;
            w = pw + acc; /* seed term M^L */
        } else {
            s1 += (uint32_t)b + PD_RS_CHAR_OFFSET;
            s2 += (uint32_t)L * ((uint32_t)b + PD_RS_CHAR_OFFSET);
            w = ((s2 & 0xffffu) << 16) | (s1 & 0xffffu);
        }
        if (w != t->weak[j])
            continue;
        tries++;
        if (block_matches(t, j, data + avail - L, L, w))
            best = L;
    }
    return best;
}

/* ---- delta -------------------------------------------------------------- */

struct pd_rs_delta {
    const pd_rs_sigtable *t;
    uint64_t used;    /* bytes of NEW used */
    pd_rs_wstate ws;  /* weak state of the window at the input front */
    int have_h;       /* ws is the state of the window at the front */
    int judged;       /* the window at the front already missed */
    size_t batch;     /* blocks to verify at once in a run (1..RS_BATCH) */
    uint64_t cont;    /* block to try first, or RS_NONE */
    pd_ops w;         /* pending COPY, carried literal bytes */
    int fin_searched; /* the end of NEW was searched for the last block */
    size_t fin_len;   /* its length there, or 0 */
    int done;
};

pd_rs_delta *pd_rs_delta_new(const pd_rs_sigtable *t)
{
    pd_rs_delta *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = t;
    d->cont = t->nblocks ? 0 : RS_NONE;
    d->batch = 1;
    if (pd_ops_init(&d->w, PD_OPS_RDIFF) != PD_OK) {
        pd_rs_delta_free(d);
        return NULL;
    }
    return d;
}

void pd_rs_delta_free(pd_rs_delta *d)
{
    if (!d)
        return;
    pd_ops_free(&d->w);
    free(d);
}

void pd_rs_delta_stats(const pd_rs_delta *d, uint64_t *new_size,
                       uint64_t *copied, uint64_t *literal)
{
    *new_size = d->used;
    *copied = d->w.copied;
    *literal = d->w.literal;
}

static const int width_bytes[4] = {1, 2, 4, 8};

/* Continue the run of copied blocks at d->cont over data[0..avail).
 * Returns the bytes matched: whole blocks (several at once when they all
 * match), or the last block at a shorter length; sets *next_cont.
 *
 * Blocks j, j+1, ... are verified up to d->batch at a time (doubling after
 * a batch that all matched, back to 1 after one that did not, so runs of
 * unchanged data hash in SIMD lanes and alternating data wastes little).
 * A block matches if its strong sum does, and also its weak sum when the
 * strong sums are short (fewer than RS_STRONG_ONLY bytes): the weak sum
 * then adds the 32 bits librsync counts on. Which blocks match does not
 * depend on the batching, so neither does the delta. */
static uint64_t try_continuation(pd_rs_delta *d, const uint8_t *data,
                                 size_t avail, uint64_t *next_cont)
{
    const pd_rs_sigtable *t = d->t;
    const size_t bl = t->block_len;
    uint64_t j = d->cont;
    if (j == RS_NONE || j >= t->nblocks)
        return 0;
    int kind = t->weak_kind;
    if (avail >= bl) {
        size_t maxk = avail / bl;
        if (maxk > d->batch)
            maxk = d->batch;
        if (maxk > t->nblocks - j)
            maxk = (size_t)(t->nblocks - j);
        size_t k = maxk;
        if (t->strong_len < RS_STRONG_ONLY) {
            /* weak sums first, while they agree */
            k = 0;
            while (k < maxk &&
                   pd_rs_weak(kind, data + k * bl, bl) == t->weak[j + k])
                k++;
        }
        size_t ok = 0;
        if (k) {
            uint8_t sh[RS_BATCH * PD_RS_BLAKE2_LEN];
            pd_rs_strong_many(t->strong_kind, data, bl, k, bl, sh);
            while (ok < k &&
                   !memcmp(sh + ok * PD_RS_BLAKE2_LEN,
                           t->strong + (j + ok) * t->strong_len, t->strong_len))
                ok++;
        }
        if (ok == maxk)
            d->batch = d->batch * 2 > RS_BATCH ? RS_BATCH : d->batch * 2;
        else
            d->batch = 1;
        if (ok) {
            *next_cont = j + ok;
            return (uint64_t)ok * bl;
        }
    }
    if (j == t->nblocks - 1) {
        /* the last block, which may be short: as a prefix of what follows */
        size_t L = last_as_prefix(t, data, avail);
        if (L) {
            *next_cont = RS_NONE;
            return L;
        }
    }
    return 0;
}

int pd_rs_delta_scan(pd_rs_delta *d, const uint8_t *in, size_t in_len, int eof,
                     uint8_t *out, size_t out_cap, size_t *in_used,
                     size_t *out_used)
{
    const pd_rs_sigtable *t = d->t;
    const size_t bl = t->block_len;
    const int kind = t->weak_kind;
    size_t pos = 0, lit_start = 0, o = 0;
    int rc;

    *in_used = 0;
    *out_used = 0;
    if (d->done)
        return PD_DONE;
    if (out_cap < PD_RS_DELTA_MIN_OUT)
        return PD_ERR_PARAM;

    for (;;) {
        /* Each pass decides one position; it emits at most one COPY and one
         * LITERAL. */
        size_t avail = in_len - pos;
        rc = pd_scan_pass(out_cap - o, avail, bl, eof);
        if (rc == PD_DONE)
            break;
        if (rc != PD_OK)
            goto suspend;

        uint64_t mlen = 0, moff = 0, next = RS_NONE;
        if (!d->judged) {
            mlen = try_continuation(d, in + pos, avail, &next);
            moff = d->cont * bl;
            if (!mlen && avail >= bl && !d->have_h) {
                /* the weak sum of the window, only now that it is needed */
                d->ws = pd_rs_wstate_of(kind, in + pos, bl);
                d->have_h = 1;
            }
            if (!mlen && avail >= bl && t->ix.nuniq) {
                uint8_t sh[PD_RS_BLAKE2_LEN];
                int have_sh = 0;
                int64_t b = table_match(t, pd_rs_wdigest(kind, d->ws), in + pos,
                                        sh, &have_sh);
                if (b >= 0) {
                    mlen = bl;
                    moff = (uint64_t)b * bl;
                    next = (uint64_t)b + 1;
                }
            }
            if (!mlen && avail < bl) {
                /* End of NEW: the last block may still end it. */
                if (!d->fin_searched) {
                    d->fin_len = last_as_suffix(t, in + pos, avail);
                    d->fin_searched = 1;
                }
                if (d->fin_len && d->fin_len == avail) {
                    mlen = avail;
                    moff = (t->nblocks - 1) * bl;
                    next = RS_NONE;
                    d->fin_len = 0;
                }
            }
        }
        if (mlen) {
            size_t here = pos - lit_start;
            if (d->w.lit_len + here)
                o += pd_ops_literal(&d->w, out + o, in + lit_start, here);
            o += pd_ops_copy(&d->w, out + o, moff, mlen);
            pos += mlen;
            lit_start = pos;
            d->have_h = 0;
            d->cont = next;
            continue;
        }

        /* A miss: the first byte of the window is literal. */
        o += pd_ops_flush_copy(&d->w, out + o);
        d->cont = RS_NONE;
        if (avail < bl) {
            /* End of NEW, less than a block left: literal up to where the
             * last block matches (if it does), then that copy. */
            size_t lit = avail - d->fin_len;
            size_t room = PD_RS_LIT_MAX - d->w.lit_len - (pos - lit_start);
            pos += lit < room ? lit : room;
        } else if (avail == bl) {
            if (!eof) {
                d->judged = 1;
                rc = PD_NEED_INPUT;
                goto suspend;
            }
            pos++;
            d->have_h = 0;
            d->judged = 0;
        } else {
            size_t limit = lit_start + (PD_RS_LIT_MAX - d->w.lit_len);
            size_t end = in_len - bl;
            if (end > limit)
                end = limit;
            if (kind == PD_RS_WEAK_RABINKARP) {
                uint32_t h = d->ws.a;
                const pd_rs_roller *r = &t->roller;
                h = pd_rs_rk_roll(h, in[pos], in[pos + bl], r);
                pos++;
                if (!bloom_test(t, h)) {
                    /* Two bytes per step: h2 = h*M^2 + c0*M + c1 keeps the
                     * multiply chain at one per two bytes; the window in
                     * between is still tested, so the loop stops exactly
                     * where the byte-by-byte one would. */
                    const uint32_t m = PD_RS_RK_MULT, m2 = m * m;
                    while (pos + 2 <= end) {
                        uint32_t c0 =
                            (uint32_t)in[pos + bl] - r->rk_out[in[pos]];
                        uint32_t c1 =
                            (uint32_t)in[pos + 1 + bl] - r->rk_out[in[pos + 1]];
                        uint32_t h1 = h * m + c0;
                        uint32_t h2 = h * m2 + (c0 * m + c1);
                        if (bloom_test(t, h1)) {
                            h = h1;
                            pos++;
                            goto rk_stop;
                        }
                        h = h2;
                        pos += 2;
                        if (bloom_test(t, h))
                            goto rk_stop;
                    }
                    while (pos < end && !bloom_test(t, h)) {
                        h = pd_rs_rk_roll(h, in[pos], in[pos + bl], r);
                        pos++;
                    }
                }
            rk_stop:
                d->ws.a = h;
            } else {
                pd_rs_wstate s = d->ws;
                const uint32_t n = (uint32_t)bl;
                s = pd_rs_rs_roll(s, in[pos], in[pos + bl], n);
                pos++;
                while (pos < end && !bloom_test(t, pd_rs_wdigest(kind, s))) {
                    s = pd_rs_rs_roll(s, in[pos], in[pos + bl], n);
                    pos++;
                }
                d->ws = s;
            }
            d->judged = 0;
        }
        if (d->w.lit_len + (pos - lit_start) == PD_RS_LIT_MAX) {
            o +=
                pd_ops_literal(&d->w, out + o, in + lit_start, pos - lit_start);
            lit_start = pos;
        }
    }

    if (pos - lit_start + d->w.lit_len)
        o += pd_ops_literal(&d->w, out + o, in + lit_start, pos - lit_start);
    o += pd_ops_flush_copy(&d->w, out + o);
    d->used += pos;
    out[o++] = PD_RS_OP_END;
    d->done = 1;
    *in_used = pos;
    *out_used = o;
    return PD_DONE;

suspend:
    pd_ops_carry(&d->w, in + lit_start, pos - lit_start);
    d->used += pos;
    *in_used = pos;
    *out_used = o;
    return rc;
}

/* ---- patch -------------------------------------------------------------- */

struct pd_rs_patch {
    pd_patcher c; /* first: the shared job of patch.c */
    uint64_t copies, copied, literals, literal;
};

static long parse_cmd(pd_patcher *c, const uint8_t *in, size_t avail);

pd_rs_patch *pd_rs_patch_new(int old_fd, uint64_t old_size)
{
    pd_rs_patch *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c.parse = parse_cmd;
    p->c.fd = old_fd;
    p->c.counting = old_fd < 0;
    p->c.old_size = old_fd < 0 ? UINT64_MAX : old_size;
    p->c.state = PD_ST_OP;
    if (old_fd >= 0) {
        p->c.hasher = pd_blake3_new();
        if (!p->c.hasher) {
            free(p);
            return NULL;
        }
    }
    return p;
}

void pd_rs_patch_free(pd_rs_patch *p)
{
    if (!p)
        return;
    if (p->c.hasher)
        pd_blake3_free(p->c.hasher);
    free(p);
}

void pd_rs_patch_set_sink(pd_rs_patch *p, pd_sink *s)
{
    if (!p->c.counting)
        p->c.sink = s;
}

int pd_rs_patch_errno(const pd_rs_patch *p)
{
    return p->c.err_no;
}

void pd_rs_patch_stats(const pd_rs_patch *p, uint64_t *result_size,
                       uint64_t *copies, uint64_t *copied, uint64_t *literals,
                       uint64_t *literal, uint8_t *digest)
{
    *result_size = p->copied + p->literal;
    *copies = p->copies;
    *copied = p->copied;
    *literals = p->literals;
    *literal = p->literal;
    if (p->c.hasher)
        pd_blake3_final(p->c.hasher, digest, PD_HASH_LEN);
    else
        memset(digest, 0, PD_HASH_LEN);
}

/* Parse one command header at in[0..avail): bytes used, 0 if incomplete,
 * or a negative pd_result. */
static long parse_cmd(pd_patcher *c, const uint8_t *in, size_t avail)
{
    pd_rs_patch *p = (pd_rs_patch *)c;
    if (avail == 0)
        return 0;
    uint8_t op = in[0];
    if (op == PD_RS_OP_END) {
        c->state = PD_ST_DONE;
        return 1;
    }
    if (op <= 64) {
        c->rem = op;
        p->literals++;
        p->literal += op;
        c->state = PD_ST_LITERAL;
        return 1;
    }
    if (op < PD_RS_OP_COPY_BASE) {
        int w = width_bytes[op - PD_RS_OP_LITERAL_N1];
        if (avail < 1 + (size_t)w)
            return 0;
        uint64_t len = pd_rs_get_be(in + 1, w);
        if (len == 0 || len > UINT64_MAX - p->literal)
            return PD_ERR_CORRUPT;
        c->rem = len;
        p->literals++;
        p->literal += len;
        c->state = PD_ST_LITERAL;
        return 1 + w;
    }
    if (op < PD_RS_OP_COPY_BASE + 16) {
        int k = op - PD_RS_OP_COPY_BASE;
        int wo = width_bytes[k / 4], wl = width_bytes[k % 4];
        if (avail < 1 + (size_t)wo + (size_t)wl)
            return 0;
        uint64_t off = pd_rs_get_be(in + 1, wo);
        uint64_t len = pd_rs_get_be(in + 1 + wo, wl);
        if (len == 0 || len > UINT64_MAX - p->copied)
            return PD_ERR_CORRUPT;
        if (off > c->old_size || len > c->old_size - off)
            return PD_ERR_BOUNDS;
        c->off = off;
        c->rem = len;
        p->copies++;
        p->copied += len;
        c->state = PD_ST_COPY;
        return 1 + wo + wl;
    }
    return PD_ERR_CORRUPT;
}

int pd_rs_patch_step(pd_rs_patch *p, const uint8_t *in, size_t in_len,
                     uint8_t *out, size_t out_cap, size_t *in_used,
                     size_t *out_used)
{
    return pd_patcher_step(&p->c, in, in_len, out, out_cap, in_used, out_used);
}
