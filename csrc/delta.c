/** \file delta.c
 * The delta scan: roll the weak sum over NEW, look windows up in the
 * signature table, and emit COPY / LITERAL ops.
 *
 * The job is resumable at any byte: the caller passes the unused input
 * again at the front of each call, and everything that must survive
 * between calls (the current window's sum, a pending COPY being extended,
 * literal bytes not yet emitted) lives in struct pd_delta. Ops are cut at
 * positions that depend only on NEW and the signature - literals at
 * exactly PD_LIT_MAX bytes, copies where contiguity breaks - never on how
 * the input was chunked, so the delta is byte-identical whatever the I/O
 * buffer sizes.
 *
 * Search order at each window position:
 *   1. continuation: if the previous op copied block j, try block j+1 first
 *      (one strong hash, no weak sum needed). This keeps copies of
 *      repeated content contiguous so they merge into one long COPY, and it
 *      is the only way the short tail block of OLD is ever matched.
 *   2. the Bloom pre-filter and hash index over distinct blocks.
 * A window that misses emits its first byte as literal and rolls on; a
 * window that hits is copied and the scan jumps a whole block. Ops are
 * encoded by the op writer of scan.c, shared with the librsync scan.
 */
#include "internal.h"

struct pd_delta {
    const pd_sigtable *t;
    pd_blake3 *hasher; /* digest of NEW, over bytes as they are used */
    uint64_t used;     /* bytes of NEW used so far */
    uint64_t h;        /* weak sum of the window at the input front */
    int have_h;        /* h is valid */
    int judged;        /* window at the front already missed */
    uint64_t cont;     /* offset in OLD to try first, or PD_NONE */
    pd_ops w;          /* pending COPY, carried literal bytes */
    int done;
    int external;    /* NEW is hashed by the caller */
    int have_digest; /* ... and has given the digest */
    uint8_t digest[PD_HASH_LEN];
    /* pre-scan hint (prescan.c): windows starting in [hint_from, hint_to)
     * of NEW have no index candidate except at hints[hint_cur..hint_n) */
    uint64_t hint_from, hint_to;
    uint64_t *hints;
    size_t hint_n, hint_cap, hint_cur;
};

pd_delta *pd_delta_new(const pd_sigtable *t)
{
    pd_delta *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = t;
    d->cont = 0;
    d->hasher = pd_blake3_new();
    if (pd_ops_init(&d->w, PD_OPS_NATIVE) != PD_OK || !d->hasher) {
        pd_delta_free(d);
        return NULL;
    }
    return d;
}

void pd_delta_free(pd_delta *d)
{
    if (!d)
        return;
    pd_blake3_free(d->hasher);
    pd_ops_free(&d->w);
    free(d->hints);
    free(d);
}

void pd_delta_hash_externally(pd_delta *d)
{
    d->external = 1;
}

void pd_delta_set_digest(pd_delta *d, const uint8_t *digest)
{
    memcpy(d->digest, digest, PD_HASH_LEN);
    d->have_digest = 1;
}

void pd_delta_stats(const pd_delta *d, uint64_t *new_size, uint64_t *copied,
                    uint64_t *literal)
{
    *new_size = d->used;
    *copied = d->w.copied;
    *literal = d->w.literal;
}

int pd_delta_hint(pd_delta *d, uint64_t from, uint64_t to,
                  const uint64_t *hits, size_t n)
{
    d->hint_from = d->hint_to = 0;
    d->hint_n = d->hint_cur = 0;
    if (from > to)
        return PD_ERR_PARAM;
    for (size_t i = 0; i < n; i++)
        if (hits[i] < from || hits[i] >= to || (i && hits[i] <= hits[i - 1]))
            return PD_ERR_PARAM;
    if (n > d->hint_cap) {
        uint64_t *p = realloc(d->hints, n * sizeof *p);
        if (!p)
            return PD_ERR_NOMEM;
        d->hints = p;
        d->hint_cap = n;
    }
    if (n)
        memcpy(d->hints, hits, n * sizeof *hits);
    d->hint_n = n;
    d->hint_from = from;
    d->hint_to = to;
    return PD_OK;
}

