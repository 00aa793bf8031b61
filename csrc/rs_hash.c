/** \file rs_hash.c
 * The strong sums of librsync signatures: BLAKE2b (RFC 7693) and MD4
 * (RFC 1320), written from the RFCs.
 *
 * librsync hashes each block with BLAKE2b at digest length 32 (unkeyed,
 * no salt or personalization) and keeps the first strong_len bytes; legacy
 * signatures use MD4 the same way. Blocks of a signature are independent,
 * so besides the one-input function there is a "many" form that hashes a
 * run of equal-length inputs, one per 64-bit lane of an AVX2 (4 lanes) or
 * AVX-512 (8 lanes) vector: the signature and the delta scan's look-ahead
 * over a run of unchanged blocks go through it.
 *
 * The SIMD kernels carry __attribute__((target(...))) and are called only
 * after the CPU says it has the instructions; PYDELTA_RS_SIMD=portable (or
 * pd_rs_set_impl()) forces the scalar code, which tests use to compare.
 */
#include "rs_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PD_RS_X86 1
#include <immintrin.h>
#endif

/* ---- BLAKE2b, scalar ----------------------------------------------------- */

static const uint64_t b2_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* Message word schedule of the 12 rounds (rounds 10 and 11 repeat 0, 1). */
static const uint8_t b2_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t load64le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store64le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline uint64_t rotr64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

#define B2_G(a, b, c, d, x, y)                                                 \
    do {                                                                       \
        a = a + b + (x);                                                       \
        d = rotr64(d ^ a, 32);                                                 \
        c = c + d;                                                             \
        b = rotr64(b ^ c, 24);                                                 \
        a = a + b + (y);                                                       \
        d = rotr64(d ^ a, 16);                                                 \
        c = c + d;                                                             \
        b = rotr64(b ^ c, 63);                                                 \
    } while (0)

#define B2_ROUND(r)                                                            \
    do {                                                                       \
        const uint8_t *s = b2_sigma[r];                                        \
        B2_G(v0, v4, v8, v12, m[s[0]], m[s[1]]);                               \
        B2_G(v1, v5, v9, v13, m[s[2]], m[s[3]]);                               \
        B2_G(v2, v6, v10, v14, m[s[4]], m[s[5]]);                              \
        B2_G(v3, v7, v11, v15, m[s[6]], m[s[7]]);                              \
        B2_G(v0, v5, v10, v15, m[s[8]], m[s[9]]);                              \
        B2_G(v1, v6, v11, v12, m[s[10]], m[s[11]]);                            \
        B2_G(v2, v7, v8, v13, m[s[12]], m[s[13]]);                             \
        B2_G(v3, v4, v9, v14, m[s[14]], m[s[15]]);                             \
    } while (0)

/* Compress one 128-byte block; t is the byte count including it. */
static void b2_compress(uint64_t h[8], const uint8_t *block, uint64_t t,
                        int last)
{
    uint64_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = load64le(block + 8 * i);
    uint64_t v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3];
    uint64_t v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    uint64_t v8 = b2_iv[0], v9 = b2_iv[1], v10 = b2_iv[2], v11 = b2_iv[3];
    uint64_t v12 = b2_iv[4] ^ t, v13 = b2_iv[5];
    uint64_t v14 = last ? ~b2_iv[6] : b2_iv[6], v15 = b2_iv[7];
    B2_ROUND(0);
    B2_ROUND(1);
    B2_ROUND(2);
    B2_ROUND(3);
    B2_ROUND(4);
    B2_ROUND(5);
    B2_ROUND(6);
    B2_ROUND(7);
    B2_ROUND(8);
    B2_ROUND(9);
    B2_ROUND(10);
    B2_ROUND(11);
    h[0] ^= v0 ^ v8;
    h[1] ^= v1 ^ v9;
    h[2] ^= v2 ^ v10;
    h[3] ^= v3 ^ v11;
    h[4] ^= v4 ^ v12;
    h[5] ^= v5 ^ v13;
    h[6] ^= v6 ^ v14;
    h[7] ^= v7 ^ v15;
}

