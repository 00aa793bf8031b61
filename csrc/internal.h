/** \file internal.h
 * Definitions shared by the core's C files and never seen by Python:
 * the weak rolling sum's hot-path inlines, little-endian and varint wire
 * helpers, and the layout of the signature table that the delta scan
 * walks directly.
 *
 * The weak sum is a polynomial (Rabin-Karp style) hash over 64-bit words:
 *     h(c_0 .. c_{n-1}) = sum c_i * M^(n-1-i)   (mod 2^64)
 * with M an odd 64-bit constant. Rolling one byte is
 *     h' = h*M + c_in - c_out*M^n,
 * and c_out*M^n comes from a 256-entry table built per block length, so the
 * loop-carried dependency is a single multiply-add. 64 bits keep false
 * weak matches (each costing a strong hash of a block) negligible even for
 * signatures with millions of blocks, where rsync's 32-bit sum would not.
 */
#ifndef PD_INTERNAL_H
#define PD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pydelta.h"

/** Multiplier of the weak polynomial hash (odd, well mixed). */
#define PD_WEAK_M 0x9E3779B97F4A7C15ULL
/** Value that marks "no continuation offset" in the delta scan. */
#define PD_NONE UINT64_MAX

/** Store v as 8 little-endian bytes. */
static inline void pd_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/** Load 8 little-endian bytes (one load on a little-endian machine: gcc
 * does not merge the byte loads of a shifting loop). */
static inline uint64_t pd_get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/** Write v as an unsigned LEB128 varint; returns bytes written (<= 10). */
static inline size_t pd_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/** Parse a varint from p[0..avail). Returns bytes used, 0 if more input is
 * needed, or -1 if the encoding is overlong or overflows 64 bits. */
static inline int pd_get_varint(const uint8_t *p, size_t avail, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i >= avail)
            return 0;
        uint8_t b = p[i];
        if (i == 9 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            /* a trailing zero group would be a second spelling */
            if (i > 0 && b == 0)
                return -1;
            *v = r;
            return (int)(i + 1);
        }
    }
    return -1;
}

/* ---- the per-block strong sum (xxh3.c, blake3.c) ---------------------- */

/** XXH3-128 fed in pieces (xxh3.c): the same digest as pd_xxh3_128 over
 * the concatenation. Holds at most PD_XXH3_BUF bytes of input. */
#define PD_XXH3_BUF 512
typedef struct {
    uint64_t acc[8];
    uint64_t total;           /* bytes fed */
    size_t stripes;           /* stripes taken in the current 1 KiB block */
    size_t start, end;        /* buf[start, end): fed, not yet taken */
    uint8_t buf[PD_XXH3_BUF]; /* the input while <= 240 bytes, then the
                                 64 bytes before start and the rest */
} pd_xxh3_state;

void pd_xxh3_reset(pd_xxh3_state *st);
void pd_xxh3_update(pd_xxh3_state *st, const uint8_t *p, size_t n);
void pd_xxh3_final(const pd_xxh3_state *st, uint8_t out[PD_XXH3_LEN]);

/** 1 if kind is a strong sum a native signature may hold with strong_len
 * bytes per block. */
static inline int pd_strong_ok(int kind, uint32_t strong_len)
{
    if (strong_len < PD_MIN_STRONG)
        return 0;
    if (kind == PD_STRONG_XXH3)
        return strong_len <= PD_XXH3_LEN;
    return kind == PD_STRONG_BLAKE3 && strong_len <= PD_MAX_STRONG;
}

/** The strong sum of kind (checked by pd_strong_ok) of data[0..len),
 * truncated to out_len bytes (<= PD_XXH3_LEN for XXH3). */
static inline void pd_strong(int kind, const uint8_t *data, size_t len,
                             uint8_t *out, size_t out_len)
{
    if (kind == PD_STRONG_XXH3) {
        uint8_t h[PD_XXH3_LEN];
        pd_xxh3_128(data, len, h);
        memcpy(out, h, out_len);
    } else {
        pd_blake3_hash(data, len, out, out_len);
    }
}

/** Continue the weak sum h of a window's first bytes over its next len
 * bytes (weaksum.c): pd_weak_more(pd_weak(a), b) == pd_weak(a || b), and
 * pd_weak(x) == pd_weak_more(0, x). */
uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len);

/** M^k mod 2^64. */
static inline uint64_t pd_weak_pow(uint64_t k)
{
    uint64_t r = 1, b = PD_WEAK_M;
    while (k) {
        if (k & 1)
            r *= b;
        b *= b;
        k >>= 1;
    }
    return r;
}