/* In a literal run at absolute position a (no continuation pending): the
 * first position >= a the hint does not certify as a miss, or a itself. */
static uint64_t hint_skip(pd_delta *d, uint64_t a)
{
    if (a < d->hint_from || a >= d->hint_to)
        return a;
    while (d->hint_cur < d->hint_n && d->hints[d->hint_cur] < a)
        d->hint_cur++;
    return d->hint_cur < d->hint_n ? d->hints[d->hint_cur] : d->hint_to;
}

/* Try the continuation block at d->cont against data[0..avail). Returns the
 * matched length (a full block or the tail) or 0. */
static uint64_t try_continuation(pd_delta *d, const uint8_t *data, size_t avail,
                                 uint8_t sh[PD_HASH_LEN], int *have_sh)
{
    const pd_sigtable *t = d->t;
    if (d->cont == PD_NONE || d->cont >= t->basis_size)
        return 0;
    uint64_t j = d->cont / t->block_len;
    if (j < t->nfull) {
        /* the weak sum filters only if it is already known */
        if (avail < t->block_len || (d->have_h && t->weak[j] != d->h))
            return 0;
        if (!*have_sh) {
            pd_strong(t->strong_kind, data, t->block_len, sh, t->strong_len);
            *have_sh = 1;
        }
        if (memcmp(sh, t->strong + j * t->strong_len, t->strong_len))
            return 0;
        return t->block_len;
    }
    /* j is the tail block. */
    size_t n = t->tail_len;
    if (avail < n || pd_weak(data, n) != t->weak[j])
        return 0;
    uint8_t tsh[PD_HASH_LEN];
    pd_strong(t->strong_kind, data, n, tsh, t->strong_len);
    if (memcmp(tsh, t->strong + j * t->strong_len, t->strong_len))
        return 0;
    return n;
}

