/** \file blake3_simd.c
 * x86 SIMD kernels for BLAKE3: hash 4 (SSE4.1), 8 (AVX2) or 16 (AVX-512)
 * independent inputs at once, one input per 32-bit vector lane.
 *
 * Each vector holds the same state word (or message word) of every lane,
 * so the compression runs exactly like the scalar one in blake3_impl.h,
 * with v0..v15 and the message words being vectors; B3_ROUNDS is shared
 * and only the quarter-round G differs. Message blocks are loaded one
 * lane at a time (a row per lane) and transposed into word vectors; the
 * chaining values are transposed back into a row per lane at the end.
 *
 * The kernels carry __attribute__((target(...))), so the file builds with
 * the project's plain flags; blake3.c calls one only after checking the
 * CPU (and never on other architectures, where this file is empty).
 * Rotations by 16 and 8 are byte shuffles, by 12 and 7 shifts (AVX-512
 * has a rotate instruction for all four).
 */

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "pydelta.h"
#include "blake3_impl.h"

#if defined(B3_X86_SIMD)

#include <immintrin.h>

/* Ask for the same block of the next group of inputs (the kernels are run
 * over consecutive groups): with many lanes 1 KiB apart, the hardware
 * prefetchers lose track when the data streams from memory. A prefetch
 * past the end of the input is harmless (it never faults). */
static inline __attribute__((always_inline)) void b3_prefetch(const uint8_t *p)
{
    _mm_prefetch((const char *)p, _MM_HINT_T0);
}

/* ---- SSE4.1: 4 lanes ---------------------------------------------------- */

#define B3_SSE41_FN __attribute__((target("sse4.1")))
#define B3_SSE41_INLINE                                                        \
    static inline __attribute__((target("sse4.1"), always_inline))

B3_SSE41_INLINE __m128i b3_rot16_x4(__m128i x)
{
    return _mm_shuffle_epi8(
        x, _mm_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2));
}

B3_SSE41_INLINE __m128i b3_rot8_x4(__m128i x)
{
    return _mm_shuffle_epi8(
        x, _mm_set_epi8(12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1));
}

B3_SSE41_INLINE __m128i b3_rot12_x4(__m128i x)
{
    return _mm_or_si128(_mm_srli_epi32(x, 12), _mm_slli_epi32(x, 20));
}

B3_SSE41_INLINE __m128i b3_rot7_x4(__m128i x)
{
    return _mm_or_si128(_mm_srli_epi32(x, 7), _mm_slli_epi32(x, 25));
}

#define B3_G_X4(a, b, c, d, x, y)                                              \
    do {                                                                       \
        a = _mm_add_epi32(_mm_add_epi32(a, b), x);                             \
        d = b3_rot16_x4(_mm_xor_si128(d, a));                                  \
        c = _mm_add_epi32(c, d);                                               \
        b = b3_rot12_x4(_mm_xor_si128(b, c));                                  \
        a = _mm_add_epi32(_mm_add_epi32(a, b), y);                             \
        d = b3_rot8_x4(_mm_xor_si128(d, a));                                   \
        c = _mm_add_epi32(c, d);                                               \
        b = b3_rot7_x4(_mm_xor_si128(b, c));                                   \
    } while (0)

/* Transpose the 4x4 matrix of 32-bit words in r[0..3]. */
B3_SSE41_INLINE void b3_transpose_x4(__m128i r[4])
{
    __m128i t0 = _mm_unpacklo_epi32(r[0], r[1]);
    __m128i t1 = _mm_unpackhi_epi32(r[0], r[1]);
    __m128i t2 = _mm_unpacklo_epi32(r[2], r[3]);
    __m128i t3 = _mm_unpackhi_epi32(r[2], r[3]);
    r[0] = _mm_unpacklo_epi64(t0, t2);
    r[1] = _mm_unpackhi_epi64(t0, t2);
    r[2] = _mm_unpacklo_epi64(t1, t3);
    r[3] = _mm_unpackhi_epi64(t1, t3);
}

