/** \file blake3_impl.h
 * Internals of pydelta's BLAKE3 (blake3.c): constants, the hasher struct
 * behind the opaque pd_blake3 handle, the portable compression function as
 * static inline helpers, the round schedule as macros shared with the SIMD
 * kernels, and the interface of those kernels (blake3_simd.c).
 *
 * Include this after <stdint.h>, <stddef.h> and "pydelta.h"; it does not
 * include pydelta.h itself because that header has no include guard.
 */
#ifndef PD_BLAKE3_IMPL_H
#define PD_BLAKE3_IMPL_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

enum {
    B3_BLOCK_LEN = 64,   /* bytes per compression */
    B3_CHUNK_LEN = 1024, /* bytes per leaf chunk (16 blocks) */
    B3_MAX_DEPTH = 54,   /* log2 of the most chunks in 2^64 bytes */
    B3_MAX_SUBTREE = 128 /* most chunks per hash_subtree call (a
                            power of two; 32 bytes of stack each) */
};

/* Domain flags (the last word of the compression input). */
enum {
    B3_CHUNK_START = 1u << 0,
    B3_CHUNK_END = 1u << 1,
    B3_PARENT = 1u << 2,
    B3_ROOT = 1u << 3,
    B3_KEYED_HASH = 1u << 4,
    B3_DERIVE_KEY_CONTEXT = 1u << 5,
    B3_DERIVE_KEY_MATERIAL = 1u << 6
};

static const uint32_t B3_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u,
                                  0xA54FF53Au, 0x510E527Fu, 0x9B05688Cu,
                                  0x1F83D9ABu, 0x5BE0CD19u};

/** The chunk being filled: its chaining value so far, the block that has
 * not been compressed yet (kept back until more input shows it is not the
 * chunk's last block), and how many blocks were compressed already. */
typedef struct {
    uint32_t cv[8];
    uint64_t counter; /* index of this chunk in the input */
    uint8_t buf[B3_BLOCK_LEN];
    uint8_t buf_len;           /* 0..64 bytes held in buf */
    uint8_t blocks_compressed; /* 0..15 */
    uint8_t flags;             /* mode flags (0 for plain hashing) */
} b3_chunk;

/** The hasher: key words (the IV in hash mode), the current chunk, and a
 * stack of chaining values of completed subtrees, one per set bit of the
 * number of completed chunks, largest (leftmost) subtree at the bottom,
 * plus at most one more on top that is not merged yet (merging is lazy:
 * it waits until more input shows the merged node is not the root). */
struct pd_blake3 {
    uint32_t key[8];
    b3_chunk chunk;
    uint8_t stack_len;
    uint32_t stack[B3_MAX_DEPTH + 1][8];
};

static inline uint32_t b3_load32(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
#endif
}

static inline void b3_store32(uint8_t *p, uint32_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, 4);
#else
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
#endif
}

static inline void b3_load_block(uint32_t m[16], const uint8_t *block)
{
    for (int i = 0; i < 16; i++)
        m[i] = b3_load32(block + 4 * i);
}

/* Force inlining of the block compression into the loops that run it
 * (hash_chunks, chunk_update): measurably faster than a call. */
#if defined(__GNUC__) || defined(__clang__)
#define B3_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define B3_ALWAYS_INLINE __forceinline
#else
#define B3_ALWAYS_INLINE inline
#endif

static inline uint32_t b3_rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

/* The quarter-round G on state words a, b, c, d with message words x, y. */
#define B3_G(a, b, c, d, x, y)                                                 \
    do {                                                                       \
        a = a + b + (x);                                                       \
        d = b3_rotr32(d ^ a, 16);                                              \
        c = c + d;                                                             \
        b = b3_rotr32(b ^ c, 12);                                              \
        a = a + b + (y);                                                       \
        d = b3_rotr32(d ^ a, 8);                                               \
        c = c + d;                                                             \
        b = b3_rotr32(b ^ c, 7);                                               \
    } while (0)