/** Fill out[c] = c * M^n for rolling a window of n bytes. */
static inline void pd_weak_out_table(uint64_t n, uint64_t out[256])
{
    uint64_t mn = pd_weak_pow(n);
    for (int c = 0; c < 256; c++)
        out[c] = (uint64_t)c * mn;
}

/** Roll the window one byte: drop c_out, take c_in. */
static inline uint64_t pd_weak_roll(uint64_t h, uint8_t c_out, uint8_t c_in,
                                    const uint64_t out_tab[256])
{
    return h * PD_WEAK_M + ((uint64_t)c_in - out_tab[c_out]);
}

/* ---- the weak-sum index (sigtable.c), shared with rs_job.c -------------
 *
 * Both signature tables (native here, librsync's in rs_job.c) find blocks
 * by a weak sum that the signature's author chooses freely, so the index
 * must not degrade on chosen sums (hash flooding):
 *
 *   - Distinct blocks (same weak and strong sum kept once, lowest index
 *     winning) are sorted by (weak, strong bytes, index); the blocks
 *     sharing one weak sum form a run, and at most PD_MAX_CANDIDATES of a
 *     run (its first ones in that order) are ever tried. This order is a
 *     property of the signature alone, so which block a window matches
 *     never depends on the index layout or its key (the numba twin
 *     reproduces it), and a basis of identical or weak-colliding blocks
 *     costs a bounded number of strong compares per position.
 *   - The runs are grouped into 2^k buckets (k such that there are about
 *     as many buckets as runs) by a keyed mix of the weak sum: the key is
 *     random per process, so an author who does not know it cannot aim
 *     sums at one bucket, and a lookup costs O(1) expected whatever the
 *     sums are. Inside a bucket the runs are sorted by weak sum, and a
 *     large bucket is binary-searched: even an author who learnt the key
 *     gets O(log n) lookups and an O(n) build, never the quadratic time of
 *     linear probing on an unkeyed slot function.
 *   - A Bloom-style bit set in front answers most misses with one load.
 */

/** At most this many distinct blocks sharing one weak sum are tried. */
#define PD_MAX_CANDIDATES 16
/** A bucket larger than this is binary-searched before a linear scan. */
#define PD_BUCKET_SCAN 8

/** The distinct blocks that share one weak sum. */
typedef struct {
    uint64_t weak;  /* the weak sum */
    uint64_t first; /* index of the first block of the run in uidx */
    uint64_t count; /* blocks of the run to try, <= PD_MAX_CANDIDATES */
} pd_wrun;

/** One block while the index is built (the caller fills weak, idx and
 * strong; the build sorts and deduplicates them in place). */
typedef struct {
    uint64_t weak;
    uint64_t idx;
    const uint8_t *strong;
    uint32_t slen;
} pd_witem;

typedef struct {
    uint64_t nuniq;        /* distinct blocks */
    uint64_t *uidx;        /* [nuniq] block indexes by (weak, strong, index) */
    uint64_t nruns;        /* distinct weak sums */
    pd_wrun *runs;         /* [nruns] by bucket, then weak sum */
    uint64_t *bucket;      /* [2^k + 1] first run of every bucket */
    unsigned bucket_shift; /* 64 - k */
    uint64_t key0, key1;   /* the key of the bucket mix */
    uint64_t *bloom;       /* pre-filter bit set over the weak sums */
    unsigned bloom_shift;  /* 64 - log2(bloom bits) */
    uint64_t *sieve;       /* one bit a sum, its top bits (prescan.c) */
    unsigned sieve_shift;  /* 64 - log2(sieve bits): <= 2^24 bits */
} pd_windex;

/** Build the index over items[0..n) (reordered). Returns PD_OK or
 * PD_ERR_NOMEM; pd_windex_free releases it either way. */
int pd_windex_build(pd_windex *x, pd_witem *items, uint64_t n);
void pd_windex_free(pd_windex *x);

/** The keyed bucket mix: xor-shift-multiply rounds with the key injected
 * before each (a bijection of 64 bits; not a cryptographic PRF, which the
 * binary search makes unnecessary for the worst case). */
static inline uint64_t pd_windex_mix(uint64_t h, uint64_t k0, uint64_t k1)
{
    uint64_t x = h ^ k0;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= k1;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 32;
    return x;
}

/** The pre-filter is blocked: a weak sum selects one 64-bit word (by the
 * top bits of a multiplicative mix) and sets two bits in it (by middle
 * bits), so a test is still one load but a false hit needs both bits:
 * about 0.1% of misses at the 64 bits per weak sum the build allots,
 * where one bit gave 1.5% (each false hit costs an index lookup). */
static inline uint64_t pd_bloom_word(const pd_windex *x, uint64_t m)
{
    return m >> (x->bloom_shift + 6);
}

