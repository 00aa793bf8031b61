#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pydelta.h"
#include "blake3_impl.h"

/** \file blake3.c
 * BLAKE3 (unkeyed hash mode, extendable output) in portable C.
 *
 * Input is cut into 1024-byte chunks of sixteen 64-byte blocks. Each chunk
 * is compressed block by block from the key words (the IV here), the first
 * block flagged CHUNK_START and the last CHUNK_END, giving the chunk's
 * chaining value (CV). CVs are combined pairwise by PARENT compressions
 * into a binary tree whose left subtrees are always complete powers of two.
 *
 * The hasher keeps the chunk being filled (b3_chunk) and a stack of CVs of
 * completed subtrees. When chunk number n-1 completes, its CV is merged
 * with the top of the stack once for every trailing zero bit of n, then
 * pushed, so the stack holds one CV per set bit of n. A chunk (and the last
 * block of a chunk) is only finished once more input arrives, because the
 * last node must instead be finalized with the ROOT flag. pd_blake3_final
 * folds the stack onto the current chunk's output from the top down and
 * squeezes any number of bytes from the root node by compressing it again
 * with an incrementing output block counter; it works on copies, so the
 * state can be updated further afterwards.
 *
 * Speed: pd_blake3_update hashes whole chunks straight from the caller's
 * buffer through hash_chunks(), which turns N contiguous chunks into N CVs.
 * That is the place to slot in a SIMD routine that hashes several chunks
 * in parallel (one chunk per vector lane); today it runs the unrolled
 * portable compression (blake3_impl.h) chunk after chunk. Only a partial
 * chunk at the start or end of an update goes through b3_chunk, and even
 * there full blocks are compressed in place: only a block split across
 * update calls, or the block held back at the end, is copied through the
 * 64-byte buffer. Message words are loaded (memcpy, little-endian) straight
 * from the input inside the unrolled rounds. pd_blake3_hash uses a state
 * on the stack, so hashing many small blocks does no allocation.
 */

/* ---- chunk state ------------------------------------------------------- */

static void chunk_init(b3_chunk *c, const uint32_t key[8], uint64_t counter,
                       uint8_t flags)
{
    memcpy(c->cv, key, sizeof c->cv);
    c->counter = counter;
    c->buf_len = 0;
    c->blocks_compressed = 0;
    c->flags = flags;
}

static size_t chunk_len(const b3_chunk *c)
{
    return (size_t)c->blocks_compressed * B3_BLOCK_LEN + c->buf_len;
}

static uint32_t chunk_start_flag(const b3_chunk *c)
{
    return c->blocks_compressed == 0 ? B3_CHUNK_START : 0;
}

/* Add len bytes to the chunk; the caller keeps chunk_len() <= 1024. The
 * last block stays in buf until more input proves it is not the last. */
static void chunk_update(b3_chunk *c, const uint8_t *in, size_t len)
{
    if (c->buf_len > 0) {
        size_t take = B3_BLOCK_LEN - (size_t)c->buf_len;
        if (take > len)
            take = len;
        memcpy(c->buf + c->buf_len, in, take);
        c->buf_len = (uint8_t)(c->buf_len + take);
        in += take;
        len -= take;
        if (len == 0)
            return;
        b3_compress_block(c->cv, c->buf, c->counter, B3_BLOCK_LEN,
                          c->flags | chunk_start_flag(c));
        c->blocks_compressed++;
        c->buf_len = 0;
    }
    while (len > B3_BLOCK_LEN) {
        b3_compress_block(c->cv, in, c->counter, B3_BLOCK_LEN,
                          c->flags | chunk_start_flag(c));
        c->blocks_compressed++;
        in += B3_BLOCK_LEN;
        len -= B3_BLOCK_LEN;
    }
    memcpy(c->buf, in, len);
    c->buf_len = (uint8_t)len;
}

/* ---- output nodes ------------------------------------------------------ */

/** A node not yet compressed for the last time: it becomes either a CV
 * (for its parent) or, with ROOT, the output stream. */
typedef struct {
    uint32_t cv[8];
    uint32_t m[16];
    uint64_t counter;
    uint32_t block_len;
    uint32_t flags;
} b3_output;

static void chunk_output(const b3_chunk *c, b3_output *o)
{
    uint8_t block[B3_BLOCK_LEN];
    memcpy(block, c->buf, c->buf_len);
    memset(block + c->buf_len, 0, B3_BLOCK_LEN - (size_t)c->buf_len);
    memcpy(o->cv, c->cv, sizeof o->cv);
    b3_load_block(o->m, block);
    o->counter = c->counter;
    o->block_len = c->buf_len;
    o->flags = c->flags | chunk_start_flag(c) | B3_CHUNK_END;
}

static void parent_output(const uint32_t left[8], const uint32_t right[8],
                          const uint32_t key[8], uint8_t flags, b3_output *o)
{
    memcpy(o->cv, key, sizeof o->cv);
    memcpy(o->m, left, 8 * sizeof(uint32_t));
    memcpy(o->m + 8, right, 8 * sizeof(uint32_t));
    o->counter = 0;
    o->block_len = B3_BLOCK_LEN;
    o->flags = (uint32_t)flags | B3_PARENT;
}

static void output_cv(const b3_output *o, uint32_t cv[8])
{
    memcpy(cv, o->cv, 8 * sizeof(uint32_t));
    b3_compress_words(cv, o->m, o->counter, o->block_len, o->flags);
}

