/** \file transform.c
 * The byte grouping of compressed literals (transform 2 of the 'Z'
 * instruction, pydelta/formats/literals.py): the bytes at even offsets
 * first, then those at odd offsets. For 16-bit values (float16, bfloat16)
 * that puts the low and the high bytes in separate runs, which zstd
 * compresses better. Both directions are plain loops the compiler
 * vectorises; Python's stepped slicing ran them at ~150 MB/s.
 */

#include <stddef.h>
#include <stdint.h>

#include "pydelta.h"

void pd_group16(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t pairs = n / 2;
    uint8_t *lo = dst;
    uint8_t *hi = dst + (n + 1) / 2;
    for (size_t i = 0; i < pairs; i++) {
        lo[i] = src[2 * i];
        hi[i] = src[2 * i + 1];
    }
    if (n & 1)
        lo[pairs] = src[n - 1];
}

void pd_ungroup16(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t pairs = n / 2;
    const uint8_t *lo = src;
    const uint8_t *hi = src + (n + 1) / 2;
    for (size_t i = 0; i < pairs; i++) {
        dst[2 * i] = lo[i];
        dst[2 * i + 1] = hi[i];
    }
    if (n & 1)
        dst[n - 1] = lo[pairs];
}
