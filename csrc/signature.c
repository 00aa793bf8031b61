/** \file signature.c
 * Signature entries: the weak sum and truncated strong sum (BLAKE3 or
 * XXH3-128, the signature's kind) of each block.
 *
 * The caller hands in as many whole blocks as fit its read buffer (MiBs),
 * so the per-block work runs here without returning to Python. Entries
 * are written in wire form (u64le weak, then strong_len bytes) so the
 * caller can write them out unchanged.
 */
#include "internal.h"

size_t pd_sig_blocks(const uint8_t *buf, size_t len, uint32_t block_len,
                     uint32_t strong_len, int strong_kind, uint8_t *out)
{
    if (block_len == 0 || !pd_strong_ok(strong_kind, strong_len))
        return 0;
    size_t entry = PD_WEAK_LEN + strong_len, count = 0;
    for (size_t off = 0; off < len; off += block_len) {
        size_t n = len - off < block_len ? len - off : block_len;
        uint8_t *e = out + count * entry;
        pd_put_u64(e, pd_weak(buf + off, n));
        pd_strong(strong_kind, buf + off, n, e + PD_WEAK_LEN, strong_len);
        count++;
    }
    return count;
}
