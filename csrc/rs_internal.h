/** \file rs_internal.h
 * Definitions shared by the librsync-interop C files (rs_hash.c, rs_sums.c,
 * rs_job.c) and never seen by Python: big-endian wire helpers, the two
 * 32-bit weak sums librsync uses with their rolling steps, and the strong
 * hash entry points.
 *
 * Weak sums (librsync's definitions, see docs/librsync-format.md):
 *   RabinKarp  h = 1, then h = h * 0x08104225 + b for every byte (mod 2^32).
 *              Rolling a window of n bytes: h' = h*M + in - M^n * (out + M-1).
 *   rollsum    s1 = sum(b + 31), s2 = sum of the running s1 (both mod 2^16),
 *              digest (s2 << 16) | s1. Rolling: s1 += in - out,
 *              s2 += s1' - n * (out + 31).
 * The rolling state is a pair (a, b): a = h for RabinKarp; a = s1, b = s2
 * (kept unmasked in 32 bits, masked only to form the digest) for rollsum.
 */
#ifndef PD_RS_INTERNAL_H
#define PD_RS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PD_RS_RK_MULT 0x08104225u
/** (MULT - 1) * seed, the constant folded into the byte leaving a window. */
#define PD_RS_RK_ADJ 0x08104224u
#define PD_RS_CHAR_OFFSET 31u

/** Store v as n big-endian bytes (n <= 8). */
static inline void pd_rs_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/** Load n big-endian bytes (n <= 8). */
static inline uint64_t pd_rs_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/** M^k mod 2^32 for RabinKarp. */
static inline uint32_t pd_rs_rk_pow(uint64_t k)
{
    uint32_t r = 1, b = PD_RS_RK_MULT;
    while (k) {
        if (k & 1)
            r *= b;
        b *= b;
        k >>= 1;
    }
    return r;
}

/** Rolling state of a weak sum over a window. */
typedef struct {
    uint32_t a, b;
} pd_rs_wstate;

/** The 32-bit digest of a rolling state. */
static inline uint32_t pd_rs_wdigest(int kind, pd_rs_wstate s)
{
    if (kind == PD_RS_WEAK_RABINKARP)
        return s.a;
    return ((s.b & 0xffffu) << 16) | (s.a & 0xffffu);
}

/** Per-window-length constants for rolling: rk_out[c] = M^n * (c + M - 1)
 * for RabinKarp, n itself for rollsum. */
typedef struct {
    uint32_t n;
    uint32_t rk_out[256];
} pd_rs_roller;

static inline void pd_rs_roller_init(pd_rs_roller *r, uint32_t n)
{
    uint32_t mn = pd_rs_rk_pow(n);
    r->n = n;
    for (uint32_t c = 0; c < 256; c++)
        r->rk_out[c] = mn * (c + PD_RS_RK_ADJ);
}

/** Roll a RabinKarp window one byte. */
static inline uint32_t pd_rs_rk_roll(uint32_t h, uint8_t out, uint8_t in,
                                     const pd_rs_roller *r)
{
    return h * PD_RS_RK_MULT + in - r->rk_out[out];
}

/** Roll a rollsum window one byte (state unmasked). */
static inline pd_rs_wstate pd_rs_rs_roll(pd_rs_wstate s, uint8_t out,
                                         uint8_t in, uint32_t n)
{
    s.a += (uint32_t)in - (uint32_t)out;
    s.b += s.a - n * ((uint32_t)out + PD_RS_CHAR_OFFSET);
    return s;
}

/** Extend a state by one byte at the end (the window grows). For
 * RabinKarp this is a Horner step; for rollsum s1 += b + 31, s2 += s1. */
static inline pd_rs_wstate pd_rs_wpush(int kind, pd_rs_wstate s, uint8_t c)
{
    if (kind == PD_RS_WEAK_RABINKARP) {
        s.a = s.a * PD_RS_RK_MULT + c;
    } else {
        s.a += (uint32_t)c + PD_RS_CHAR_OFFSET;
        s.b += s.a;
    }
    return s;
}

/** The state of an empty window. */
static inline pd_rs_wstate pd_rs_wempty(int kind)
{
    pd_rs_wstate s = {kind == PD_RS_WEAK_RABINKARP ? 1u : 0u, 0u};
    return s;
}

/* rs_sums.c: the state of one window of len bytes (fast, vectorized). */
pd_rs_wstate pd_rs_wstate_of(int kind, const uint8_t *data, size_t len);

/* rs_hash.c: strong sums. `strong` is PD_RS_STRONG_BLAKE2 or _MD4; the
 * digest written is the full PD_RS_BLAKE2_LEN or PD_RS_MD4_LEN bytes. */
void pd_rs_strong(int strong, const uint8_t *data, size_t len, uint8_t *out);
/* n inputs of len bytes each at data + i * stride; digest i goes to
 * out + i * PD_RS_BLAKE2_LEN (always that spacing, whatever the hash). */
void pd_rs_strong_many(int strong, const uint8_t *data, size_t stride, size_t n,
                       size_t len, uint8_t *out);

#endif