/* One round: columns then diagonals, with G the quarter-round to use (the
 * scalar B3_G here; SIMD code passes a vector one operating on the same
 * names v0..v15, one lane per input). The s arguments are the message word
 * indices for this round, i.e. the permutation applied r times, so no
 * words are moved at run time; M(i) is how message word i is read. */
#define B3_ROUND_G(G, M, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11,     \
                   s12, s13, s14, s15)                                         \
    do {                                                                       \
        G(v0, v4, v8, v12, M(s0), M(s1));                                      \
        G(v1, v5, v9, v13, M(s2), M(s3));                                      \
        G(v2, v6, v10, v14, M(s4), M(s5));                                     \
        G(v3, v7, v11, v15, M(s6), M(s7));                                     \
        G(v0, v5, v10, v15, M(s8), M(s9));                                     \
        G(v1, v6, v11, v12, M(s10), M(s11));                                   \
        G(v2, v7, v8, v13, M(s12), M(s13));                                    \
        G(v3, v4, v9, v14, M(s14), M(s15));                                    \
    } while (0)

/* The seven rounds on v0..v15. Row r of the schedule is the message
 * permutation {2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8} applied r times. */
#define B3_ROUNDS(G, M)                                                        \
    do {                                                                       \
        B3_ROUND_G(G, M, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,     \
                   15);                                                        \
        B3_ROUND_G(G, M, 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15,    \
                   8);                                                         \
        B3_ROUND_G(G, M, 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8,    \
                   1);                                                         \
        B3_ROUND_G(G, M, 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1,    \
                   6);                                                         \
        B3_ROUND_G(G, M, 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6,    \
                   4);                                                         \
        B3_ROUND_G(G, M, 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4,    \
                   7);                                                         \
        B3_ROUND_G(G, M, 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7,     \
                   13);                                                        \
    } while (0)

/* Set up v0..v15 from cv, the IV, counter, block_len and flags and run
 * the seven rounds. */
#define B3_COMPRESS_BODY(cv, M, counter, block_len, flags)                     \
    uint32_t v0 = cv[0], v1 = cv[1], v2 = cv[2], v3 = cv[3];                   \
    uint32_t v4 = cv[4], v5 = cv[5], v6 = cv[6], v7 = cv[7];                   \
    uint32_t v8 = B3_IV[0], v9 = B3_IV[1], v10 = B3_IV[2], v11 = B3_IV[3];     \
    uint32_t v12 = (uint32_t)(counter);                                        \
    uint32_t v13 = (uint32_t)((uint64_t)(counter) >> 32);                      \
    uint32_t v14 = (uint32_t)(block_len), v15 = (uint32_t)(flags);             \
    B3_ROUNDS(B3_G, M)

/* The two ways compressions read message words: from an array of words,
 * or straight from 64 bytes of memory, little-endian. */
#define B3_MW(i) (m[i])
#define B3_MB(i) (b3_load32(block + 4 * (i)))

/* Store the truncated output (v[i] ^ v[i+8]) into cv. */
#define B3_STORE_CV(cv)                                                        \
    do {                                                                       \
        cv[0] = v0 ^ v8;                                                       \
        cv[1] = v1 ^ v9;                                                       \
        cv[2] = v2 ^ v10;                                                      \
        cv[3] = v3 ^ v11;                                                      \
        cv[4] = v4 ^ v12;                                                      \
        cv[5] = v5 ^ v13;                                                      \
        cv[6] = v6 ^ v14;                                                      \
        cv[7] = v7 ^ v15;                                                      \
    } while (0)

/** Compress message words m into the chaining value cv (in place): the
 * truncated output that chunk blocks and parent nodes use. */
static inline void b3_compress_words(uint32_t cv[8], const uint32_t m[16],
                                     uint64_t counter, uint32_t block_len,
                                     uint32_t flags)
{
    B3_COMPRESS_BODY(cv, B3_MW, counter, block_len, flags);
    B3_STORE_CV(cv);
}

