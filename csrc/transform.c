/** \file transform.c
 * The byte grouping of compressed literals (transform 2 of the 'Z'
 * instruction, pydelta/formats/literals.py): the bytes at even offsets
 * first, then those at odd offsets. For 16-bit values (float16, bfloat16)
 * that puts the low and the high bytes in separate runs, which zstd
 * compresses better. Both directions are plain loops the compiler
 * vectorises; Python's stepped slicing ran them at ~150 MB/s.
 */

#include <stddef.h>
#include <stdint.h>

#include "pydelta.h"

void pd_group16(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t pairs = n / 2;
    uint8_t *lo = dst;
    uint8_t *hi = dst + (n + 1) / 2;
    for (size_t i = 0; i < pairs; i++) {
        lo[i] = src[2 * i];
        hi[i] = src[2 * i + 1];
    }
    if (n & 1)
        lo[pairs] = src[n - 1];
}

void pd_ungroup16(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t pairs = n / 2;
    const uint8_t *lo = src;
    const uint8_t *hi = src + (n + 1) / 2;
    for (size_t i = 0; i < pairs; i++) {
        dst[2 * i] = lo[i];
        dst[2 * i + 1] = hi[i];
    }
    if (n & 1)
        dst[n - 1] = lo[pairs];
}

/* floor(log2(x) * 2^16) for x >= 1 (0 for x = 0), by repeated squaring of
 * the mantissa: integers only, so every machine makes the same choice. */
static uint64_t log2_q16(uint64_t x)
{
    if (x == 0)
        return 0;
    int k = 63 - __builtin_clzll(x);
    uint64_t m = k >= 31 ? x >> (k - 31) : x << (31 - k); /* [2^31, 2^32) */
    uint64_t r = (uint64_t)k << 16;
    for (int b = 15; b >= 0; b--) {
        m = (m * m) >> 31; /* m < 2^32, so m * m < 2^64 */
        if (m >= (1ULL << 32)) {
            m >>= 1;
            r |= 1ULL << b;
        }
    }
    return r;
}

/* total * H(counts) in bits * 2^16: total*log2(total) - sum c*log2(c). */
static uint64_t order0_cost(const uint64_t *counts, uint64_t total)
{
    uint64_t s = 0;
    for (int c = 0; c < 256; c++)
        s += counts[c] * log2_q16(counts[c]);
    uint64_t t = total * log2_q16(total);
    return t > s ? t - s : 0;
}

void pd_lit_costs(const uint8_t *buf, size_t n, uint64_t costs[2])
{
    /* two tables per stream, so runs of one byte value do not serialise
     * on a single counter */
    uint64_t e0[256] = {0}, e1[256] = {0}, o0[256] = {0}, o1[256] = {0};
    uint64_t ev[256], od[256], all[256];
    uint64_t ne = 0, no = 0;
    if (n > PD_LIT_COSTS_MAX)
        n = PD_LIT_COSTS_MAX;
    /* a sample: the first of every PD_LIT_COSTS_STRIDE lines of
     * PD_LIT_COSTS_LINE bytes (lines start at even offsets) */
    for (size_t at = 0; at < n; at += PD_LIT_COSTS_LINE * PD_LIT_COSTS_STRIDE) {
        size_t end = n - at < PD_LIT_COSTS_LINE ? n : at + PD_LIT_COSTS_LINE;
        size_t i = at;
        for (; i + 4 <= end; i += 4) {
            e0[buf[i]]++;
            o0[buf[i + 1]]++;
            e1[buf[i + 2]]++;
            o1[buf[i + 3]]++;
        }
        for (; i < end; i++) {
            if (i & 1)
                o0[buf[i]]++;
            else
                e0[buf[i]]++;
        }
    }
    for (int c = 0; c < 256; c++) {
        ev[c] = e0[c] + e1[c];
        od[c] = o0[c] + o1[c];
        all[c] = ev[c] + od[c];
        ne += ev[c];
        no += od[c];
    }
    costs[0] = order0_cost(all, ne + no);
    costs[1] = order0_cost(ev, ne) + order0_cost(od, no);
}
