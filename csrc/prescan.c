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
 */
#include "internal.h"

size_t pd_delta_prescan(const pd_sigtable *t, const uint8_t *buf, size_t len,
                        size_t from, size_t to, uint64_t base, uint64_t *hits,
                        size_t cap, uint64_t *done_to)
{
    const size_t bl = t->block_len;
    size_t n = 0;
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
    const uint64_t *tab = t->out_tab;
    const uint64_t m1 = PD_WEAK_M, m2 = m1 * m1, m3 = m2 * m1, m4 = m2 * m2;
    uint64_t h = pd_weak(buf + from, bl), hs[4];
    size_t x = from;
    for (;;) {
        /* the sums of windows x .. x+k-1: four at a time from h at x (as
         * the scan's fast loop does), one at a time near the end */
        size_t k = 1;
        hs[0] = h;
        if (x + 4 < to) {
            const uint8_t *o_ = buf + x, *i_ = buf + x + bl;
            uint64_t x1 = (uint64_t)i_[0] - tab[o_[0]];
            uint64_t x2 = (uint64_t)i_[1] - tab[o_[1]];
            uint64_t x3 = (uint64_t)i_[2] - tab[o_[2]];
            uint64_t x4 = (uint64_t)i_[3] - tab[o_[3]];
            hs[1] = h * m1 + x1;
            hs[2] = h * m2 + (x1 * m1 + x2);
            hs[3] = h * m3 + (x1 * m2 + x2 * m1 + x3);
            h = h * m4 + (x1 * m3 + x2 * m2 + x3 * m1 + x4);
            k = 4;
        } else if (x + 1 < to) {
            h = pd_weak_roll(h, buf[x], buf[x + bl], tab);
        }
        for (size_t i = 0; i < k; i++) {
            if (pd_bloom_test(&t->ix, hs[i]) && pd_windex_find(&t->ix, hs[i])) {
                if (n == cap) {
                    *done_to = base + x + i; /* not certified from here */
                    return n;
                }
                hits[n++] = base + x + i;
            }
        }
        x += k;
        if (x >= to)
            break;
    }
    *done_to = base + to;
    return n;
}
