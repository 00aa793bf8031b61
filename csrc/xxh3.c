/** \file xxh3.c
 * XXH3-128, unseeded, with the default secret: the per-block strong sum of
 * signatures with strong hash id 2 (docs/FORMAT.md).
 *
 * Written from the xxHash specification (doc/xxhash_spec.md of
 * github.com/Cyan4973/xxHash, "XXH3 Algorithm Description"); the primes
 * and the 192-byte default secret are the specification's. The seed is
 * always 0, so every "+ seed" / "- seed" of the specification is gone.
 *
 * Inputs are split by length as the specification says: 0, 1-3, 4-8,
 * 9-16 bytes (a few multiplies), 17-128 and 129-240 bytes (16-byte
 * chunks mixed with a 64x64->128 multiply), and longer inputs in 1 KiB
 * blocks of 16 stripes of 64 bytes, each stripe feeding eight 64-bit
 * accumulators with 32x32->64 multiplies, the accumulators scrambled after
 * each block. The stripe loop is plain C over the eight lanes, which the
 * compiler turns into vector code (SSE2 pmuludq at -O3 on x86-64).
 *
 * The digest is written in xxHash's canonical form: the high 64 bits,
 * then the low 64 bits, each big-endian. A signature keeps its first
 * strong_len bytes.
 */
#include "internal.h"

#define P32_1 0x9E3779B1ULL
#define P32_2 0x85EBCA77ULL
#define P32_3 0xC2B2AE3DULL
#define P64_1 0x9E3779B185EBCA87ULL
#define P64_2 0xC2B2AE3D27D4EB4FULL
#define P64_3 0x165667B19E3779F9ULL
#define P64_4 0x85EBCA77C2B2AE63ULL
#define P64_5 0x27D4EB2F165667C5ULL
#define PMX_1 0x165667919E3779F9ULL
#define PMX_2 0x9FB21C651E98DF25ULL

#define SECRET_LEN 192
#define STRIPE 64
#define STRIPES_PER_BLOCK ((SECRET_LEN - STRIPE) / 8) /* 16 */
#define BLOCK (STRIPE * STRIPES_PER_BLOCK)            /* 1024 */

static const uint8_t K[SECRET_LEN] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c,
    0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb,
    0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e,
    0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6,
    0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb,
    0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97,
    0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7,
    0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31,
    0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea, 0xc5, 0xac, 0x83,
    0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26,
    0x29, 0xd4, 0x68, 0x9e, 0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc,
    0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f,
    0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

/* Little-endian loads (pd_get_u64 is one load on a little-endian machine). */
#define ld64 pd_get_u64

static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint32_t bswap32(uint32_t x)
{
    return __builtin_bswap32(x);
}

static inline uint64_t bswap64(uint64_t x)
{
    return __builtin_bswap64(x);
}

