/** \file prescan.c
 * The parallel pre-scan of the delta: where NEW has little in common with
 * the basis, the scan spends its time rolling the weak sum through
 * literal runs. Worker threads pre-scan segments of the input buffer in
 * parallel and record the positions whose window has a candidate in the
 * weak-sum index; every other window of a segment is a certified miss.
 *
 * The scan itself (delta.c) stays the single-threaded state machine it
 * was: given the certified ranges as a hint, it jumps over windows it
 * would have found missing anyway (in a literal run, with no
 * continuation pending, a window's fate depends only on its own bytes)
 * and evaluates every other window as before. The ops, and so the delta,
 * are therefore byte-identical whatever the thread count or segment
 * boundaries: a hint only saves work, it never decides anything.
 *
 * Within one call the work is arranged for the instruction count, which
 * bounds it (every window of NEW passes through here):
 * - the range is cut into PRESCAN_STREAMS stretches rolled side by side,
 *   so each window's sum costs one multiplication in a chain of its own
 *   (the scan's four-at-a-time step costs 2.5 a window);
 * - each window is first tested against the index's sieve (one bit from
 *   the sum's top bits: pd_sieve_test), PRESCAN_BATCH windows a stream at
 *   a time, branch-free into a bit set;
 * - the few windows through the sieve (~1.5%) then take the bloom filter,
 *   all of a batch's loads issued before any is used, and the index.
 * On the all-different (retune) GiB this took the pre-scan from ~3.5 to
 * ~2.7 CPU-ns a window (bench/prescan_bench.py, interleaved, load ~3).
 * The bloom filter's test for every window had cost about as much as a
 * 32 KiB table's: the instructions bound it, not the cache.
 */
#include "internal.h"

#include <string.h>

#define PRESCAN_STREAMS 4
#define PRESCAN_BATCH 16
/* Shorter ranges are one stream (the extra starting sums would not pay). */
#define PRESCAN_SPLIT_MIN (1u << 16)

/* One stream's state: windows [at, end) left, h the sum of window at;
 * its hits go to out[0..n), at most lim of them. */
typedef struct {
    size_t at, end;
    uint64_t h;
    uint64_t *out;
    size_t n, lim;
} prescan_stream;

/* Finish stream s one window at a time. Returns the window at which its
 * hit space ran out (not certified from there), or s->end. */
static size_t prescan_tail(const pd_sigtable *t, const uint8_t *buf,
                           size_t last, uint64_t base, prescan_stream *s)
{
    const size_t bl = t->block_len;
    const uint64_t *tab = t->out_tab;
    uint64_t h = s->h;
    for (size_t w = s->at; w < s->end; w++) {
        if (pd_sieve_test(&t->ix, h) && pd_bloom_test(&t->ix, h) &&
            pd_windex_find(&t->ix, h)) {
            if (s->n == s->lim)
                return w;
            s->out[s->n++] = base + w;
        }
        if (w + 1 < last) /* the next window lies inside buf */
            h = pd_weak_roll(h, buf[w], buf[w + bl], tab);
    }
    return s->end;
}

/* The streams side by side while each has more than a batch left. Returns
 * 0, or 1 if a stream ran out of hit space: then *stop is where what is
 * certified ends (stream 0's windows only) and stream 0's hits before it
 * are kept. */
