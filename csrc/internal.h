/** \file internal.h
 * Definitions shared by the core's C files and never seen by Python:
 * the weak rolling sum's hot-path inlines, little-endian and varint wire
 * helpers, and the layout of the signature table that the delta scan
 * walks directly.
 *
 * The weak sum is a polynomial (Rabin-Karp style) hash over 64-bit words:
 *     h(c_0 .. c_{n-1}) = sum c_i * M^(n-1-i)   (mod 2^64)
 * with M an odd 64-bit constant. Rolling one byte is
 *     h' = h*M + c_in - c_out*M^n,
 * and c_out*M^n comes from a 256-entry table built per block length, so the
 * loop-carried dependency is a single multiply-add. 64 bits keep false
 * weak matches (each costing a strong hash of a block) negligible even for
 * signatures with millions of blocks, where rsync's 32-bit sum would not.
 */
#ifndef PD_INTERNAL_H
#define PD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pydelta.h"

/** Multiplier of the weak polynomial hash (odd, well mixed). */
#define PD_WEAK_M 0x9E3779B97F4A7C15ULL
/** Value that marks "no continuation offset" in the delta scan. */
#define PD_NONE UINT64_MAX

/** Store v as 8 little-endian bytes. */
static inline void pd_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/** Load 8 little-endian bytes. */
static inline uint64_t pd_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/** Write v as an unsigned LEB128 varint; returns bytes written (<= 10). */
static inline size_t pd_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/** Parse a varint from p[0..avail). Returns bytes used, 0 if more input is
 * needed, or -1 if the encoding is overlong or overflows 64 bits. */
static inline int pd_get_varint(const uint8_t *p, size_t avail, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i >= avail)
            return 0;
        uint8_t b = p[i];
        if (i == 9 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            /* a trailing zero group would be a second spelling */
            if (i > 0 && b == 0)
                return -1;
            *v = r;
            return (int)(i + 1);
        }
    }
    return -1;
}

/** M^k mod 2^64. */
static inline uint64_t pd_weak_pow(uint64_t k)
{
    uint64_t r = 1, b = PD_WEAK_M;
    while (k) {
        if (k & 1)
            r *= b;
        b *= b;
        k >>= 1;
    }
    return r;
}

/** Fill out[c] = c * M^n for rolling a window of n bytes. */
static inline void pd_weak_out_table(uint64_t n, uint64_t out[256])
{
    uint64_t mn = pd_weak_pow(n);
    for (int c = 0; c < 256; c++)
        out[c] = (uint64_t)c * mn;
}

/** Roll the window one byte: drop c_out, take c_in. */
static inline uint64_t pd_weak_roll(uint64_t h, uint8_t c_out, uint8_t c_in,
                                    const uint64_t out_tab[256])
{
    return h * PD_WEAK_M + ((uint64_t)c_in - out_tab[c_out]);
}

/** The signature table: per-block sums plus a deduplicated hash index.
 *
 * Only full-length blocks are indexed for the rolling search; a shorter
 * final block (the tail) is matched only as the continuation of a copy
 * that reaches it, which is where it sits in a file that was appended to
 * or left unchanged. Identical blocks (same weak and strong sum) are kept
 * once, the lowest index winning, so a basis full of zeros or padding has
 * one candidate per weak value and the scan cannot go quadratic. */
struct pd_sigtable {
    uint64_t nblocks;      /* entries, including a tail block */
    uint64_t nfull;        /* entries of exactly block_len bytes */
    uint64_t basis_size;   /* bytes of the basis */
    uint32_t block_len;
    uint32_t strong_len;
    uint32_t tail_len;     /* bytes of the last block if short, else 0 */
    uint64_t *weak;        /* [nblocks] weak sum of each block */
    uint8_t *strong;       /* [nblocks * strong_len] */
    uint64_t nuniq;        /* distinct full blocks */
    uint64_t *uweak;       /* [nuniq] sorted weak sums of distinct blocks */
    uint64_t *uidx;        /* [nuniq] their block indexes */
    uint64_t *slot;        /* [tmask+1] 1 + index into uweak of a run, or 0 */
    uint64_t tmask;
    uint64_t *bloom;       /* pre-filter bit set over the weak sums */
    unsigned bloom_shift;  /* 64 - log2(bloom bits) */
    uint64_t out_tab[256]; /* c * M^block_len, for rolling */
};

/** At most this many distinct blocks sharing one weak sum are tried. */
#define PD_MAX_CANDIDATES 16

/** Bloom filter bit of a weak sum. */
static inline uint64_t pd_bloom_bit(const struct pd_sigtable *t, uint64_t h)
{
    return (h * 0xD6E8FEB86659FD93ULL) >> t->bloom_shift;
}

/** Test the pre-filter: 0 means h is surely not in the table. */
static inline int pd_bloom_test(const struct pd_sigtable *t, uint64_t h)
{
    uint64_t b = pd_bloom_bit(t, h);
    return (int)((t->bloom[b >> 6] >> (b & 63)) & 1);
}

/** Slot of a weak sum in the open-addressing index. */
static inline uint64_t pd_slot_of(const struct pd_sigtable *t, uint64_t h)
{
    return ((h ^ (h >> 31)) * 0x9E3779B97F4A7C15ULL >> 17) & t->tmask;
}

/** Find a block matching data[0..block_len) given its weak sum h; the
 * strong hash of data is computed at most once into sh (flag *have_sh).
 * Returns the block index or -1. */
int64_t pd_sigtable_match(const struct pd_sigtable *t, uint64_t h,
                          const uint8_t *data, uint8_t sh[PD_HASH_LEN],
                          int *have_sh);

#endif