/* The root node's output stream: 64-byte blocks numbered 0, 1, 2, ... */
static void output_root_bytes(const b3_output *o, uint8_t *out, size_t len)
{
    uint64_t block = 0;
    uint8_t tmp[B3_BLOCK_LEN];
    while (len >= B3_BLOCK_LEN) {
        b3_compress_xof(o->cv, o->m, block, o->block_len,
                        o->flags | B3_ROOT, out);
        block++;
        out += B3_BLOCK_LEN;
        len -= B3_BLOCK_LEN;
    }
    if (len > 0) {
        b3_compress_xof(o->cv, o->m, block, o->block_len,
                        o->flags | B3_ROOT, tmp);
        memcpy(out, tmp, len);
    }
}

/* ---- whole chunks ------------------------------------------------------ */

/** Hash n whole, contiguous 1024-byte chunks numbered counter, counter+1,
 * ... into their CVs. None of them may be the root. This is the hook for a
 * later many-chunks-at-once SIMD routine; n is at most B3_BATCH. */
static void hash_chunks(const uint8_t *in, size_t n, const uint32_t key[8],
                        uint64_t counter, uint8_t flags, uint32_t (*cvs)[8])
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *chunk = in + i * B3_CHUNK_LEN;
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        /* One inlined compression site for all 16 blocks keeps the
         * code small; only the flags differ. */
        for (size_t b = 0; b < B3_CHUNK_LEN / B3_BLOCK_LEN; b++) {
            uint32_t f = flags;
            if (b == 0)
                f |= B3_CHUNK_START;
            if (b == B3_CHUNK_LEN / B3_BLOCK_LEN - 1)
                f |= B3_CHUNK_END;
            b3_compress_block(cv, chunk + b * B3_BLOCK_LEN, counter + i,
                              B3_BLOCK_LEN, f);
        }
        memcpy(cvs[i], cv, sizeof cv);
    }
}

/* ---- the tree ---------------------------------------------------------- */

/* Push the CV of a completed chunk, total_chunks being the number of
 * chunks completed including it. Merging a pair is safe here because the
 * caller knows more input follows, so no merged node can be the root. */
static void push_chunk_cv(pd_blake3 *h, const uint32_t chunk_cv[8],
                          uint64_t total_chunks)
{
    uint32_t cv[8];
    memcpy(cv, chunk_cv, sizeof cv);
    while ((total_chunks & 1) == 0) {
        b3_output o;
        h->stack_len--;
        parent_output(h->stack[h->stack_len], cv, h->key, h->chunk.flags,
                      &o);
        output_cv(&o, cv);
        total_chunks >>= 1;
    }
    memcpy(h->stack[h->stack_len], cv, sizeof cv);
    h->stack_len++;
}

static void hasher_init(pd_blake3 *h, const uint32_t key[8], uint8_t flags)
{
    memcpy(h->key, key, sizeof h->key);
    chunk_init(&h->chunk, key, 0, flags);
    h->stack_len = 0;
}

/* ---- public API -------------------------------------------------------- */

pd_blake3 *pd_blake3_new(void)
{
    pd_blake3 *h = malloc(sizeof *h);
    if (h != NULL)
        hasher_init(h, B3_IV, 0);
    return h;
}

pd_blake3 *pd_blake3_copy(const pd_blake3 *h)
{
    pd_blake3 *c = malloc(sizeof *c);
    if (c != NULL)
        memcpy(c, h, sizeof *c);
    return c;
}

void pd_blake3_free(pd_blake3 *h)
{
    free(h);
}

void pd_blake3_reset(pd_blake3 *h)
{
    hasher_init(h, h->key, h->chunk.flags);
}

void pd_blake3_update(pd_blake3 *h, const uint8_t *data, size_t len)
{
    uint32_t cvs[B3_BATCH][8];
    uint64_t counter;

    if (len == 0)
        return;

    /* Top up a chunk begun by an earlier update; finish it only if input
     * remains after filling it. */
    if (chunk_len(&h->chunk) > 0) {
        size_t take = B3_CHUNK_LEN - chunk_len(&h->chunk);
        uint32_t cv[8];
        b3_output o;
        if (take > len)
            take = len;
        chunk_update(&h->chunk, data, take);
        data += take;
        len -= take;
        if (len == 0)
            return;
        chunk_output(&h->chunk, &o);
        output_cv(&o, cv);
        push_chunk_cv(h, cv, h->chunk.counter + 1);
        chunk_init(&h->chunk, h->key, h->chunk.counter + 1, h->chunk.flags);
    }

    /* Whole chunks straight from data, always leaving at least one byte:
     * the last chunk may be the root. */
    counter = h->chunk.counter;
    while (len > B3_CHUNK_LEN) {
        size_t n = (len - 1) / B3_CHUNK_LEN;
        if (n > B3_BATCH)
            n = B3_BATCH;
        hash_chunks(data, n, h->key, counter, h->chunk.flags, cvs);
        for (size_t i = 0; i < n; i++)
            push_chunk_cv(h, cvs[i], counter + i + 1);
        counter += n;
        data += n * B3_CHUNK_LEN;
        len -= n * B3_CHUNK_LEN;
    }
    h->chunk.counter = counter;

    /* 1..1024 bytes begin the next chunk. */
    chunk_update(&h->chunk, data, len);
}

void pd_blake3_final(const pd_blake3 *h, uint8_t *out, size_t out_len)
{
    b3_output o;
    if (out_len == 0)
        return;
    chunk_output(&h->chunk, &o);
    for (size_t i = h->stack_len; i > 0; i--) {
        uint32_t cv[8];
        output_cv(&o, cv);
        parent_output(h->stack[i - 1], cv, h->key, h->chunk.flags, &o);
    }
    output_root_bytes(&o, out, out_len);
}

void pd_blake3_hash(const uint8_t *data, size_t len, uint8_t *out,
                    size_t out_len)
{
    pd_blake3 h;
    hasher_init(&h, B3_IV, 0);
    pd_blake3_update(&h, data, len);
    pd_blake3_final(&h, out, out_len);
}
