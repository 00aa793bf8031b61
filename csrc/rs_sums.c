/** \file rs_sums.c
 * librsync's two 32-bit weak sums, RabinKarp and rollsum, over one window
 * (fast) and rolled along a buffer (for tests).
 *
 * A signature needs the weak sum of every block and the delta scan of
 * every block it jumps to, so the whole-window form is the hot one. Both
 * sums are sequential by definition (Horner steps, running sums) but split
 * into independent lanes:
 *   RabinKarp: 32 lanes, lane k Horner-accumulating bytes k, k+32, ... with
 *     M^32, combined at the end with M^(31-k); the seed contributes M^n.
 *   rollsum: s1 = sum(b) and s2 = sum (n - i) b_i; lane k keeps
 *     a_k = sum of its bytes and q_k = sum of the running a_k, and
 *     s2 = 32 * sum q_k - sum k * a_k for the whole 32-byte chunks; the
 *     offset 31 per byte is added in closed form at the end.
 * The lane loops have no carried dependency across lanes, so the compiler
 * vectorizes them; RabinKarp's 32-bit multiply wants SSE4.1/AVX2, so there
 * is an AVX2 build of it chosen at run time.
 */
#include "rs_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PD_RS_X86 1
#endif

/* Powers M^0 .. M^32 of the RabinKarp multiplier. */
static uint32_t rk_pows[33];
static volatile int rk_pows_ready;

static void rk_init(void)
{
    if (rk_pows_ready)
        return;
    uint32_t p = 1;
    for (int i = 0; i <= 32; i++) {
        rk_pows[i] = p;
        p *= PD_RS_RK_MULT;
    }
    rk_pows_ready = 1;
}

/* The RabinKarp lane loop over `chunks` 32-byte chunks, returning
 * sum b_i M^(32*chunks - 1 - i) (no seed term). */
#define RK_LANES_BODY                                                          \
    uint32_t acc[32] = {0};                                                    \
    const uint32_t m32 = rk_pows[32];                                          \
    for (size_t c = 0; c < chunks; c++) {                                      \
        const uint8_t *q = p + 32 * c;                                         \
        for (int k = 0; k < 32; k++)                                           \
            acc[k] = acc[k] * m32 + q[k];                                      \
    }                                                                          \
    uint32_t s = 0;                                                            \
    for (int k = 0; k < 32; k++)                                               \
        s += acc[k] * rk_pows[31 - k];                                         \
    return s;

static uint32_t rk_lanes_portable(const uint8_t *p, size_t chunks)
{
    RK_LANES_BODY
}

#if defined(PD_RS_X86)
__attribute__((target("avx2"))) static uint32_t rk_lanes_avx2(const uint8_t *p,
                                                              size_t chunks)
{
    RK_LANES_BODY
}
static int have_avx2 = -1;
#endif

static uint32_t rk_lanes(const uint8_t *p, size_t chunks)
{
#if defined(PD_RS_X86)
    if (have_avx2 < 0) {
        __builtin_cpu_init();
        have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    if (have_avx2)
        return rk_lanes_avx2(p, chunks);
#endif
    return rk_lanes_portable(p, chunks);
}

static uint32_t rabinkarp(const uint8_t *p, size_t n)
{
    rk_init();
    uint32_t h = 1;
    size_t i = 0;
    if (n >= 128) {
        size_t chunks = n / 32;
        i = chunks * 32;
        h = pd_rs_rk_pow(i) + rk_lanes(p, chunks);
    }
    for (; i < n; i++)
        h = h * PD_RS_RK_MULT + p[i];
    return h;
}

/* Raw rollsum sums over whole 32-byte chunks: *s1 = sum b, *s2 = sum
 * (len - i) b_i, both without the per-byte offset (mod 2^32). */
static void rollsum_chunks(const uint8_t *p, size_t chunks, uint32_t *s1,
                           uint32_t *s2)
{
    uint32_t a[32] = {0}, q[32] = {0};
    for (size_t c = 0; c < chunks; c++) {
        const uint8_t *r = p + 32 * c;
        for (int k = 0; k < 32; k++) {
            a[k] += r[k];
            q[k] += a[k];
        }
    }
    uint32_t sa = 0, sq = 0, ka = 0;
    for (int k = 0; k < 32; k++) {
        sa += a[k];
        sq += q[k];
        ka += (uint32_t)k * a[k];
    }
    *s1 = sa;
    *s2 = 32u * sq - ka;
}

pd_rs_wstate pd_rs_wstate_of(int kind, const uint8_t *data, size_t len)
{
    pd_rs_wstate s;
    if (kind == PD_RS_WEAK_RABINKARP) {
        s.a = rabinkarp(data, len);
        s.b = 0;
        return s;
    }
    uint32_t s1 = 0, s2 = 0;
    size_t i = 0;
    if (len >= 128) {
        size_t chunks = len / 32;
        i = chunks * 32;
        rollsum_chunks(data, chunks, &s1, &s2);
    }
    for (; i < len; i++) {
        s1 += data[i];
        s2 += s1;
    }
    /* each byte carries +31: s1 += 31 n, s2 += 31 n (n + 1) / 2 */
    uint64_t n = len;
    uint64_t tri = (n % 2 == 0) ? (n / 2) * (n + 1) : n * ((n + 1) / 2);
    s.a = s1 + (uint32_t)(PD_RS_CHAR_OFFSET * n);
    s.b = s2 + (uint32_t)(PD_RS_CHAR_OFFSET * tri);
    return s;
}

uint32_t pd_rs_weak(int kind, const uint8_t *data, size_t len)
{
    return pd_rs_wdigest(kind, pd_rs_wstate_of(kind, data, len));
}

size_t pd_rs_weak_rolling(int kind, const uint8_t *data, size_t len,
                          size_t window, uint32_t *out)
{
    if (window == 0 || window > len || window > UINT32_MAX)
        return 0;
    pd_rs_roller r;
    pd_rs_roller_init(&r, (uint32_t)window);
    pd_rs_wstate s = pd_rs_wstate_of(kind, data, window);
    size_t n = 0;
    out[n++] = pd_rs_wdigest(kind, s);
    for (size_t i = window; i < len; i++) {
        if (kind == PD_RS_WEAK_RABINKARP)
            s.a = pd_rs_rk_roll(s.a, data[i - window], data[i], &r);
        else
            s = pd_rs_rs_roll(s, data[i - window], data[i], r.n);
        out[n++] = pd_rs_wdigest(kind, s);
    }
    return n;
}