/* BLAKE2b of data with digest length out_len (1..64), unkeyed. */
static void b2_portable(const uint8_t *data, size_t len, uint8_t *out,
                        size_t out_len)
{
    uint64_t h[8];
    memcpy(h, b2_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ (uint64_t)out_len;
    size_t off = 0;
    while (len - off > 128) {
        b2_compress(h, data + off, (uint64_t)off + 128, 0);
        off += 128;
    }
    uint8_t last[128] = {0};
    memcpy(last, data + off, len - off);
    b2_compress(h, last, (uint64_t)len, 1);
    uint8_t full[64];
    for (int i = 0; i < 8; i++)
        store64le(full + 8 * i, h[i]);
    memcpy(out, full, out_len);
}

/* ---- BLAKE2b, AVX2: 4 equal-length inputs, one per 64-bit lane -------- */

#if defined(PD_RS_X86)

#define AVX2_FN __attribute__((target("avx2")))
#define AVX2_INLINE static inline __attribute__((target("avx2"), always_inline))

AVX2_INLINE __m256i b2x4_rot32(__m256i x)
{
    return _mm256_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1));
}

AVX2_INLINE __m256i b2x4_rot24(__m256i x)
{
    const __m256i k =
        _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,
                         3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);
    return _mm256_shuffle_epi8(x, k);
}

AVX2_INLINE __m256i b2x4_rot16(__m256i x)
{
    const __m256i k =
        _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
                         2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
    return _mm256_shuffle_epi8(x, k);
}

AVX2_INLINE __m256i b2x4_rot63(__m256i x)
{
    return _mm256_or_si256(_mm256_srli_epi64(x, 63), _mm256_add_epi64(x, x));
}

#define B2X4_G(a, b, c, d, x, y)                                               \
    do {                                                                       \
        a = _mm256_add_epi64(_mm256_add_epi64(a, b), x);                       \
        d = b2x4_rot32(_mm256_xor_si256(d, a));                                \
        c = _mm256_add_epi64(c, d);                                            \
        b = b2x4_rot24(_mm256_xor_si256(b, c));                                \
        a = _mm256_add_epi64(_mm256_add_epi64(a, b), y);                       \
        d = b2x4_rot16(_mm256_xor_si256(d, a));                                \
        c = _mm256_add_epi64(c, d);                                            \
        b = b2x4_rot63(_mm256_xor_si256(b, c));                                \
    } while (0)

#define B2X4_ROUND(r)                                                          \
    do {                                                                       \
        const uint8_t *s = b2_sigma[r];                                        \
        B2X4_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);                     \
        B2X4_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);                     \
        B2X4_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);                    \
        B2X4_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);                    \
        B2X4_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);                    \
        B2X4_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);                  \
        B2X4_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);                   \
        B2X4_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);                   \
    } while (0)

