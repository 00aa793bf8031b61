/** \file weaksum.c
 * The weak rolling checksum, whole-window and rolling forms.
 *
 * The hot rolling loop lives inline in delta.c (through internal.h); these
 * entry points compute the sum of one window (signature blocks, restarts
 * after a match; pd_weak_more continues a window fed in pieces, for the
 * patch's signing of its result) and exist for tests that hold rolling
 * against direct. On x86-64 the whole-window sum runs an AVX2 kernel where
 * the CPU has AVX2 (PYDELTA_WEAK_SIMD=portable forces the portable one);
 * both give the same sums for every length and split.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PD_WEAK_X86 1
#endif

/* lane[k][c] = c * M^(7-k): the contribution of byte c at position k of an
 * 8-byte group, so a group costs eight table loads instead of eight
 * multiplies. Built once, before any caller can run (the tables are
 * constant, so a racing first use would only write the same values). */
static uint64_t lane[8][256];
static uint64_t m8, m16, m24, m32; /* M^8, M^16, M^24, M^32 */
static volatile int lanes_ready;

static void build_lanes(void)
{
    uint64_t p = 1;
    for (int k = 7; k >= 0; k--) {
        for (int c = 0; c < 256; c++)
            lane[k][c] = (uint64_t)c * p;
        p *= PD_WEAK_M;
    }
    m8 = p;
    m16 = m8 * m8;
    m24 = m16 * m8;
    m32 = m16 * m16;
    __atomic_store_n(&lanes_ready, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void init_lanes(void)
{
    build_lanes();
}

uint64_t pd_weak(const uint8_t *data, size_t len)
{
    return pd_weak_more(0, data, len);
}

/* 8 bytes as one little-endian word: one load instead of eight, so the
 * loop is bound by the eight table loads, not by sixteen loads. */
static inline uint64_t load_le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    return pd_get_u64(p);
#endif
}

/* sum_k lane[k][p[k]]: the contribution of the 8-byte group at p. */
static inline uint64_t group_sum(const uint8_t *p)
{
    uint64_t v = load_le64(p);
    return lane[0][v & 255] + lane[1][(v >> 8) & 255] +
           lane[2][(v >> 16) & 255] + lane[3][(v >> 24) & 255] +
           lane[4][(v >> 32) & 255] + lane[5][(v >> 40) & 255] +
           lane[6][(v >> 48) & 255] + lane[7][v >> 56];
}

static uint64_t weak_more_scalar(uint64_t h, const uint8_t *data, size_t len)
{
    /* Horner's rule over 8-byte groups: h = h*M^8 + group_sum. Horner's
     * rule does not care where the groups fall, so a window fed in pieces
     * sums the same as in one call. The first 4q groups run as four
     * chains over interleaved groups (chain r takes groups 4t + r and
     * steps by M^32), so the multiplies do not wait on each other:
     * h*M^(32q) + sum = a0*M^24 + a1*M^16 + a2*M^8 + a3 with a3 starting
     * at h. */
    if (!__atomic_load_n(&lanes_ready, __ATOMIC_ACQUIRE))
        build_lanes();
    size_t i = 0;
    size_t q = len / 32;
    if (q >= 2) {
        uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = h;
        for (size_t t = 0; t < q; t++, i += 32) {
            a0 = a0 * m32 + group_sum(data + i);
            a1 = a1 * m32 + group_sum(data + i + 8);
            a2 = a2 * m32 + group_sum(data + i + 16);
            a3 = a3 * m32 + group_sum(data + i + 24);
        }
        h = a0 * m24 + a1 * m16 + a2 * m8 + a3;
    }
    for (; i + 8 <= len; i += 8)
        h = h * m8 + group_sum(data + i);
    for (; i < len; i++)
        h = h * PD_WEAK_M + data[i];
    return h;
}

#if defined(PD_WEAK_X86)
/* ---- AVX2: the whole window through vpmaddwd ---------------------------
 *
 * A chunk of SPAN bytes sums to S = sum_k c_k * M^(SPAN-1-k) (mod 2^64),
 * and Horner's rule takes it whole: h = h*M^SPAN + S. Each power is split
 * into four signed 16-bit digits, M^e = sum_l d_l * 2^(16l) (mod 2^64),
 * d_l in [-2^15, 2^15), so S = sum_l 2^(16l) * A_l with
 * A_l = sum_k c_k * d_{k,l}, an exact integer. vpmaddwd forms c*d for
 * sixteen bytes at once and adds them in pairs into eight 32-bit lanes:
 * |c*d| <= 255 * 2^15, so a lane gains under 2^24 per 16 bytes and stays
 * under 2^31 over a chunk's SPAN/16 = 64 steps (no overflow, so the lane
 * sums are exact). A shorter run of 16r bytes uses the table's last 16r
 * powers, which are M^(16r-1) .. M^0. */
#define SPAN 1024
/* digit[l][k]: digit l of M^(SPAN-1-k) */
static int16_t digit[4][SPAN] __attribute__((aligned(64)));
static uint64_t mpow16[SPAN / 16 + 1]; /* mpow16[r] = M^(16r) */
static volatile int digits_ready;

static void build_digits(void)
{
    uint64_t p = 1;
    for (int k = SPAN - 1; k >= 0; k--) {
        uint64_t v = p;
        for (int l = 0; l < 4; l++) {
            /* the low 16 bits as a signed digit; the borrow (v - d) is
             * exact mod 2^64 and divisible by 2^16 */
            int16_t d = (int16_t)(uint16_t)(v & 0xFFFF);
            digit[l][k] = d;
            v = (v - (uint64_t)(int64_t)d) >> 16;
        }
        p *= PD_WEAK_M;
    }
    uint64_t m16 = pd_weak_pow(16), q = 1;
    for (int r = 0; r <= SPAN / 16; r++, q *= m16)
        mpow16[r] = q;
    __atomic_store_n(&digits_ready, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void init_digits(void)
{
    build_digits();
}

/* The eight signed 32-bit lanes of v summed as a 64-bit integer. */
__attribute__((target("avx2"))) static inline int64_t lanes_sum(__m256i v)
{
    __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
    __m256i s = _mm256_add_epi64(lo, hi);
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s),
                              _mm256_extracti128_si256(s, 1));
    return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}

/* S of the n bytes at p (n a multiple of 16, 16 <= n <= SPAN). */
__attribute__((target("avx2"))) static uint64_t span_sum(const uint8_t *p,
                                                        size_t n)
{
    size_t base = SPAN - n;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t k = 0; k < n; k += 16) {
        __m256i w = _mm256_cvtepu8_epi16(
            _mm_loadu_si128((const __m128i *)(const void *)(p + k)));
        const int16_t *d = &digit[0][base + k];
        a0 = _mm256_add_epi32(
            a0, _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(
                                        const void *)d)));
        a1 = _mm256_add_epi32(
            a1, _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(
                                        const void *)(d + SPAN))));
        a2 = _mm256_add_epi32(
            a2, _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(
                                        const void *)(d + 2 * SPAN))));
        a3 = _mm256_add_epi32(
            a3, _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(
                                        const void *)(d + 3 * SPAN))));
    }
    return (uint64_t)lanes_sum(a0) + ((uint64_t)lanes_sum(a1) << 16) +
           ((uint64_t)lanes_sum(a2) << 32) + ((uint64_t)lanes_sum(a3) << 48);
}

