/** \file blake3.c
 * BLAKE3 (unkeyed hash mode, extendable output): portable C, plus the x86
 * SIMD kernels of blake3_simd.c for hashing many chunks at once.
 *
 * Input is cut into 1024-byte chunks of sixteen 64-byte blocks. Each chunk
 * is compressed block by block from the key words (the IV here), the first
 * block flagged CHUNK_START and the last CHUNK_END, giving the chunk's
 * chaining value (CV). CVs are combined pairwise by PARENT compressions
 * into a binary tree whose left subtrees are always complete powers of two.
 *
 * The hasher keeps the chunk being filled (b3_chunk) and a stack of CVs of
 * completed subtrees, one per set bit of the number of completed chunks,
 * plus at most one CV on top not merged yet: merging is lazy, done just
 * before the next CV is pushed or a new chunk begins, so no node that could
 * still turn out to be the root is ever compressed as a non-root. A single
 * chunk at the start of the input (which may be the root) and the last
 * block of any chunk are kept back the same way until more input arrives.
 * pd_blake3_final folds the stack onto the last node (the current chunk,
 * or the parent of the top two CVs when the input ended on a chunk
 * boundary) from the top down and squeezes any number of bytes from the
 * root node by compressing it again with an incrementing output block
 * counter; it works on copies, so the state can be updated further.
 *
 * Speed: pd_blake3_update hashes whole chunks straight from the caller's
 * buffer as complete subtrees of up to B3_MAX_SUBTREE chunks, each aligned
 * to its own size in the chunk numbering (hash_subtree). hash_many runs
 * the chunks of a subtree side by side through the SIMD kernels of
 * blake3_simd.c, one chunk per vector lane (16 with AVX-512, 8 with AVX2,
 * 4 with SSE4.1, the rest portable), then each level of parent nodes the
 * same way, in place, down to the subtree's two halves, which go on the
 * stack. The kernels are picked once per process from the CPU's features
 * (PYDELTA_BLAKE3_SIMD can ask for a lower one; pd_blake3_impl names the
 * choice). Only a partial chunk at the start or end of an update goes
 * through b3_chunk, and even there full blocks are compressed in place:
 * only a block split across update calls, or the block held back at the
 * end, is copied through the 64-byte buffer. pd_blake3_hash uses a state
 * on the stack, so hashing many small blocks does no allocation.
 */

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* pydelta.h, and pd_map_call */
#include "blake3_impl.h"

/* ---- chunk state -------------------------------------------------------- */

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

/* ---- output nodes ------------------------------------------------------- */

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
        b3_compress_xof(o->cv, o->m, block, o->block_len, o->flags | B3_ROOT,
                        out);
        block++;
        out += B3_BLOCK_LEN;
        len -= B3_BLOCK_LEN;
    }
    if (len > 0) {
        b3_compress_xof(o->cv, o->m, block, o->block_len, o->flags | B3_ROOT,
                        tmp);
        memcpy(out, tmp, len);
    }
}

/* ---- implementation choice ---------------------------------------------- */

/* The best kernel set this CPU runs (each level needs all below it). */
static int b3_cpu_best(void)
{
    int best = B3_IMPL_PORTABLE;
#if defined(B3_X86_SIMD)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.1")) {
        best = B3_IMPL_SSE41;
        if (__builtin_cpu_supports("avx2")) {
            best = B3_IMPL_AVX2;
            if (__builtin_cpu_supports("avx512f"))
                best = B3_IMPL_AVX512;
        }
    }
#endif
    return best;
}

static const char *const b3_impl_names[] = {"portable", "sse41", "avx2",
                                            "avx512"};

/* The best supported implementation, lowered to the one named by
 * PYDELTA_BLAKE3_SIMD if that is set to a known, lower name (a higher or
 * unsupported one leaves the best supported). */
static int b3_impl_choose(void)
{
    int best = b3_cpu_best();
    const char *want = getenv("PYDELTA_BLAKE3_SIMD");
    if (want != NULL) {
        for (int i = 0;
             i < (int)(sizeof b3_impl_names / sizeof b3_impl_names[0]); i++) {
            if (strcmp(want, b3_impl_names[i]) == 0 && i < best)
                best = i;
        }
    }
    return best;
}