/* Transpose 4 rows of 4 words (one row per lane) into 4 word vectors. */
AVX2_INLINE void b2x4_transpose(__m256i r[4])
{
    __m256i t0 = _mm256_unpacklo_epi64(r[0], r[1]);
    __m256i t1 = _mm256_unpackhi_epi64(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi64(r[2], r[3]);
    __m256i t3 = _mm256_unpackhi_epi64(r[2], r[3]);
    r[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
    r[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
    r[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
    r[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

AVX2_INLINE void b2x4_compress(__m256i h[8], const uint8_t *const p[4],
                               size_t off, uint64_t t, int last)
{
    __m256i m[16], v[16];
    for (int w = 0; w < 16; w += 4) {
        __m256i r[4];
        for (int l = 0; l < 4; l++)
            r[l] = _mm256_loadu_si256((const __m256i *)(p[l] + off + 8 * w));
        b2x4_transpose(r);
        m[w] = r[0];
        m[w + 1] = r[1];
        m[w + 2] = r[2];
        m[w + 3] = r[3];
    }
    for (int i = 0; i < 8; i++)
        v[i] = h[i];
    for (int i = 0; i < 8; i++)
        v[8 + i] = _mm256_set1_epi64x((long long)b2_iv[i]);
    v[12] = _mm256_xor_si256(v[12], _mm256_set1_epi64x((long long)t));
    if (last)
        v[14] = _mm256_xor_si256(v[14], _mm256_set1_epi64x(-1));
    B2X4_ROUND(0);
    B2X4_ROUND(1);
    B2X4_ROUND(2);
    B2X4_ROUND(3);
    B2X4_ROUND(4);
    B2X4_ROUND(5);
    B2X4_ROUND(6);
    B2X4_ROUND(7);
    B2X4_ROUND(8);
    B2X4_ROUND(9);
    B2X4_ROUND(10);
    B2X4_ROUND(11);
    for (int i = 0; i < 8; i++)
        h[i] = _mm256_xor_si256(h[i], _mm256_xor_si256(v[i], v[8 + i]));
}

/* BLAKE2b-256 of 4 inputs of len bytes; digest l to out + 32 * l. */
static AVX2_FN void b2x4_hash(const uint8_t *const p[4], size_t len,
                              uint8_t *out)
{
    __m256i h[8];
    for (int i = 0; i < 8; i++)
        h[i] = _mm256_set1_epi64x((long long)b2_iv[i]);
    h[0] = _mm256_xor_si256(h[0], _mm256_set1_epi64x(0x01010000LL ^ 32));
    size_t off = 0;
    while (len - off > 128) {
        b2x4_compress(h, p, off, (uint64_t)off + 128, 0);
        off += 128;
    }
    uint8_t tail[4][128];
    const uint8_t *tp[4];
    memset(tail, 0, sizeof tail);
    for (int l = 0; l < 4; l++) {
        memcpy(tail[l], p[l] + off, len - off);
        tp[l] = tail[l];
    }
    b2x4_compress(h, tp, 0, (uint64_t)len, 1);
    b2x4_transpose(h);
    for (int l = 0; l < 4; l++)
        _mm256_storeu_si256((__m256i *)(out + 32 * l), h[l]);
}

/* ---- BLAKE2b, AVX-512: 8 inputs, one per 64-bit lane ------------------ */

#define AVX512_FN __attribute__((target("avx512f")))
#define AVX512_INLINE                                                          \
    static inline __attribute__((target("avx512f"), always_inline))

#define B2X8_G(a, b, c, d, x, y)                                               \
    do {                                                                       \
        a = _mm512_add_epi64(_mm512_add_epi64(a, b), x);                       \
        d = _mm512_ror_epi64(_mm512_xor_si512(d, a), 32);                      \
        c = _mm512_add_epi64(c, d);                                            \
        b = _mm512_ror_epi64(_mm512_xor_si512(b, c), 24);                      \
        a = _mm512_add_epi64(_mm512_add_epi64(a, b), y);                       \
        d = _mm512_ror_epi64(_mm512_xor_si512(d, a), 16);                      \
        c = _mm512_add_epi64(c, d);                                            \
        b = _mm512_ror_epi64(_mm512_xor_si512(b, c), 63);                      \
    } while (0)

#define B2X8_ROUND(r)                                                          \
    do {                                                                       \
        const uint8_t *s = b2_sigma[r];                                        \
        B2X8_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);                     \
        B2X8_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);                     \
        B2X8_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);                    \
        B2X8_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);                    \
        B2X8_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);                    \
        B2X8_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);                  \
        B2X8_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);                   \
        B2X8_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);                   \
    } while (0)

/* Transpose 8 rows of 8 words (one row per lane) into 8 word vectors. */
AVX512_INLINE void b2x8_transpose(__m512i r[8])
{
    __m512i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_epi64(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi64(r[i], r[i + 1]);
    }
    /* t0 = a0 b0 a2 b2 a4 b4 a6 b6, t1 = a1 b1 a3 b3 ..., t2/t3 from c, d */
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm512_shuffle_i64x2(t[i], t[i + 2],
                                    0x88); /* 128-bit lanes 0,2 | 0,2 */
        u[i + 1] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0x88);
        u[i + 2] =
            _mm512_shuffle_i64x2(t[i], t[i + 2], 0xdd); /* lanes 1,3 | 1,3 */
        u[i + 3] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0xdd);
    }
    /* u0 = a0 b0 a4 b4 c0 d0 c4 d4, u1 = words 1/5, u2 = words 2/6, u3 = 3/7
     * of rows a..d; u4..u7 the same of rows e..h. */
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i64x2(u[i], u[i + 4], 0x88);
        r[i + 4] = _mm512_shuffle_i64x2(u[i], u[i + 4], 0xdd);
    }
}