/** b3_compress_words on a 64-byte block read little-endian straight from
 * memory (no copy of the block is made). */
static B3_ALWAYS_INLINE void
b3_compress_block(uint32_t cv[8], const uint8_t *block, uint64_t counter,
                  uint32_t block_len, uint32_t flags)
{
    B3_COMPRESS_BODY(cv, B3_MB, counter, block_len, flags);
    B3_STORE_CV(cv);
}

/** The full 64-byte extended output of one compression (root output
 * blocks), written little-endian to out; cv is not changed. */
static inline void b3_compress_xof(const uint32_t cv[8], const uint32_t m[16],
                                   uint64_t counter, uint32_t block_len,
                                   uint32_t flags, uint8_t out[64])
{
    B3_COMPRESS_BODY(cv, B3_MW, counter, block_len, flags);
    b3_store32(out + 0, v0 ^ v8);
    b3_store32(out + 4, v1 ^ v9);
    b3_store32(out + 8, v2 ^ v10);
    b3_store32(out + 12, v3 ^ v11);
    b3_store32(out + 16, v4 ^ v12);
    b3_store32(out + 20, v5 ^ v13);
    b3_store32(out + 24, v6 ^ v14);
    b3_store32(out + 28, v7 ^ v15);
    b3_store32(out + 32, v8 ^ cv[0]);
    b3_store32(out + 36, v9 ^ cv[1]);
    b3_store32(out + 40, v10 ^ cv[2]);
    b3_store32(out + 44, v11 ^ cv[3]);
    b3_store32(out + 48, v12 ^ cv[4]);
    b3_store32(out + 52, v13 ^ cv[5]);
    b3_store32(out + 56, v14 ^ cv[6]);
    b3_store32(out + 60, v15 ^ cv[7]);
}

/* ---- SIMD kernels (blake3_simd.c) ------------------------------------ */

/* Implementations, in order of preference; the dispatcher in blake3.c
 * picks the best one the CPU supports (or the one PYDELTA_BLAKE3_SIMD
 * names, if supported) once per process. */
enum {
    B3_IMPL_PORTABLE = 0,
    B3_IMPL_SSE41 = 1, /* 4 lanes, 128-bit */
    B3_IMPL_AVX2 = 2,  /* 8 lanes, 256-bit */
    B3_IMPL_AVX512 = 3 /* 16 lanes, 512-bit (AVX-512F) */
};

#if (defined(__x86_64__) || defined(__i386__)) &&                              \
    (defined(__GNUC__) || defined(__clang__))
#define B3_X86_SIMD 1

/** The many-inputs kernels: each hashes exactly LANES inputs at once, one
 * per vector lane. Input i (0 <= i < LANES) is `blocks` 64-byte blocks at
 * in + i * stride, compressed from key with counter + i * counter_step,
 * block length 64, flags on every block plus flags_start on the first and
 * flags_end on the last; its chaining value is written little-endian to
 * out + 32 * i. out may overlap in as long as out <= in (the inputs are
 * read before any output is written): the parent levels of a subtree are
 * reduced in place. Whole chunks are blocks = 16 with CHUNK_START/END and
 * step 1; parents are blocks = 1, step 0, PARENT in flags. */
#define B3_KERNEL_ARGS                                                         \
    const uint8_t *in, size_t stride, size_t blocks, const uint32_t key[8],    \
        uint64_t counter, uint64_t counter_step, uint32_t flags,               \
        uint32_t flags_start, uint32_t flags_end, uint8_t *out

__attribute__((visibility("hidden"))) void pd_b3_hash4_sse41(B3_KERNEL_ARGS);
__attribute__((visibility("hidden"))) void pd_b3_hash8_avx2(B3_KERNEL_ARGS);
__attribute__((visibility("hidden"))) void pd_b3_hash16_avx512(B3_KERNEL_ARGS);
#endif

#endif /* PD_BLAKE3_IMPL_H */