/* Chosen on first use and never changed. Threads racing on the first call
 * all compute the same value, so the race is benign; the atomic accesses
 * (relaxed: no other data hangs on it) make it formally race-free too. */
static int b3_impl_cached = -1;

static int b3_impl(void)
{
#if defined(__GNUC__) || defined(__clang__)
    int impl = __atomic_load_n(&b3_impl_cached, __ATOMIC_RELAXED);
    if (impl < 0) {
        impl = b3_impl_choose();
        __atomic_store_n(&b3_impl_cached, impl, __ATOMIC_RELAXED);
    }
#else
    int impl = *(volatile int *)&b3_impl_cached;
    if (impl < 0) {
        impl = b3_impl_choose();
        *(volatile int *)&b3_impl_cached = impl;
    }
#endif
    return impl;
}

/* ---- many inputs at once ------------------------------------------------ */

/** Portable form of the kernels in blake3_simd.c (see B3_KERNEL_ARGS in
 * blake3_impl.h), for any number n of inputs: input i is `blocks` blocks
 * at in + i * stride with counter + i * step; its CV goes little-endian to
 * out + 32 * i. out may overlap in if out <= in (in-place parent levels):
 * input i is read before CV i is written and CV i lies below input i+1. */
static void hash_many_portable(const uint8_t *in, size_t n, size_t stride,
                               size_t blocks, const uint32_t key[8],
                               uint64_t counter, uint64_t step, uint32_t flags,
                               uint32_t flags_start, uint32_t flags_end,
                               uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = in + i * stride;
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        /* One inlined compression site for all blocks keeps the code
         * small; only the flags differ. */
        for (size_t b = 0; b < blocks; b++) {
            uint32_t f = flags;
            if (b == 0)
                f |= flags_start;
            if (b + 1 == blocks)
                f |= flags_end;
            b3_compress_block(cv, p + b * B3_BLOCK_LEN, counter, B3_BLOCK_LEN,
                              f);
        }
        for (int w = 0; w < 8; w++)
            b3_store32(out + 32 * i + 4 * w, cv[w]);
        counter += step;
    }
}

/** hash_many_portable's contract, run by the widest kernels the chosen
 * implementation has, narrower ones (and finally portable code) taking
 * what is left. Groups go in increasing address order, each reading all
 * its inputs before writing, so in-place use stays safe. */
static void hash_many(const uint8_t *in, size_t n, size_t stride, size_t blocks,
                      const uint32_t key[8], uint64_t counter, uint64_t step,
                      uint32_t flags, uint32_t flags_start, uint32_t flags_end,
                      uint8_t *out)
{
#if defined(B3_X86_SIMD)
    int impl = b3_impl();
#define B3_RUN_KERNEL(fn, lanes)                                               \
    for (; n >= (lanes); n -= (lanes)) {                                       \
        fn(in, stride, blocks, key, counter, step, flags, flags_start,         \
           flags_end, out);                                                    \
        in += (lanes) * stride;                                                \
        out += (lanes) * 32;                                                   \
        counter += (lanes) * step;                                             \
    }
    if (impl >= B3_IMPL_AVX512)
        B3_RUN_KERNEL(pd_b3_hash16_avx512, 16);
    if (impl >= B3_IMPL_AVX2)
        B3_RUN_KERNEL(pd_b3_hash8_avx2, 8);
    if (impl >= B3_IMPL_SSE41)
        B3_RUN_KERNEL(pd_b3_hash4_sse41, 4);
#undef B3_RUN_KERNEL
#endif
    hash_many_portable(in, n, stride, blocks, key, counter, step, flags,
                       flags_start, flags_end, out);
}

/** Hash n whole chunks at in, numbered from counter (n a power of two, at
 * most B3_MAX_SUBTREE, counter a multiple of n), and reduce their CVs level
 * by level, every level's parents in parallel, down to the CVs of the two
 * halves of their subtree: returns 2, with cvs[0] the left half and cvs[1]
 * the right. The subtree's own node is left to the caller, so this is
 * safe even when the n chunks are the whole input and that node is the
 * root. n == 1 gives the chunk's CV in cvs[0] and returns 1; that chunk
 * must not be the root. */