AVX512_INLINE void b2x8_compress(__m512i h[8], const uint8_t *const p[8],
                                 size_t off, uint64_t t, int last)
{
    __m512i m[16], v[16];
    for (int w = 0; w < 16; w += 8) {
        __m512i r[8];
        for (int l = 0; l < 8; l++)
            r[l] = _mm512_loadu_si512((const void *)(p[l] + off + 8 * w));
        b2x8_transpose(r);
        for (int i = 0; i < 8; i++)
            m[w + i] = r[i];
    }
    for (int i = 0; i < 8; i++)
        v[i] = h[i];
    for (int i = 0; i < 8; i++)
        v[8 + i] = _mm512_set1_epi64((long long)b2_iv[i]);
    v[12] = _mm512_xor_si512(v[12], _mm512_set1_epi64((long long)t));
    if (last)
        v[14] = _mm512_xor_si512(v[14], _mm512_set1_epi64(-1));
    B2X8_ROUND(0);
    B2X8_ROUND(1);
    B2X8_ROUND(2);
    B2X8_ROUND(3);
    B2X8_ROUND(4);
    B2X8_ROUND(5);
    B2X8_ROUND(6);
    B2X8_ROUND(7);
    B2X8_ROUND(8);
    B2X8_ROUND(9);
    B2X8_ROUND(10);
    B2X8_ROUND(11);
    for (int i = 0; i < 8; i++)
        h[i] = _mm512_xor_si512(h[i], _mm512_xor_si512(v[i], v[8 + i]));
}

static AVX512_FN void b2x8_hash(const uint8_t *const p[8], size_t len,
                                uint8_t *out)
{
    __m512i h[8];
    for (int i = 0; i < 8; i++)
        h[i] = _mm512_set1_epi64((long long)b2_iv[i]);
    h[0] = _mm512_xor_si512(h[0], _mm512_set1_epi64(0x01010000LL ^ 32));
    size_t off = 0;
    while (len - off > 128) {
        b2x8_compress(h, p, off, (uint64_t)off + 128, 0);
        off += 128;
    }
    uint8_t tail[8][128];
    const uint8_t *tp[8];
    memset(tail, 0, sizeof tail);
    for (int l = 0; l < 8; l++) {
        memcpy(tail[l], p[l] + off, len - off);
        tp[l] = tail[l];
    }
    b2x8_compress(h, tp, 0, (uint64_t)len, 1);
    b2x8_transpose(h);
    /* lane l's words 0..3 are the first half of row l */
    for (int l = 0; l < 8; l++)
        _mm256_storeu_si256((__m256i *)(out + 32 * l),
                            _mm512_castsi512_si256(h[l]));
}

#endif /* PD_RS_X86 */

/* ---- implementation choice --------------------------------------------- */

enum {
    IMPL_UNSET = -1,
    IMPL_PORTABLE = 0,
    IMPL_AVX2 = 1,
    IMPL_AVX512 = 2
};
static const char *const impl_names[] = {"portable", "avx2", "avx512"};
static volatile int impl_level = IMPL_UNSET;

static int cpu_best(void)
{
    int best = IMPL_PORTABLE;
#if defined(PD_RS_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        best = IMPL_AVX2;
        if (__builtin_cpu_supports("avx512f"))
            best = IMPL_AVX512;
    }
#endif
    return best;
}

static int impl_get(void)
{
    int lv = impl_level;
    if (lv == IMPL_UNSET) {
        lv = cpu_best();
        const char *want = getenv("PYDELTA_RS_SIMD");
        if (want) {
            for (int i = 0; i < 3; i++)
                if (!strcmp(want, impl_names[i]) && i < lv)
                    lv = i;
        }
        impl_level = lv; /* every racing thread stores the same value */
    }
    return lv;
}

const char *pd_rs_impl(void)
{
    return impl_names[impl_get()];
}

int pd_rs_set_impl(const char *name)
{
    int best = cpu_best();
    for (int i = 0; i < 3; i++) {
        if (!strcmp(name, impl_names[i])) {
            if (i > best)
                return 0;
            impl_level = i;
            return 1;
        }
    }
    return 0;
}

/* ---- MD4 (RFC 1320) ------------------------------------------------------ */

static inline uint32_t rotl32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static inline uint32_t load32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

#define MD4_F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define MD4_G(x, y, z) (((x) & (y)) | ((x) & (z)) | ((y) & (z)))
#define MD4_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD4_R1(a, b, c, d, k, s) a = rotl32(a + MD4_F(b, c, d) + X[k], s)
#define MD4_R2(a, b, c, d, k, s)                                               \
    a = rotl32(a + MD4_G(b, c, d) + X[k] + 0x5A827999u, s)
#define MD4_R3(a, b, c, d, k, s)                                               \
    a = rotl32(a + MD4_H(b, c, d) + X[k] + 0x6ED9EBA1u, s)