B3_SSE41_FN void pd_b3_hash4_sse41(B3_KERNEL_ARGS)
{
    uint32_t lo[4], hi[4];
    __m128i h[8], m[16];
    for (int l = 0; l < 4; l++) {
        uint64_t c = counter + (uint64_t)l * counter_step;
        lo[l] = (uint32_t)c;
        hi[l] = (uint32_t)(c >> 32);
    }
    const __m128i ctr_lo = _mm_loadu_si128((const __m128i *)lo);
    const __m128i ctr_hi = _mm_loadu_si128((const __m128i *)hi);
    for (int i = 0; i < 8; i++)
        h[i] = _mm_set1_epi32((int)key[i]);

    for (size_t b = 0; b < blocks; b++) {
        uint32_t f = flags;
        if (b == 0)
            f |= flags_start;
        if (b + 1 == blocks)
            f |= flags_end;
        const uint8_t *p = in + b * B3_BLOCK_LEN;
        for (int l = 0; l < 4; l++)
            b3_prefetch(p + (size_t)(4 + l) * stride);
        for (int q = 0; q < 4; q++) {
            for (int l = 0; l < 4; l++)
                m[4 * q + l] = _mm_loadu_si128(
                    (const __m128i *)(p + (size_t)l * stride + 16 * q));
            b3_transpose_x4(m + 4 * q);
        }
        __m128i v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3];
        __m128i v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        __m128i v8 = _mm_set1_epi32((int)B3_IV[0]);
        __m128i v9 = _mm_set1_epi32((int)B3_IV[1]);
        __m128i v10 = _mm_set1_epi32((int)B3_IV[2]);
        __m128i v11 = _mm_set1_epi32((int)B3_IV[3]);
        __m128i v12 = ctr_lo, v13 = ctr_hi;
        __m128i v14 = _mm_set1_epi32(B3_BLOCK_LEN);
        __m128i v15 = _mm_set1_epi32((int)f);
        B3_ROUNDS(B3_G_X4, B3_MW);
        h[0] = _mm_xor_si128(v0, v8);
        h[1] = _mm_xor_si128(v1, v9);
        h[2] = _mm_xor_si128(v2, v10);
        h[3] = _mm_xor_si128(v3, v11);
        h[4] = _mm_xor_si128(v4, v12);
        h[5] = _mm_xor_si128(v5, v13);
        h[6] = _mm_xor_si128(v6, v14);
        h[7] = _mm_xor_si128(v7, v15);
    }

    /* h[0..3]: words 0..3 of the lanes, h[4..7] words 4..7. */
    b3_transpose_x4(h);
    b3_transpose_x4(h + 4);
    for (int l = 0; l < 4; l++) {
        _mm_storeu_si128((__m128i *)(out + 32 * l), h[l]);
        _mm_storeu_si128((__m128i *)(out + 32 * l + 16), h[4 + l]);
    }
}

/* ---- AVX2: 8 lanes ------------------------------------------------------ */

#define B3_AVX2_FN __attribute__((target("avx2")))
#define B3_AVX2_INLINE                                                         \
    static inline __attribute__((target("avx2"), always_inline))

B3_AVX2_INLINE __m256i b3_rot16_x8(__m256i x)
{
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10,
                                                  5, 4, 7, 6, 1, 0, 3, 2, 13,
                                                  12, 15, 14, 9, 8, 11, 10, 5,
                                                  4, 7, 6, 1, 0, 3, 2));
}

B3_AVX2_INLINE __m256i b3_rot8_x8(__m256i x)
{
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(12, 15, 14, 13, 8, 11, 10, 9,
                                                  4, 7, 6, 5, 0, 3, 2, 1, 12,
                                                  15, 14, 13, 8, 11, 10, 9, 4,
                                                  7, 6, 5, 0, 3, 2, 1));
}

B3_AVX2_INLINE __m256i b3_rot12_x8(__m256i x)
{
    return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20));
}

B3_AVX2_INLINE __m256i b3_rot7_x8(__m256i x)
{
    return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25));
}

#define B3_G_X8(a, b, c, d, x, y)                                              \
    do {                                                                       \
        a = _mm256_add_epi32(_mm256_add_epi32(a, b), x);                       \
        d = b3_rot16_x8(_mm256_xor_si256(d, a));                               \
        c = _mm256_add_epi32(c, d);                                            \
        b = b3_rot12_x8(_mm256_xor_si256(b, c));                               \
        a = _mm256_add_epi32(_mm256_add_epi32(a, b), y);                       \
        d = b3_rot8_x8(_mm256_xor_si256(d, a));                                \
        c = _mm256_add_epi32(c, d);                                            \
        b = b3_rot7_x8(_mm256_xor_si256(b, c));                                \
    } while (0)

/* Transpose the 8x8 matrix of 32-bit words in r[0..7]: 32-bit and 64-bit
 * interleaves within each 128-bit half, then swap the halves across. */