static inline uint64_t pd_bloom_mask(uint64_t m)
{
    return (1ULL << ((m >> 26) & 63)) | (1ULL << ((m >> 32) & 63));
}

static inline uint64_t pd_bloom_mix(uint64_t h)
{
    return h * 0xD6E8FEB86659FD93ULL;
}

/** Test the pre-filter: 0 means h is surely not in the index. */
static inline int pd_bloom_test(const pd_windex *x, uint64_t h)
{
    uint64_t m = pd_bloom_mix(h), k = pd_bloom_mask(m);
    return (x->bloom[pd_bloom_word(x, m)] & k) == k;
}

/** The cheaper first test of the pre-scan: one bit, from h's top bits
 * unmixed (about 1.5% false hits at 64 bits a sum, against the bloom
 * filter's 0.1%, for a third of the instructions): 0 means surely not in
 * the index. At most 2 MiB: past 2^18 sums it lets more through. */
static inline uint64_t pd_sieve_test(const pd_windex *x, uint64_t h)
{
    uint64_t b = h >> x->sieve_shift;
    return (x->sieve[b >> 6] >> (b & 63)) & 1;
}

/** The run of weak sum h, or NULL. */
static inline const pd_wrun *pd_windex_find(const pd_windex *x, uint64_t h)
{
    uint64_t b = pd_windex_mix(h, x->key0, x->key1) >> x->bucket_shift;
    uint64_t lo = x->bucket[b], hi = x->bucket[b + 1];
    const pd_wrun *r = x->runs;
    /* Narrow a large bucket to where h would be (runs sorted by weak). */
    while (hi - lo > PD_BUCKET_SCAN) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (r[mid].weak < h)
            lo = mid + 1;
        else
            hi = mid + 1;
    }
    for (; lo < hi; lo++)
        if (r[lo].weak == h)
            return &r[lo];
    return NULL;
}

/** The first block of run r whose strong sum (strong_len bytes, block b at
 * strong + b * strong_len) equals sh, or -1. */
static inline int64_t pd_windex_pick(const pd_windex *x, const pd_wrun *r,
                                     const uint8_t *sh, const uint8_t *strong,
                                     uint32_t strong_len)
{
    for (uint64_t k = 0; k < r->count; k++) {
        uint64_t b = x->uidx[r->first + k];
        if (!memcmp(sh, strong + b * strong_len, strong_len))
            return (int64_t)b;
    }
    return -1;
}

/** The native signature table: per-block sums in block order (for the
 * continuation checks of the delta scan) plus the weak-sum index over the
 * distinct full blocks.
 *
 * Only full-length blocks are indexed for the rolling search; a shorter
 * final block (the tail) is matched only as the continuation of a copy
 * that reaches it, which is where it sits in a file that was appended to
 * or left unchanged. */
struct pd_sigtable {
    uint64_t nblocks;    /* entries, including a tail block */
    uint64_t nfull;      /* entries of exactly block_len bytes */
    uint64_t basis_size; /* bytes of the basis */
    uint32_t block_len;
    uint32_t strong_len;
    int strong_kind;       /* PD_STRONG_*: what strong holds */
    uint32_t tail_len;     /* bytes of the last block if short, else 0 */
    uint64_t *weak;        /* [nblocks] weak sum of each block */
    uint8_t *strong;       /* [nblocks * strong_len] */
    pd_windex ix;          /* over the distinct full blocks */
    uint64_t out_tab[256]; /* c * M^block_len, for rolling */
};

/** Find a block matching data[0..block_len) given its weak sum h; the
 * strong hash of data is computed at most once into sh (flag *have_sh).
 * Returns the block index or -1. */
int64_t pd_sigtable_match(const struct pd_sigtable *t, uint64_t h,
                          const uint8_t *data, uint8_t sh[PD_HASH_LEN],
                          int *have_sh);

/* ---- the delta op writer (scan.c), shared by delta.c and rs_job.c ---- */

/** Op encodings of pd_ops. */
enum {
    PD_OPS_NATIVE,
    PD_OPS_RDIFF
};

/** A COPY being extended and literal bytes carried between scan calls. */
typedef struct {
    int fmt;          /* PD_OPS_NATIVE or PD_OPS_RDIFF */
    int copy_pending; /* a COPY is being extended */
    uint64_t copy_off, copy_len;
    uint8_t *lit;             /* [PD_LIT_MAX] literal bytes carried over */
    size_t lit_len;           /* < PD_LIT_MAX between calls */
    uint64_t copied, literal; /* bytes sent as COPY / LITERAL so far */
} pd_ops;

