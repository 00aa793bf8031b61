/** \file weaksum.c
 * The weak rolling checksum, whole-window and rolling forms.
 *
 * The hot rolling loop lives inline in delta.c (through internal.h); these
 * entry points compute the sum of one window (signature blocks, restarts
 * after a match) and exist for tests that hold rolling against direct.
 */
#include "internal.h"

uint64_t pd_weak(const uint8_t *data, size_t len)
{
    /* Horner's rule, four bytes per step to shorten the dependency chain:
     * h*M^4 + (c0*M^3 + c1*M^2 + c2*M + c3). */
    const uint64_t m1 = PD_WEAK_M, m2 = m1 * m1, m3 = m2 * m1, m4 = m2 * m2;
    uint64_t h = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4)
        h = h * m4 + ((uint64_t)data[i] * m3 + (uint64_t)data[i + 1] * m2 +
                      (uint64_t)data[i + 2] * m1 + (uint64_t)data[i + 3]);
    for (; i < len; i++)
        h = h * m1 + data[i];
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
