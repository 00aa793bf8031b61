/** \file cdc.c
 * Content-defined chunking for the model store: gear hash cut points with
 * FastCDC-style normalisation, and the BLAKE3 of every chunk.
 *
 * Why content-defined: a file that gains or loses bytes somewhere (a
 * safetensors header that grows by one byte) shifts everything after the
 * edit. Fixed-size pieces then all change; cut points chosen by the content
 * itself move with the data, so every chunk after the edit is found again.
 *
 * The rolling hash is the gear hash h = (h << 1) + G[byte] (mod 2^64). A
 * byte's table value is shifted out after 64 more bytes, so h depends on
 * exactly the last 64 bytes once 64 bytes have been hashed. A chunk of L
 * bytes ends after its byte number L (counting from 1) when
 *
 *   L == max, or
 *   min <= L < avg  and (h & mask_s) == 0   (mask_s: the top b + 2 bits), or
 *   avg <= L < max  and (h & mask_l) == 0   (mask_l: the top b - 2 bits),
 *
 * where avg = 2^b. The stricter mask before the average and the looser one
 * after it ("normalised chunking", FastCDC level 2) pull chunk sizes
 * towards the average. The top bits are used because bit 63 - k of h mixes
 * the last 64 - k bytes, the widest windows h has. Bytes with L <= min - 64
 * cannot influence a decision, so they are skipped without hashing (they are
 * still BLAKE3-hashed, of course); hashing starts 64 bytes before min, which
 * makes every cut decision a function of the 64-byte window and of L only.
 *
 * The gear table G is fixed forever (it defines the chunk boundaries, and
 * so which chunks a store already holds): G[i] is the i-th output (from 0)
 * of splitmix64 seeded with 0, i.e. the splitmix64 finaliser of
 * (i + 1) * 0x9E3779B97F4A7C15. pd_cdc_gear exposes it for the tests and
 * the numba twin.
 *
 * The job is streaming: all state between calls (the chunk length so far,
 * h, the BLAKE3 state of the open chunk) lives in pd_cdc, so the cut points
 * and digests are the same whatever sizes the input arrives in, down to
 * one byte at a time. The chunk digests are computed over whole spans of
 * the caller's buffer (one update per chunk piece), so BLAKE3's SIMD
 * kernels see long runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pydelta.h"

/** The chunker job. */
struct pd_cdc {
    uint64_t gear[256];  /* the fixed gear table */
    uint64_t mask_s;     /* mask before the average size (b + 2 bits) */
    uint64_t mask_l;     /* mask from the average size on (b - 2 bits) */
    uint64_t min_size;   /* no cut before this many bytes */
    uint64_t avg_size;   /* 2^b: where the masks switch */
    uint64_t max_size;   /* forced cut at this many bytes */
    uint64_t h;          /* gear hash of the open chunk */
    uint64_t len;        /* bytes of the open chunk seen so far */
    pd_blake3 *b3;       /* BLAKE3 of the open chunk */
    int done;            /* the final chunk has been emitted (eof seen) */
};

static uint64_t splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void pd_cdc_gear(uint64_t *out)
{
    for (uint64_t i = 0; i < 256; i++)
        out[i] = splitmix64_mix((i + 1) * 0x9E3779B97F4A7C15ULL);
}

/* A mask of the top `bits` bits of a 64-bit word. */
static uint64_t top_bits(unsigned bits)
{
    return bits == 0 ? 0 : ~0ULL << (64 - bits);
}

int pd_cdc_check(uint64_t min_size, uint64_t avg_size, uint64_t max_size)
{
    if (min_size < PD_CDC_MIN_MIN || max_size > PD_CDC_MAX_MAX)
        return PD_ERR_PARAM;
    if (avg_size < PD_CDC_MIN_AVG || (avg_size & (avg_size - 1)) != 0)
        return PD_ERR_PARAM;
    if (!(min_size <= avg_size && avg_size <= max_size))
        return PD_ERR_PARAM;
    return PD_OK;
}

pd_cdc *pd_cdc_new(uint64_t min_size, uint64_t avg_size, uint64_t max_size)
{
    if (pd_cdc_check(min_size, avg_size, max_size) != PD_OK)
        return NULL;
    pd_cdc *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->b3 = pd_blake3_new();
    if (!c->b3) {
        free(c);
        return NULL;
    }
    pd_cdc_gear(c->gear);
    unsigned b = 0;
    while ((1ULL << b) < avg_size)
        b++;
    c->mask_s = top_bits(b + 2);
    c->mask_l = top_bits(b - 2);
    c->min_size = min_size;
    c->avg_size = avg_size;
    c->max_size = max_size;
    return c;
}