/** Set up a writer of fmt ops: PD_OK or PD_ERR_NOMEM. */
int pd_ops_init(pd_ops *w, int fmt);
void pd_ops_free(pd_ops *w);
/** Emit the pending COPY, if any; returns the bytes written to out. */
size_t pd_ops_flush_copy(pd_ops *w, uint8_t *out);
/** Emit one LITERAL of the carried bytes followed by src[0..len). */
size_t pd_ops_literal(pd_ops *w, uint8_t *out, const uint8_t *src, size_t len);
/** Record a match of len bytes at offset off of the basis: extends the
 * pending COPY if contiguous, else emits it and starts a new one. */
size_t pd_ops_copy(pd_ops *w, uint8_t *out, uint64_t off, uint64_t len);
/** Keep src[0..len) as literal bytes for the next call. */
void pd_ops_carry(pd_ops *w, const uint8_t *src, size_t len);

/** What the next pass of a delta scan loop may do (delta.c, rs_job.c):
 * PD_NEED_OUTPUT if out has less room than one pass can write (one COPY
 * and one full LITERAL), PD_NEED_INPUT if less than a block of input is
 * left before its end, PD_DONE once all input is used, else PD_OK. */
static inline int pd_scan_pass(size_t out_room, size_t avail, size_t bl,
                               int eof)
{
    if (out_room < PD_LIT_MAX + 64)
        return PD_NEED_OUTPUT;
    if (avail < bl && !eof)
        return PD_NEED_INPUT;
    return avail ? PD_OK : PD_DONE;
}

/* ---- patching: basis reads and op steps (patch.c, rs_job.c)
 * ---------------------------------- */

/** Read exactly len bytes at off from fd into dst (pread, EINTR retried).
 * Returns PD_OK, or PD_ERR_IO with *err_no set to errno (0 if the file
 * ended early). */
int pd_read_basis(int fd, uint8_t *dst, size_t len, uint64_t off, int *err_no);

/** States of a patch job. */
enum {
    PD_ST_OP,      /* next: an op header */
    PD_ST_COPY,    /* in a COPY: rem bytes from the basis at off */
    PD_ST_LITERAL, /* in a LITERAL: rem bytes from the input */
    PD_ST_DONE     /* END was read */
};

typedef struct pd_patcher pd_patcher;

/** A format's op parser: read one op header at in[0..avail) into the
 * patcher (state, off, rem). Returns the bytes used, 0 if the header is
 * incomplete, or a negative pd_result. */
typedef long (*pd_op_parser)(pd_patcher *p, const uint8_t *in, size_t avail);

/** The patch job both formats share (patch.c): the first member of struct
 * pd_patch and struct pd_rs_patch, so their parsers reach the rest. The op
 * loop, the basis reads and the output hash are the same for both; only
 * the op encoding differs. */
struct pd_patcher {
    pd_op_parser parse;
    int fd;            /* the basis */
    int counting;      /* only decode: COPYs read nothing, LITERALs skip */
    uint64_t old_size; /* bytes of the basis a COPY may reach */
    int state;         /* PD_ST_* */
    uint64_t off, rem; /* COPY source / bytes left in the op */
    pd_blake3 *hasher; /* of the output; NULL when counting */
    uint64_t produced; /* output bytes so far */
    int err_no;        /* errno of the last PD_ERR_IO */
    pd_sink *sink;     /* direct output (copy.c), or NULL: output to out */
};

/** Run the job over in[0..in_len) into out[0..out_cap): the calling
 * convention of pd_patch_step. */
/** Direct output (copy.c): write len bytes / copy len bytes of the basis
 * at off to the sink. PD_OK or PD_ERR_IO (a basis read error sets
 * *err_no, a write error the sink's errno). */
int pd_sink_write(pd_sink *s, const uint8_t *buf, size_t len);
int pd_sink_copy(pd_sink *s, int basis_fd, uint64_t off, uint64_t len,
                 int *err_no);

int pd_patcher_step(pd_patcher *p, const uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_cap, size_t *in_used,
                    size_t *out_used);

/** mapguard.c: fn(arg) under the SIGBUS guard of this thread. PD_OK;
 * PD_ERR_IO if a mapping it read lost a page (fn was left midway: it must
 * allocate nothing, take no lock and start no thread); PD_ERR_PARAM if the
 * guard cannot be installed (fn did not run). */
int pd_map_call(void (*fn)(void *), void *arg);
/** blake3.c: pd_blake3_update_par over a mapping that may lose pages: each
 * thread guards its own reads. PD_OK, or PD_ERR_IO / PD_ERR_PARAM as
 * pd_map_call (the hasher is then unusable). */
int pd_blake3_update_par_mapped(pd_blake3 *h, const uint8_t *data,
                                size_t len, unsigned threads);

#endif