B3_AVX2_INLINE void b3_transpose_x8(__m256i r[8])
{
    __m256i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    /* u[4j + w] holds word w (low half) and w + 4 (high half) of rows
     * 4j..4j+3. */
    for (int j = 0; j < 2; j++) {
        u[4 * j + 0] = _mm256_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 1] = _mm256_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
        u[4 * j + 2] = _mm256_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
        u[4 * j + 3] = _mm256_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
    }
    for (int w = 0; w < 4; w++) {
        r[w] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x20);
        r[w + 4] = _mm256_permute2x128_si256(u[w], u[4 + w], 0x31);
    }
}

B3_AVX2_FN void pd_b3_hash8_avx2(B3_KERNEL_ARGS)
{
    uint32_t lo[8], hi[8];
    __m256i h[8], m[16];
    for (int l = 0; l < 8; l++) {
        uint64_t c = counter + (uint64_t)l * counter_step;
        lo[l] = (uint32_t)c;
        hi[l] = (uint32_t)(c >> 32);
    }
    const __m256i ctr_lo = _mm256_loadu_si256((const __m256i *)lo);
    const __m256i ctr_hi = _mm256_loadu_si256((const __m256i *)hi);
    for (int i = 0; i < 8; i++)
        h[i] = _mm256_set1_epi32((int)key[i]);

    for (size_t b = 0; b < blocks; b++) {
        uint32_t f = flags;
        if (b == 0)
            f |= flags_start;
        if (b + 1 == blocks)
            f |= flags_end;
        const uint8_t *p = in + b * B3_BLOCK_LEN;
        for (int l = 0; l < 8; l++)
            b3_prefetch(p + (size_t)(8 + l) * stride);
        for (int half = 0; half < 2; half++) {
            for (int l = 0; l < 8; l++)
                m[8 * half + l] = _mm256_loadu_si256(
                    (const __m256i *)(p + (size_t)l * stride + 32 * half));
            b3_transpose_x8(m + 8 * half);
        }
        __m256i v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3];
        __m256i v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        __m256i v8 = _mm256_set1_epi32((int)B3_IV[0]);
        __m256i v9 = _mm256_set1_epi32((int)B3_IV[1]);
        __m256i v10 = _mm256_set1_epi32((int)B3_IV[2]);
        __m256i v11 = _mm256_set1_epi32((int)B3_IV[3]);
        __m256i v12 = ctr_lo, v13 = ctr_hi;
        __m256i v14 = _mm256_set1_epi32(B3_BLOCK_LEN);
        __m256i v15 = _mm256_set1_epi32((int)f);
        B3_ROUNDS(B3_G_X8, B3_MW);
        h[0] = _mm256_xor_si256(v0, v8);
        h[1] = _mm256_xor_si256(v1, v9);
        h[2] = _mm256_xor_si256(v2, v10);
        h[3] = _mm256_xor_si256(v3, v11);
        h[4] = _mm256_xor_si256(v4, v12);
        h[5] = _mm256_xor_si256(v5, v13);
        h[6] = _mm256_xor_si256(v6, v14);
        h[7] = _mm256_xor_si256(v7, v15);
    }

    b3_transpose_x8(h);
    for (int l = 0; l < 8; l++)
        _mm256_storeu_si256((__m256i *)(out + 32 * l), h[l]);
}

/* ---- AVX-512: 16 lanes -------------------------------------------------- */

#define B3_AVX512_FN __attribute__((target("avx512f")))
#define B3_AVX512_INLINE                                                       \
    static inline __attribute__((target("avx512f"), always_inline))

#define B3_G_X16(a, b, c, d, x, y)                                             \
    do {                                                                       \
        a = _mm512_add_epi32(_mm512_add_epi32(a, b), x);                       \
        d = _mm512_ror_epi32(_mm512_xor_si512(d, a), 16);                      \
        c = _mm512_add_epi32(c, d);                                            \
        b = _mm512_ror_epi32(_mm512_xor_si512(b, c), 12);                      \
        a = _mm512_add_epi32(_mm512_add_epi32(a, b), y);                       \
        d = _mm512_ror_epi32(_mm512_xor_si512(d, a), 8);                       \
        c = _mm512_add_epi32(c, d);                                            \
        b = _mm512_ror_epi32(_mm512_xor_si512(b, c), 7);                       \
    } while (0)

/* Transpose the 16x16 matrix of 32-bit words in r[0..15]: interleave
 * 32-bit then 64-bit words within each 128-bit quarter, which leaves
 * b[4j + t] holding word 4q + t of rows 4j..4j+3 in quarter q; two rounds
 * of 128-bit shuffles then gather each word's four quarters. */
