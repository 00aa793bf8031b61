/** \file weaksum.c
 * The weak rolling checksum, whole-window and rolling forms.
 *
 * The hot rolling loop lives inline in delta.c (through internal.h); these
 * entry points compute the sum of one window (signature blocks, restarts
 * after a match; pd_weak_more continues a window fed in pieces, for the
 * patch's signing of its result) and exist for tests that hold rolling
 * against direct.
 */
#include "internal.h"

/* lane[k][c] = c * M^(7-k): the contribution of byte c at position k of an
 * 8-byte group, so a group costs eight table loads instead of eight
 * multiplies. Built once, before any caller can run (the tables are
 * constant, so a racing first use would only write the same values). */
static uint64_t lane[8][256];
static uint64_t m8;
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

uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len)
{
    /* Horner's rule over 8-byte groups: h = h*M^8 + sum_k lane[k][c_k].
     * Horner's rule does not care where the groups fall, so a window fed
     * in pieces sums the same as in one call. */
    if (!__atomic_load_n(&lanes_ready, __ATOMIC_ACQUIRE))
        build_lanes();
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        const uint8_t *p = data + i;
        uint64_t s = lane[0][p[0]] + lane[1][p[1]] + lane[2][p[2]] +
                     lane[3][p[3]] + lane[4][p[4]] + lane[5][p[5]] +
                     lane[6][p[6]] + lane[7][p[7]];
        h = h * m8 + s;
    }
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