static size_t hash_subtree(const uint8_t *in, size_t n, const uint32_t key[8],
                           uint64_t counter, uint8_t flags, uint32_t cvs[2][8])
{
    uint8_t buf[B3_MAX_SUBTREE * 32];
    hash_many(in, n, B3_CHUNK_LEN, B3_CHUNK_LEN / B3_BLOCK_LEN, key, counter, 1,
              flags, B3_CHUNK_START, B3_CHUNK_END, buf);
    /* Each adjacent pair of CVs in buf is one parent's 64-byte block. */
    while (n > 2) {
        n /= 2;
        hash_many(buf, n, B3_BLOCK_LEN, 1, key, 0, 0,
                  (uint32_t)flags | B3_PARENT, 0, 0, buf);
    }
    for (size_t i = 0; i < n; i++)
        for (int w = 0; w < 8; w++)
            cvs[i][w] = b3_load32(buf + 32 * i + 4 * w);
    return n;
}

/* ---- the tree ----------------------------------------------------------- */

static unsigned b3_popcount64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_popcountll(x);
#else
    unsigned n = 0;
    for (; x != 0; x &= x - 1)
        n++;
    return n;
#endif
}

/* Merge the top of the stack pairwise until it holds one CV per set bit of
 * total_chunks (the chunks its entries cover). Merging is lazy: the CV
 * pushed last stays unmerged until this runs, i.e. until more input shows
 * the merged node cannot be the root. */
static void merge_stack(pd_blake3 *h, uint64_t total_chunks)
{
    unsigned keep = b3_popcount64(total_chunks);
    while (h->stack_len > keep) {
        b3_output o;
        parent_output(h->stack[h->stack_len - 2], h->stack[h->stack_len - 1],
                      h->key, h->chunk.flags, &o);
        output_cv(&o, h->stack[h->stack_len - 2]);
        h->stack_len--;
    }
}

/* Push the CV of a complete subtree (one chunk or more) that starts at
 * chunk number chunks_before. */
static void push_cv(pd_blake3 *h, const uint32_t cv[8], uint64_t chunks_before)
{
    merge_stack(h, chunks_before);
    memcpy(h->stack[h->stack_len], cv, 8 * sizeof(uint32_t));
    h->stack_len++;
}

static void hasher_init(pd_blake3 *h, const uint32_t key[8], uint8_t flags)
{
    memcpy(h->key, key, sizeof h->key);
    chunk_init(&h->chunk, key, 0, flags);
    h->stack_len = 0;
}

/* ---- public API --------------------------------------------------------- */

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
        push_cv(h, cv, h->chunk.counter);
        chunk_init(&h->chunk, h->key, h->chunk.counter + 1, h->chunk.flags);
    }

    /* Whole chunks straight from data, as the largest aligned subtrees
     * that fit. These may use up all the input: hash_subtree stops short
     * of each subtree's own node and the stack merges lazily, so no node
     * that could still be the root gets compressed as a non-root. The one
     * exception is a single chunk at the very start, which must wait in
     * the chunk state. */
    counter = h->chunk.counter;
    while (len >= B3_CHUNK_LEN) {
        uint32_t cvs[2][8];
        size_t n = B3_MAX_SUBTREE;
        while (n * B3_CHUNK_LEN > len)
            n >>= 1;
        while ((counter & (n - 1)) != 0)
            n >>= 1;
        if (n == 1 && counter == 0 && len == B3_CHUNK_LEN)
            break;
        if (hash_subtree(data, n, h->key, counter, h->chunk.flags, cvs) == 2) {
            push_cv(h, cvs[0], counter);
            push_cv(h, cvs[1], counter + n / 2);
        } else {
            push_cv(h, cvs[0], counter);
        }
        counter += n;
        data += n * B3_CHUNK_LEN;
        len -= n * B3_CHUNK_LEN;
    }
    h->chunk.counter = counter;

    /* The rest begins the next chunk; that proves the stack's last CV is
     * not the root, so merge it in (pd_blake3_final relies on a non-empty
     * chunk following a fully merged stack). */
    if (len > 0) {
        merge_stack(h, counter);
        chunk_update(&h->chunk, data, len);
    }
}