B3_AVX512_INLINE void b3_transpose_x16(__m512i r[16])
{
    __m512i a[16], b[16];
    for (int k = 0; k < 8; k++) {
        a[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int j = 0; j < 4; j++) {
        b[4 * j + 0] = _mm512_unpacklo_epi64(a[4 * j], a[4 * j + 2]);
        b[4 * j + 1] = _mm512_unpackhi_epi64(a[4 * j], a[4 * j + 2]);
        b[4 * j + 2] = _mm512_unpacklo_epi64(a[4 * j + 1], a[4 * j + 3]);
        b[4 * j + 3] = _mm512_unpackhi_epi64(a[4 * j + 1], a[4 * j + 3]);
    }
    for (int t = 0; t < 4; t++) {
        /* c0 = quarters 0,1 of rows 0-3 | 4-7; c1 = quarters 2,3 of the
         * same; c2, c3 likewise for rows 8-11 | 12-15. */
        __m512i c0 = _mm512_shuffle_i32x4(b[t], b[4 + t], 0x44);
        __m512i c1 = _mm512_shuffle_i32x4(b[t], b[4 + t], 0xEE);
        __m512i c2 = _mm512_shuffle_i32x4(b[8 + t], b[12 + t], 0x44);
        __m512i c3 = _mm512_shuffle_i32x4(b[8 + t], b[12 + t], 0xEE);
        r[t] = _mm512_shuffle_i32x4(c0, c2, 0x88);
        r[4 + t] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
        r[8 + t] = _mm512_shuffle_i32x4(c1, c3, 0x88);
        r[12 + t] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
    }
}

B3_AVX512_FN void pd_b3_hash16_avx512(B3_KERNEL_ARGS)
{
    uint32_t lo[16], hi[16];
    __m512i h[8], m[16];
    for (int l = 0; l < 16; l++) {
        uint64_t c = counter + (uint64_t)l * counter_step;
        lo[l] = (uint32_t)c;
        hi[l] = (uint32_t)(c >> 32);
    }
    const __m512i ctr_lo = _mm512_loadu_si512(lo);
    const __m512i ctr_hi = _mm512_loadu_si512(hi);
    for (int i = 0; i < 8; i++)
        h[i] = _mm512_set1_epi32((int)key[i]);

    for (size_t b = 0; b < blocks; b++) {
        uint32_t f = flags;
        if (b == 0)
            f |= flags_start;
        if (b + 1 == blocks)
            f |= flags_end;
        const uint8_t *p = in + b * B3_BLOCK_LEN;
        for (int l = 0; l < 16; l++)
            b3_prefetch(p + (size_t)(16 + l) * stride);
        for (int l = 0; l < 16; l++)
            m[l] = _mm512_loadu_si512(p + (size_t)l * stride);
        b3_transpose_x16(m);
        __m512i v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3];
        __m512i v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        __m512i v8 = _mm512_set1_epi32((int)B3_IV[0]);
        __m512i v9 = _mm512_set1_epi32((int)B3_IV[1]);
        __m512i v10 = _mm512_set1_epi32((int)B3_IV[2]);
        __m512i v11 = _mm512_set1_epi32((int)B3_IV[3]);
        __m512i v12 = ctr_lo, v13 = ctr_hi;
        __m512i v14 = _mm512_set1_epi32(B3_BLOCK_LEN);
        __m512i v15 = _mm512_set1_epi32((int)f);
        B3_ROUNDS(B3_G_X16, B3_MW);
        h[0] = _mm512_xor_si512(v0, v8);
        h[1] = _mm512_xor_si512(v1, v9);
        h[2] = _mm512_xor_si512(v2, v10);
        h[3] = _mm512_xor_si512(v3, v11);
        h[4] = _mm512_xor_si512(v4, v12);
        h[5] = _mm512_xor_si512(v5, v13);
        h[6] = _mm512_xor_si512(v6, v14);
        h[7] = _mm512_xor_si512(v7, v15);
    }

    /* Lanes 0-7 are the low 256 bits of each word vector, 8-15 the high:
     * two 8x8 transposes give each lane's 8-word chaining value. */
    __m256i lo8[8], hi8[8];
    for (int i = 0; i < 8; i++) {
        lo8[i] = _mm512_castsi512_si256(h[i]);
        hi8[i] = _mm512_extracti64x4_epi64(h[i], 1);
    }
    b3_transpose_x8(lo8);
    b3_transpose_x8(hi8);
    for (int l = 0; l < 8; l++) {
        _mm256_storeu_si256((__m256i *)(out + 32 * l), lo8[l]);
        _mm256_storeu_si256((__m256i *)(out + 32 * (8 + l)), hi8[l]);
    }
}

#else

/* ISO C forbids an empty translation unit. */
typedef int pd_b3_simd_unused;

#endif /* B3_X86_SIMD */
