/** \file weaksum.c
 * The weak rolling checksum, whole-window and rolling forms.
 *
 * The hot rolling loop lives inline in delta.c (through internal.h); these
 * entry points compute the sum of one window (signature blocks, restarts
 * after a match; pd_weak_more continues a window fed in pieces, for the
 * patch's signing of its result) and exist for tests that hold rolling
 * against direct.
 */
#include <string.h>

#include "internal.h"

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

uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len)
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