__attribute__((target("avx2"))) static uint64_t
weak_more_avx2(uint64_t h, const uint8_t *data, size_t len)
{
    if (!__atomic_load_n(&digits_ready, __ATOMIC_ACQUIRE))
        build_digits();
    size_t i = 0;
    for (; len - i >= SPAN; i += SPAN)
        h = h * mpow16[SPAN / 16] + span_sum(data + i, SPAN);
    size_t r = (len - i) / 16;
    if (r > 0) {
        h = h * mpow16[r] + span_sum(data + i, 16 * r);
        i += 16 * r;
    }
    return weak_more_scalar(h, data + i, len - i);
}

typedef uint64_t (*weak_fn)(uint64_t h, const uint8_t *data, size_t len);

/* AVX2 where the CPU has it, unless PYDELTA_WEAK_SIMD=portable (tests run
 * the scalar code that way). */
static weak_fn pick_weak(void)
{
    const char *want = getenv("PYDELTA_WEAK_SIMD");
    if (want && !strcmp(want, "portable"))
        return weak_more_scalar;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? weak_more_avx2 : weak_more_scalar;
}

static weak_fn weak_chosen(void)
{
    /* set once; a racing first call stores the same pointer */
    static weak_fn fn;
    weak_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
    if (!f) {
        f = pick_weak();
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
    }
    return f;
}

uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len)
{
    if (len < 64)
        return weak_more_scalar(h, data, len);
    return weak_chosen()(h, data, len);
}

const char *pd_weak_impl(void)
{
    return weak_chosen() == weak_more_avx2 ? "avx2" : "portable";
}
#else
uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len)
{
    return weak_more_scalar(h, data, len);
}

const char *pd_weak_impl(void)
{
    return "portable";
}
#endif

size_t pd_weak_rolling(const uint8_t *data, size_t len, size_t window,
                       uint64_t *out)
{
    if (window == 0 || len < window)
        return 0;
    uint64_t tab[256];
    pd_weak_out_table(window, tab);
    uint64_t h = pd_weak(data, window);
    size_t count = len - window + 1;
    out[0] = h;
    for (size_t i = 1; i < count; i++) {
        h = pd_weak_roll(h, data[i - 1], data[i - 1 + window], tab);
        out[i] = h;
    }
    return count;
}