int pd_delta_scan(pd_delta *d, const uint8_t *in, size_t in_len, int eof,
                  uint8_t *out, size_t out_cap, size_t *in_used,
                  size_t *out_used)
{
    const pd_sigtable *t = d->t;
    const size_t bl = t->block_len;
    size_t pos = 0, lit_start = 0, o = 0;
    int rc;

    *in_used = 0;
    *out_used = 0;
    if (d->done)
        return PD_DONE;
    if (out_cap < PD_DELTA_MIN_OUT)
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

        uint64_t mlen = 0, moff = 0;
        if (!d->judged) {
            uint8_t sh[PD_HASH_LEN];
            int have_sh = 0;
            /* In unchanged data the continuation matches block after block;
             * it needs only the strong hash, so the weak sum of the window
             * is computed only when the continuation fails. */
            mlen = try_continuation(d, in + pos, avail, sh, &have_sh);
            moff = d->cont;
            if (!mlen && avail >= bl && t->ix.nuniq) {
                if (!d->have_h) {
                    d->h = pd_weak(in + pos, bl);
                    d->have_h = 1;
                }
                if (t->ix.nuniq) {
                    int64_t b =
                        pd_sigtable_match(t, d->h, in + pos, sh, &have_sh);
                    if (b >= 0) {
                        mlen = bl;
                        moff = (uint64_t)b * bl;
                    }
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
            d->cont = moff + mlen;
            continue;
        }

        /* A miss: the first byte of the window is literal. */
        o += pd_ops_flush_copy(&d->w, out + o);
        d->cont = PD_NONE;
        if (!t->ix.nuniq) {
            /* No full block to look up and no continuation: nothing left
             * in NEW can match (an empty or one-short-block basis, as when
             * a file is sent whole). Take literal bytes up to the cap
             * without rolling; the cuts are those of the rolling path. */
            size_t room = PD_LIT_MAX - d->w.lit_len - (pos - lit_start);
            pos += avail < room ? avail : room;
        } else if (avail < bl) {
            /* End of NEW, fewer than a block left: all literal. */
            size_t room = PD_LIT_MAX - d->w.lit_len - (pos - lit_start);
            pos += avail < room ? avail : room;
        } else if (avail == bl) {
            if (!eof) {
                /* Cannot roll without the next byte; resume here. */
                d->judged = 1;
                rc = PD_NEED_INPUT;
                goto suspend;
            }
            pos++;
            d->have_h = 0;
        } else {
            /* Roll through the literal run. The fast loop stops at a
             * pre-filter hit, the end of the buffer, or a full literal. */
            size_t limit = lit_start + (PD_LIT_MAX - d->w.lit_len);
            size_t end = in_len - bl;
            if (end > limit)
                end = limit;
            uint64_t h = d->h;
            const uint64_t *tab = t->out_tab;
            const uint64_t m1 = PD_WEAK_M, m2 = m1 * m1, m3 = m2 * m1,
                           m4 = m2 * m2;
            /* Windows the pre-scan certified as misses are skipped: the
             * first one it did not certify is rolled to afresh. */
            uint64_t next = hint_skip(d, d->used + pos + 1) - d->used;
            if (next > pos + 1 + 64) {
                pos = next < end ? (size_t)next : end;
                h = pd_weak(in + pos, bl);
            } else {
                h = pd_weak_roll(h, in[pos], in[pos + bl], tab);
                pos++;
            }
            /* Four positions per step: the sums at pos+1..pos+4 all come
             * from h at pos, so the loop-carried chain is one multiply-add
             * per four bytes and the other multiplies run in parallel. */
            while (pos + 4 <= end && !pd_bloom_test(&t->ix, h)) {
                const uint8_t *o_ = in + pos, *i_ = in + pos + bl;
                uint64_t x1 = (uint64_t)i_[0] - tab[o_[0]];
                uint64_t x2 = (uint64_t)i_[1] - tab[o_[1]];
                uint64_t x3 = (uint64_t)i_[2] - tab[o_[2]];
                uint64_t x4 = (uint64_t)i_[3] - tab[o_[3]];
                uint64_t h1 = h * m1 + x1;
                uint64_t h2 = h * m2 + (x1 * m1 + x2);
                uint64_t h3 = h * m3 + (x1 * m2 + x2 * m1 + x3);
                uint64_t h4 = h * m4 + (x1 * m3 + x2 * m2 + x3 * m1 + x4);
                if (pd_bloom_test(&t->ix, h1)) {
                    h = h1;
                    pos += 1;
                    break;
                }
                if (pd_bloom_test(&t->ix, h2)) {
                    h = h2;
                    pos += 2;
                    break;
                }
                if (pd_bloom_test(&t->ix, h3)) {
                    h = h3;
                    pos += 3;
                    break;
                }
                h = h4;
                pos += 4;
            }
            while (pos < end && !pd_bloom_test(&t->ix, h)) {
                h = pd_weak_roll(h, in[pos], in[pos + bl], tab);
                pos++;
            }
            d->h = h;
            d->judged = 0;
        }
        if (d->w.lit_len + (pos - lit_start) == PD_LIT_MAX) {
            o +=
                pd_ops_literal(&d->w, out + o, in + lit_start, pos - lit_start);
            lit_start = pos;
        }
    }

    /* All of NEW is decided: flush and write END with the trailer. */
    if (d->external && !d->have_digest)
        return PD_ERR_PARAM;
    if (pos - lit_start + d->w.lit_len)
        o += pd_ops_literal(&d->w, out + o, in + lit_start, pos - lit_start);
    lit_start = pos;
    o += pd_ops_flush_copy(&d->w, out + o);
    if (!d->external)
        pd_blake3_update(d->hasher, in, pos);
    d->used += pos;
    out[o++] = PD_OP_END;
    pd_put_u64(out + o, d->used);
    if (d->external)
        memcpy(out + o + 8, d->digest, PD_HASH_LEN);
    else
        pd_blake3_final(d->hasher, out + o + 8, PD_HASH_LEN);
    o += PD_TRAILER_LEN;
    d->done = 1;
    *in_used = pos;
    *out_used = o;
    return PD_DONE;

suspend:
    /* Carry the literal bytes of this call; they are about to leave the
     * caller's buffer. The invariant lit_len < PD_LIT_MAX holds here. */
    pd_ops_carry(&d->w, in + lit_start, pos - lit_start);
    if (!d->external)
        pd_blake3_update(d->hasher, in, pos);
    d->used += pos;
    *in_used = pos;
    *out_used = o;
    return rc;
}