static int prescan_streams(const pd_sigtable *t, const uint8_t *buf,
                           uint64_t base, prescan_stream *st, size_t *stop)
{
    const size_t bl = t->block_len;
    const uint64_t *tab = t->out_tab;
    const pd_windex *ix = &t->ix;
    uint64_t hs[PRESCAN_STREAMS][PRESCAN_BATCH];
    uint64_t ch[PRESCAN_STREAMS * PRESCAN_BATCH]; /* through the sieve */
    uint8_t cs[PRESCAN_STREAMS * PRESCAN_BATCH], cj[PRESCAN_STREAMS * PRESCAN_BATCH];
    uint8_t cb[PRESCAN_STREAMS * PRESCAN_BATCH];
    /* the streams are equally long but the last (longer by < 4 windows):
     * stream 0 runs out first. Every sum rolled here is of a window of
     * its own stream, so inside buf. */
    while (st[0].at + PRESCAN_BATCH < st[0].end) {
        const uint8_t *o0 = buf + st[0].at, *o1 = buf + st[1].at;
        const uint8_t *o2 = buf + st[2].at, *o3 = buf + st[3].at;
        uint64_t h0 = st[0].h, h1 = st[1].h, h2 = st[2].h, h3 = st[3].h;
        for (size_t j = 0; j < PRESCAN_BATCH; j++) {
            hs[0][j] = h0;
            hs[1][j] = h1;
            hs[2][j] = h2;
            hs[3][j] = h3;
            h0 = pd_weak_roll(h0, o0[j], o0[j + bl], tab);
            h1 = pd_weak_roll(h1, o1[j], o1[j + bl], tab);
            h2 = pd_weak_roll(h2, o2[j], o2[j + bl], tab);
            h3 = pd_weak_roll(h3, o3[j], o3[j + bl], tab);
        }
        st[0].h = h0, st[1].h = h1, st[2].h = h2, st[3].h = h3;
        size_t nc = 0;
        for (size_t i = 0; i < PRESCAN_STREAMS; i++) {
            uint32_t maybe = 0;
            for (size_t j = 0; j < PRESCAN_BATCH; j++)
                maybe |= (uint32_t)pd_sieve_test(ix, hs[i][j]) << j;
            while (maybe) { /* in stream order, ascending: as recorded */
                size_t j = (size_t)__builtin_ctz(maybe);
                maybe &= maybe - 1;
                ch[nc] = hs[i][j];
                cs[nc] = (uint8_t)i;
                cj[nc++] = (uint8_t)j;
            }
        }
        for (size_t c = 0; c < nc; c++)
            cb[c] = (uint8_t)pd_bloom_test(ix, ch[c]);
        for (size_t c = 0; c < nc; c++) {
            if (!cb[c] || !pd_windex_find(ix, ch[c]))
                continue;
            prescan_stream *s = &st[cs[c]];
            if (s->n == s->lim) {
                /* stream 0's batch was all tested before stream 1's */
                *stop = cs[c] ? st[0].at + PRESCAN_BATCH : st[0].at + cj[c];
                while (st[0].n && st[0].out[st[0].n - 1] >= base + *stop)
                    st[0].n--;
                return 1;
            }
            s->out[s->n++] = base + s->at + cj[c];
        }
        for (size_t i = 0; i < PRESCAN_STREAMS; i++)
            st[i].at += PRESCAN_BATCH;
    }
    return 0;
}

size_t pd_delta_prescan(const pd_sigtable *t, const uint8_t *buf, size_t len,
                        size_t from, size_t to, uint64_t base, uint64_t *hits,
                        size_t cap, uint64_t *done_to)
{
    const size_t bl = t->block_len;
    *done_to = base + from;
    if (bl == 0 || len < bl || from > len - bl || base > UINT64_MAX - len)
        return 0;
    size_t last = len - bl + 1; /* windows start before this */
    if (to > last)
        to = last;
    if (from >= to)
        return 0;
    if (!t->ix.nuniq) { /* nothing to find: all certified */
        *done_to = base + to;
        return 0;
    }
    prescan_stream st[PRESCAN_STREAMS];
    size_t ns = PRESCAN_STREAMS;
    if (to - from < PRESCAN_SPLIT_MIN || cap < PRESCAN_STREAMS)
        ns = 1;
    /* each stream its share of the range and of the hit space */
    size_t part = (to - from) / ns, lim = cap / ns;
    for (size_t i = 0; i < ns; i++) {
        st[i].at = from + i * part;
        st[i].end = i + 1 == ns ? to : st[i].at + part;
        st[i].h = pd_weak(buf + st[i].at, bl);
        st[i].out = hits + i * lim;
        st[i].n = 0;
        st[i].lim = i + 1 == ns ? cap - i * lim : lim;
    }
    size_t stop;
    if (ns == PRESCAN_STREAMS && prescan_streams(t, buf, base, st, &stop)) {
        *done_to = base + stop;
        return st[0].n;
    }
    /* each stream's rest, in order (all before it complete), its hits
     * moved down after those before it */
    size_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        size_t end = prescan_tail(t, buf, last, base, &st[i]);
        if (st[i].n && st[i].out != hits + n)
            memmove(hits + n, st[i].out, st[i].n * sizeof *hits);
        n += st[i].n;
        if (end != st[i].end) {
            *done_to = base + end;
            return n;
        }
    }
    *done_to = base + to;
    return n;
}