/* The full 128-bit product of a and b. */
static inline void mul128(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    *lo = (uint64_t)r;
    *hi = (uint64_t)(r >> 64);
#else
    uint64_t al = a & 0xFFFFFFFFu, ah = a >> 32;
    uint64_t bl = b & 0xFFFFFFFFu, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
    *lo = (mid << 32) | (ll & 0xFFFFFFFFu);
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

/* The two halves of the 128-bit product folded by xor. */
static inline uint64_t fold128(uint64_t a, uint64_t b)
{
    uint64_t lo, hi;
    mul128(a, b, &lo, &hi);
    return lo ^ hi;
}

static inline uint64_t avalanche(uint64_t x)
{
    x ^= x >> 37;
    x *= PMX_1;
    return x ^ (x >> 32);
}

static inline uint64_t avalanche64(uint64_t x)
{
    x ^= x >> 33;
    x *= P64_2;
    x ^= x >> 29;
    x *= P64_3;
    return x ^ (x >> 32);
}

static inline uint64_t rotl32(uint32_t x, int s)
{
    return (uint32_t)((x << s) | (x >> (32 - s)));
}

/* ---- 0..16 bytes ---------------------------------------------------- */

static void small(const uint8_t *p, size_t n, uint64_t *lo, uint64_t *hi)
{
    if (n == 0) {
        *lo = avalanche64(ld64(K + 64) ^ ld64(K + 72));
        *hi = avalanche64(ld64(K + 80) ^ ld64(K + 88));
    } else if (n <= 3) {
        uint32_t c = (uint32_t)p[n - 1] | ((uint32_t)n << 8) |
                     ((uint32_t)p[0] << 16) | ((uint32_t)p[n >> 1] << 24);
        uint64_t l = (uint64_t)(ld32(K) ^ ld32(K + 4)) ^ c;
        uint64_t h = (uint64_t)(ld32(K + 8) ^ ld32(K + 12)) ^
                     rotl32(bswap32(c), 13);
        *lo = avalanche64(l);
        *hi = avalanche64(h);
    } else if (n <= 8) {
        uint64_t first = ld32(p), last = ld32(p + n - 4);
        uint64_t v = (ld64(K + 16) ^ ld64(K + 24)) ^ (first | (last << 32));
        uint64_t l, h;
        mul128(v, P64_1 + ((uint64_t)n << 2), &l, &h);
        h += l << 1;
        l ^= h >> 3;
        l ^= l >> 35;
        l *= PMX_2;
        l ^= l >> 28;
        *lo = l;
        *hi = avalanche(h);
    } else {
        uint64_t first = ld64(p), last = ld64(p + n - 8);
        uint64_t v1 = (ld64(K + 32) ^ ld64(K + 40)) ^ first ^ last;
        uint64_t v2 = (ld64(K + 48) ^ ld64(K + 56)) ^ last;
        uint64_t l, h;
        mul128(v1, P64_1, &l, &h);
        l += (uint64_t)(n - 1) << 54;
        h += v2 + (v2 & 0xFFFFFFFFu) * (P32_2 - 1);
        l ^= bswap64(h);
        uint64_t l2, h2;
        mul128(l, P64_2, &l2, &h2);
        h2 += h * P64_2;
        *lo = avalanche(l2);
        *hi = avalanche(h2);
    }
}

/* ---- 17..240 bytes --------------------------------------------------- */

/* mixStep with seed 0. */
static inline uint64_t mix16(const uint8_t *p, const uint8_t *k)
{
    return fold128(ld64(p) ^ ld64(k), ld64(p + 8) ^ ld64(k + 8));
}

/* mixTwoChunks with seed 0. */
static inline void mix32(uint64_t acc[2], const uint8_t *a, const uint8_t *b,
                         const uint8_t *k)
{
    acc[0] += mix16(a, k);
    acc[1] += mix16(b, k + 16);
    acc[0] ^= ld64(b) + ld64(b + 8);
    acc[1] ^= ld64(a) + ld64(a + 8);
}

static void medium(const uint8_t *p, size_t n, uint64_t *lo, uint64_t *hi)
{
    uint64_t acc[2] = {(uint64_t)n * P64_1, 0};
    if (n <= 128) {
        long rounds = (long)((n - 1) >> 5) + 1;
        for (long i = rounds - 1; i >= 0; i--)
            mix32(acc, p + 16 * i, p + n - 16 * i - 16, K + 32 * i);
    } else {
        size_t chunks = n >> 5;
        for (size_t i = 0; i < 4; i++)
            mix32(acc, p + 32 * i, p + 32 * i + 16, K + 32 * i);
        acc[0] = avalanche(acc[0]);
        acc[1] = avalanche(acc[1]);
        for (size_t i = 4; i < chunks; i++)
            mix32(acc, p + 32 * i, p + 32 * i + 16, K + 32 * (i - 4) + 3);
        mix32(acc, p + n - 16, p + n - 32, K + 103);
    }
    uint64_t l = acc[0] + acc[1];
    uint64_t h = acc[0] * P64_1 + acc[1] * P64_4 + (uint64_t)n * P64_2;
    *lo = avalanche(l);
    *hi = 0 - avalanche(h);
}

/* ---- more than 240 bytes --------------------------------------------- */

/* One stripe into the accumulators, with the secret at k. */
static inline void accumulate(uint64_t acc[8], const uint8_t *p,
                              const uint8_t *k)
{
    uint64_t v[8], x[8];
    for (int i = 0; i < 8; i++) {
        v[i] = ld64(p + 8 * i);
        x[i] = v[i] ^ ld64(k + 8 * i);
    }
    for (int i = 0; i < 8; i++)
        acc[i] += v[i ^ 1] + (x[i] & 0xFFFFFFFFu) * (x[i] >> 32);
}

static inline void scramble(uint64_t acc[8])
{
    const uint8_t *k = K + SECRET_LEN - STRIPE;
    for (int i = 0; i < 8; i++) {
        uint64_t a = acc[i];
        a ^= a >> 47;
        a ^= ld64(k + 8 * i);
        acc[i] = a * P32_1;
    }
}

static uint64_t merge(const uint64_t acc[8], uint64_t init, const uint8_t *k)
{
    uint64_t r = init;
    for (int i = 0; i < 4; i++)
        r += fold128(acc[2 * i] ^ ld64(k + 16 * i),
                     acc[2 * i + 1] ^ ld64(k + 16 * i + 8));
    return avalanche(r);
}

/* Whole 1 KiB blocks: 16 stripes and a scramble each, the same steps as
 * accumulate() and scramble() written with the compiler's vector types
 * (four 64-bit lanes; the compiler picks the instructions). Compiled twice
 * on x86-64: for the baseline (SSE2 pmuludq on two lanes) and for AVX2
 * (vpmuludq on four), chosen once by the CPU. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                         \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
typedef uint64_t pd_v4 __attribute__((vector_size(32)));
#ifdef __clang__
#define PAIR_SWAP(d) __builtin_shufflevector(d, d, 1, 0, 3, 2)
#else
#define PAIR_SWAP(d) __builtin_shuffle(d, swap)
#endif

static inline __attribute__((always_inline)) void
blocks_body(uint64_t acc[8], const uint8_t *p, size_t blocks)
{
    pd_v4 a[2], ks[2];
    const pd_v4 lo32 = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    const pd_v4 prime = {P32_1, P32_1, P32_1, P32_1};
    const pd_v4 swap = {1, 0, 3, 2};
    (void)swap;
    memcpy(a, acc, sizeof a);
    memcpy(ks, K + SECRET_LEN - STRIPE, sizeof ks);
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *q = p + b * BLOCK;
        for (size_t s = 0; s < STRIPES_PER_BLOCK; s++) {
            for (int h = 0; h < 2; h++) {
                pd_v4 d, k;
                memcpy(&d, q + s * STRIPE + 32 * h, sizeof d);
                memcpy(&k, K + 8 * s + 32 * h, sizeof k);
                pd_v4 x = d ^ k;
                a[h] += PAIR_SWAP(d) + (x & lo32) * (x >> 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            pd_v4 x = a[h] ^ (a[h] >> 47);
            a[h] = (x ^ ks[h]) * prime;
        }
    }
    memcpy(acc, a, sizeof a);
}
#else
static inline void blocks_body(uint64_t acc[8], const uint8_t *p,
                               size_t blocks)
{
    for (size_t b = 0; b < blocks; b++) {
        const uint8_t *q = p + b * BLOCK;
        for (size_t s = 0; s < STRIPES_PER_BLOCK; s++)
            accumulate(acc, q + s * STRIPE, K + 8 * s);
        scramble(acc);
    }
}
#endif

static void blocks_base(uint64_t acc[8], const uint8_t *p, size_t blocks)
{
    blocks_body(acc, p, blocks);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static void
blocks_avx2(uint64_t acc[8], const uint8_t *p, size_t blocks)
{
    blocks_body(acc, p, blocks);
}

typedef void (*blocks_fn)(uint64_t acc[8], const uint8_t *p, size_t blocks);

/* AVX2 where the CPU has it, unless PYDELTA_XXH3_SIMD=portable (tests run
 * the baseline build that way). */
static blocks_fn pick_blocks(void)
{
    const char *want = getenv("PYDELTA_XXH3_SIMD");
    if (want && !strcmp(want, "portable"))
        return blocks_base;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? blocks_avx2 : blocks_base;
}

static void blocks(uint64_t acc[8], const uint8_t *p, size_t n)
{
    /* set once; a racing first call stores the same pointer */
    static blocks_fn fn;
    blocks_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
    if (!f) {
        f = pick_blocks();
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
    }
    f(acc, p, n);
}
#else
#define blocks blocks_base
#endif

static void large(const uint8_t *p, size_t n, uint64_t *lo, uint64_t *hi)
{
    uint64_t acc[8] = {P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1};
    size_t nb = (n - 1) / BLOCK; /* the last block is left for below */
    blocks(acc, p, nb);
    const uint8_t *q = p + nb * BLOCK;
    size_t rest = n - nb * BLOCK; /* 1..BLOCK */
    size_t stripes = (rest - 1) / STRIPE;
    for (size_t s = 0; s < stripes; s++)
        accumulate(acc, q + s * STRIPE, K + 8 * s);
    accumulate(acc, p + n - STRIPE, K + SECRET_LEN - STRIPE - 7);
    *lo = merge(acc, (uint64_t)n * P64_1, K + 11);
    *hi = merge(acc, ~((uint64_t)n * P64_2), K + SECRET_LEN - STRIPE - 11);
}

void pd_xxh3_128(const uint8_t *data, size_t len, uint8_t *out)
{
    uint64_t lo, hi;
    if (len <= 16)
        small(data, len, &lo, &hi);
    else if (len <= 240)
        medium(data, len, &lo, &hi);
    else
        large(data, len, &lo, &hi);
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
}

/* ---- streaming (a signed block split across read-backs, copy.c) ------ */

void pd_xxh3_reset(pd_xxh3_state *st)
{
    memset(st, 0, sizeof *st);
    uint64_t init[8] = {P32_3, P64_1, P64_2, P64_3,
                        P64_4, P32_2, P64_5, P32_1};
    memcpy(st->acc, init, sizeof init);
}

/* A stripe is taken only while more input follows it, so the stripes and
 * scrambles run exactly as in large(): every stripe that ends before the
 * end of the input is a normal one, and the last 64 bytes (the final
 * stripe) are kept in the buffer (start >= 64 once stripes were taken). */
void pd_xxh3_update(pd_xxh3_state *st, const uint8_t *p, size_t n)
{
    while (n) {
        if (st->end == PD_XXH3_BUF) { /* keep the 64 bytes before start */
            size_t from = st->start - STRIPE, keep = st->end - from;
            memmove(st->buf, st->buf + from, keep);
            st->start = STRIPE;
            st->end = keep;
        }
        size_t take = PD_XXH3_BUF - st->end;
        if (take > n)
            take = n;
        memcpy(st->buf + st->end, p, take);
        st->end += take;
        st->total += take;
        p += take;
        n -= take;
        if (st->total <= 240)
            continue; /* may still be a short input, hashed whole */
        while (st->end - st->start > STRIPE) {
            accumulate(st->acc, st->buf + st->start, K + 8 * st->stripes);
            st->start += STRIPE;
            if (++st->stripes == STRIPES_PER_BLOCK) {
                scramble(st->acc);
                st->stripes = 0;
            }
        }
    }
}

void pd_xxh3_final(const pd_xxh3_state *st, uint8_t out[16])
{
    uint64_t lo, hi, n = st->total;
    if (n <= 240) {
        pd_xxh3_128(st->buf, (size_t)n, out);
        return;
    }
    uint64_t acc[8];
    memcpy(acc, st->acc, sizeof acc);
    accumulate(acc, st->buf + st->end - STRIPE, K + SECRET_LEN - STRIPE - 7);
    lo = merge(acc, n * P64_1, K + 11);
    hi = merge(acc, ~(n * P64_2), K + SECRET_LEN - STRIPE - 11);
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
}