void pd_blake3_final(const pd_blake3 *h, uint8_t *out, size_t out_len)
{
    b3_output o;
    size_t i = h->stack_len;
    if (out_len == 0)
        return;
    /* The last node is the current chunk unless the input ended on a chunk
     * boundary after at least two chunks: then the chunk state is empty
     * and the last two stack entries are the root's children. */
    if (chunk_len(&h->chunk) > 0 || i == 0) {
        chunk_output(&h->chunk, &o);
    } else {
        parent_output(h->stack[i - 2], h->stack[i - 1], h->key, h->chunk.flags,
                      &o);
        i -= 2;
    }
    for (; i > 0; i--) {
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

const char *pd_blake3_impl(void)
{
    return b3_impl_names[b3_impl()];
}

/* ---- tree-parallel update ------------------------------------------------
 *
 * BLAKE3's tree lets aligned power-of-two subtrees be hashed independently:
 * the CV of a subtree that is not the root depends only on its chunks and
 * their numbers. pd_blake3_update_par cuts the middle of its input into
 * subtrees of B3_PAR_CHUNKS chunks, aligned in the chunk numbering, has
 * threads compute each subtree's two halves' CVs, and pushes those onto the
 * stack in order, exactly as pd_blake3_update pushes the halves of the
 * subtrees it hashes itself (the subtree's own node is merged lazily, so
 * the last one may still be the root). The bytes before the first aligned
 * subtree and after the last go through pd_blake3_update. The state after
 * it is the one pd_blake3_update would leave, so the digest is the same
 * for every length and any thread count.
 */

#include <pthread.h>

enum {
    B3_PAR_CHUNKS = 1024, /* chunks per parallel subtree (1 MiB) */
    B3_PAR_BATCH = 64,    /* subtrees per round of threads */
    B3_PAR_THREADS = 16   /* most threads used */
};

/* The CV of the n-chunk subtree at in (n a power of two, counter a
 * multiple of n), which must not be the root. */
static void subtree_cv(const uint8_t *in, size_t n, const uint32_t key[8],
                       uint64_t counter, uint8_t flags, uint32_t cv[8])
{
    uint32_t halves[2][8];
    if (n <= B3_MAX_SUBTREE) {
        if (hash_subtree(in, n, key, counter, flags, halves) == 1) {
            memcpy(cv, halves[0], sizeof halves[0]);
            return;
        }
    } else {
        size_t half = n / 2;
        subtree_cv(in, half, key, counter, flags, halves[0]);
        subtree_cv(in + half * B3_CHUNK_LEN, half, key, counter + half, flags,
                   halves[1]);
    }
    b3_output o;
    parent_output(halves[0], halves[1], key, flags, &o);
    output_cv(&o, cv);
}

/* A batch of subtrees shared by threads: each takes the next one not yet
 * taken, so a thread that gets less CPU (a loaded machine) does less of
 * the batch instead of holding up the others. Over a mapping (guarded)
 * each thread runs each subtree under its own SIGBUS guard; a fault stops
 * the batch and is reported to the caller through `fault`. */
typedef struct {
    const uint8_t *in; /* the batch's first subtree */
    const uint32_t *key;
    uint64_t counter; /* chunk number of the batch's first subtree */
    uint8_t flags;
    size_t n;              /* subtrees in the batch */
    size_t next;           /* the next one to take (atomic) */
    uint32_t (*cvs)[2][8]; /* per subtree: its halves' CVs */
    int guarded;           /* read under pd_map_call */
    int fault;             /* (atomic) a guarded read failed: its code */
} b3_par_batch;

/* One subtree of a batch: its halves' CVs. */
typedef struct {
    const b3_par_batch *b;
    size_t i;
} b3_par_one;

static void par_one(void *arg)
{
    const b3_par_one *one = arg;
    const b3_par_batch *b = one->b;
    const size_t half = B3_PAR_CHUNKS / 2;
    const uint8_t *p = b->in + one->i * (size_t)B3_PAR_CHUNKS * B3_CHUNK_LEN;
    uint64_t c = b->counter + (uint64_t)one->i * B3_PAR_CHUNKS;
    subtree_cv(p, half, b->key, c, b->flags, b->cvs[one->i][0]);
    subtree_cv(p + half * B3_CHUNK_LEN, half, b->key, c + half, b->flags,
               b->cvs[one->i][1]);
}

static void *par_batch_work(void *arg)
{
    b3_par_batch *b = arg;
    for (;;) {
        if (b->guarded && __atomic_load_n(&b->fault, __ATOMIC_RELAXED))
            break;
        size_t i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (i >= b->n)
            break;
        b3_par_one one = {b, i};
        if (!b->guarded) {
            par_one(&one);
            continue;
        }
        int rc = pd_map_call(par_one, &one);
        if (rc != PD_OK) {
            __atomic_store_n(&b->fault, rc, __ATOMIC_RELAXED);
            break;
        }
    }
    return NULL;
}

/* Hash n whole subtrees of B3_PAR_CHUNKS chunks at in (the hasher's chunk
 * state empty, its counter a multiple of B3_PAR_CHUNKS) on up to threads
 * threads (the caller one of them), and push their halves in order.
 * PD_OK, or a guarded read's fault (nothing pushed). */
static int par_batch(pd_blake3 *h, const uint8_t *in, size_t n,
                     unsigned threads, int guarded)
{
    uint32_t cvs[B3_PAR_BATCH][2][8];
    pthread_t th[B3_PAR_THREADS];
    unsigned started = 0;
    b3_par_batch b = {in,  h->key, h->chunk.counter, h->chunk.flags, n, 0,
                      cvs, guarded, PD_OK};
    if (threads > n)
        threads = (unsigned)n;
    /* a helper that cannot be started leaves its share to the others */
    while (started + 1 < threads &&
           pthread_create(&th[started], NULL, par_batch_work, &b) == 0)
        started++;
    par_batch_work(&b);
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    if (b.fault != PD_OK)
        return b.fault;
    uint64_t counter = h->chunk.counter;
    for (size_t i = 0; i < n; i++) {
        push_cv(h, cvs[i][0], counter);
        push_cv(h, cvs[i][1], counter + B3_PAR_CHUNKS / 2);
        counter += B3_PAR_CHUNKS;
    }
    h->chunk.counter = counter;
    return PD_OK;
}

/* A chunk pd_blake3_update filled and kept (the input might have ended
 * there) when more input follows: it is not the root, so finish it. */
static void flush_full_chunk(pd_blake3 *h)
{
    if (chunk_len(&h->chunk) < B3_CHUNK_LEN)
        return;
    uint32_t cv[8];
    b3_output o;
    chunk_output(&h->chunk, &o);
    output_cv(&o, cv);
    push_cv(h, cv, h->chunk.counter);
    chunk_init(&h->chunk, h->key, h->chunk.counter + 1, h->chunk.flags);
}

/* pd_blake3_update, or over a mapping (guarded) its guarded twin. */
static int update_one(pd_blake3 *h, const uint8_t *data, size_t len,
                      int guarded)
{
    if (guarded)
        return pd_blake3_update_mapped(h, data, len);
    pd_blake3_update(h, data, len);
    return PD_OK;
}

static int update_par(pd_blake3 *h, const uint8_t *data, size_t len,
                      unsigned threads, int guarded)
{
    const size_t sub = (size_t)B3_PAR_CHUNKS * B3_CHUNK_LEN;
    if (threads > B3_PAR_THREADS)
        threads = B3_PAR_THREADS;
    if (threads < 2 || len < 2 * sub)
        return update_one(h, data, len, guarded);
    /* up to the next subtree boundary, one by one */
    flush_full_chunk(h);
    uint64_t done = h->chunk.counter * B3_CHUNK_LEN + chunk_len(&h->chunk);
    size_t head = (size_t)((sub - done % sub) % sub);
    if (head) {
        int rc = update_one(h, data, head, guarded);
        if (rc != PD_OK)
            return rc;
        data += head;
        len -= head;
        flush_full_chunk(h);
    }
    while (len >= sub) {
        size_t n = len / sub;
        if (n > B3_PAR_BATCH)
            n = B3_PAR_BATCH;
        int rc = par_batch(h, data, n, threads, guarded);
        if (rc != PD_OK)
            return rc;
        data += n * sub;
        len -= n * sub;
    }
    return update_one(h, data, len, guarded);
}

void pd_blake3_update_par(pd_blake3 *h, const uint8_t *data, size_t len,
                          unsigned threads)
{
    (void)update_par(h, data, len, threads, 0);
}

int pd_blake3_update_par_mapped(pd_blake3 *h, const uint8_t *data,
                                size_t len, unsigned threads)
{
    return update_par(h, data, len, threads, 1);
}