static void md4_block(uint32_t st[4], const uint8_t *p)
{
    uint32_t X[16];
    for (int i = 0; i < 16; i++)
        X[i] = load32le(p + 4 * i);
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    for (int i = 0; i < 16; i += 4) {
        MD4_R1(a, b, c, d, i, 3);
        MD4_R1(d, a, b, c, i + 1, 7);
        MD4_R1(c, d, a, b, i + 2, 11);
        MD4_R1(b, c, d, a, i + 3, 19);
    }
    for (int i = 0; i < 4; i++) {
        MD4_R2(a, b, c, d, i, 3);
        MD4_R2(d, a, b, c, i + 4, 5);
        MD4_R2(c, d, a, b, i + 8, 9);
        MD4_R2(b, c, d, a, i + 12, 13);
    }
    static const int r3[4] = {0, 2, 1, 3};
    for (int j = 0; j < 4; j++) {
        int i = r3[j];
        MD4_R3(a, b, c, d, i, 3);
        MD4_R3(d, a, b, c, i + 8, 9);
        MD4_R3(c, d, a, b, i + 4, 11);
        MD4_R3(b, c, d, a, i + 12, 15);
    }
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
}

void pd_rs_md4(const uint8_t *data, size_t len, uint8_t *out)
{
    uint32_t st[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    size_t off = 0;
    for (; len - off >= 64; off += 64)
        md4_block(st, data + off);
    uint8_t tail[128] = {0};
    size_t rest = len - off;
    memcpy(tail, data + off, rest);
    tail[rest] = 0x80;
    size_t tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len << 3;
    for (int i = 0; i < 8; i++)
        tail[tlen - 8 + i] = (uint8_t)(bits >> (8 * i));
    md4_block(st, tail);
    if (tlen == 128)
        md4_block(st, tail + 64);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(st[i] >> (8 * j));
}

/* ---- public and internal entry points ---------------------------------- */

void pd_rs_blake2b(const uint8_t *data, size_t len, uint8_t *out,
                   size_t out_len)
{
    if (out_len < 1 || out_len > 64)
        return;
    b2_portable(data, len, out, out_len);
}

void pd_rs_strong(int strong, const uint8_t *data, size_t len, uint8_t *out)
{
    if (strong == PD_RS_STRONG_MD4)
        pd_rs_md4(data, len, out);
    else
        b2_portable(data, len, out, PD_RS_BLAKE2_LEN);
}

void pd_rs_strong_many(int strong, const uint8_t *data, size_t stride, size_t n,
                       size_t len, uint8_t *out)
{
    size_t i = 0;
    if (strong == PD_RS_STRONG_BLAKE2) {
#if defined(PD_RS_X86)
        int lv = impl_get();
        if (lv >= IMPL_AVX512) {
            for (; i + 8 <= n; i += 8) {
                const uint8_t *p[8];
                for (int l = 0; l < 8; l++)
                    p[l] = data + (i + (size_t)l) * stride;
                b2x8_hash(p, len, out + i * PD_RS_BLAKE2_LEN);
            }
        }
        if (lv >= IMPL_AVX2) {
            for (; i + 4 <= n; i += 4) {
                const uint8_t *p[4];
                for (int l = 0; l < 4; l++)
                    p[l] = data + (i + (size_t)l) * stride;
                b2x4_hash(p, len, out + i * PD_RS_BLAKE2_LEN);
            }
            if (n - i >= 2) {
                /* pad the group with repeats of its last input */
                const uint8_t *p[4];
                uint8_t tmp[4 * PD_RS_BLAKE2_LEN];
                size_t k = n - i;
                for (size_t l = 0; l < 4; l++)
                    p[l] = data + (i + (l < k ? l : k - 1)) * stride;
                b2x4_hash(p, len, tmp);
                memcpy(out + i * PD_RS_BLAKE2_LEN, tmp, k * PD_RS_BLAKE2_LEN);
                i = n;
            }
        }
#endif
    }
    for (; i < n; i++)
        pd_rs_strong(strong, data + i * stride, len,
                     out + i * PD_RS_BLAKE2_LEN);
}

size_t pd_rs_blake2b_many(const uint8_t *data, size_t stride, size_t n,
                          size_t len, uint8_t *out)
{
    pd_rs_strong_many(PD_RS_STRONG_BLAKE2, data, stride, n, len, out);
    return n;
}