void pd_cdc_free(pd_cdc *c)
{
    if (!c)
        return;
    pd_blake3_free(c->b3);
    free(c);
}

void pd_cdc_reset(pd_cdc *c)
{
    c->h = 0;
    c->len = 0;
    c->done = 0;
    pd_blake3_reset(c->b3);
}

/* Hash in[i, i + n) into h, testing after each byte whether (h & mask) is
 * zero; returns the number of bytes consumed up to and including a byte
 * that passes, or n. Everything is in locals: the input is uint8_t, which
 * may alias anything, so fields read through a pointer would be reloaded
 * on every byte. */
static size_t gear_run(const uint64_t *g, const uint8_t *in, size_t n,
                       uint64_t mask, uint64_t *hp, int *found)
{
    uint64_t h = *hp;
    for (size_t k = 0; k < n; k++) {
        h = (h << 1) + g[in[k]];
        if (!(h & mask)) {
            *hp = h;
            *found = 1;
            return k + 1;
        }
    }
    *hp = h;
    return n;
}

/* Look for the end of the open chunk in in[p, end). Returns the index just
 * past the chunk's last byte, or `end` with *found = 0 if the chunk goes on.
 * Updates c->len and c->h either way. */
static size_t find_cut(pd_cdc *c, const uint8_t *in, size_t p, size_t end,
                       int *found)
{
    const uint64_t *g = c->gear;
    uint64_t h = c->h;
    uint64_t len = c->len;
    const uint64_t min_size = c->min_size;
    const uint64_t avg_size = c->avg_size;
    const uint64_t max_size = c->max_size;
    size_t i = p;
    uint64_t n;
    *found = 0;

    /* Bytes with L <= min - 64 cannot reach a decision: skip them. */
    if (len < min_size - 64) {
        n = min_size - 64 - len;
        if (n > end - i)
            n = end - i;
        i += (size_t)n;
        len += n;
    }
    /* Hash without testing up to L = min - 1. */
    if (len + 1 < min_size && i < end) {
        n = min_size - 1 - len;
        if (n > end - i)
            n = end - i;
        for (uint64_t k = 0; k < n; k++)
            h = (h << 1) + g[in[i + k]];
        i += (size_t)n;
        len += n;
    }
    /* min <= L < avg: the strict mask. */
    if (len + 1 >= min_size && len + 1 < avg_size && i < end) {
        n = avg_size - 1 - len;
        if (n > end - i)
            n = end - i;
        uint64_t got = gear_run(g, in + i, (size_t)n, c->mask_s, &h, found);
        i += (size_t)got;
        len += got;
        if (*found)
            goto out;
    }
    /* avg <= L < max: the loose mask; L == max: forced cut. */
    if (len + 1 >= avg_size && i < end) {
        n = max_size - len; /* >= 1: the chunk is cut at L == max */
        if (n > end - i)
            n = end - i;
        uint64_t got = gear_run(g, in + i, (size_t)n, c->mask_l, &h, found);
        i += (size_t)got;
        len += got;
        if (len == max_size)
            *found = 1;
    }
out:
    c->h = h;
    c->len = len;
    return i;
}

/* Report the open chunk as chunk number n and start the next one. */
static void emit_chunk(pd_cdc *c, uint64_t *lens, uint8_t *digests, size_t n)
{
    lens[n] = c->len;
    pd_blake3_final(c->b3, digests + (size_t)PD_HASH_LEN * n, PD_HASH_LEN);
    c->h = 0;
    c->len = 0;
    pd_blake3_reset(c->b3);
}

int pd_cdc_scan(pd_cdc *c, const uint8_t *in, size_t in_len, int eof,
                uint64_t *lens, uint8_t *digests, size_t cap,
                size_t *in_used, size_t *count)
{
    size_t p = 0;
    size_t n = 0;
    *in_used = 0;
    *count = 0;
    if (c->done)
        return in_len == 0 ? PD_DONE : PD_ERR_PARAM;
    while (p < in_len) {
        if (n == cap) {
            *in_used = p;
            *count = n;
            return PD_NEED_OUTPUT;
        }
        int found;
        size_t q = find_cut(c, in, p, in_len, &found);
        pd_blake3_update(c->b3, in + p, q - p);
        p = q;
        if (!found)
            break;
        emit_chunk(c, lens, digests, n++);
    }
    *in_used = p;
    if (!eof) {
        *count = n;
        return PD_NEED_INPUT;
    }
    if (c->len > 0) { /* the last, short chunk */
        if (n == cap) {
            *count = n;
            return PD_NEED_OUTPUT;
        }
        emit_chunk(c, lens, digests, n++);
    }
    c->done = 1;
    *count = n;
    return PD_DONE;
}
