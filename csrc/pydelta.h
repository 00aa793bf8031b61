/** \file pydelta.h
 * The public C API of the pydelta core, and also the cffi cdef.
 *
 * The core is pure C with no Python in it and no file I/O of its own
 * except pread() on the basis during patching. Every operation that streams
 * is a job driven by repeated calls over caller-owned buffers (input,
 * output), returning PD_NEED_INPUT, PD_NEED_OUTPUT, PD_DONE or an error, so
 * the caller can feed it from files, pipes or sockets in any chunking and
 * the output does not depend on that chunking.
 *
 * This header is read verbatim by cffi (csrc/build_ffi.py), so it holds no
 * preprocessor lines and integer constants are enums.
 */

/** Result codes of every job call. Negative values are errors. */
typedef enum {
    PD_OK = 0,              /* call succeeded */
    PD_NEED_INPUT = 1,      /* used what it could; call again with more input */
    PD_NEED_OUTPUT = 2,     /* output buffer too full; drain it, call again */
    PD_DONE = 3,            /* the stream is complete */
    PD_ERR_CORRUPT = -1,    /* malformed input: bad opcode, varint, zero op */
    PD_ERR_BOUNDS = -2,     /* an offset or length reaches outside the basis */
    PD_ERR_IO = -3,         /* reading the basis failed or came up short */
    PD_ERR_NOMEM = -4,      /* out of memory */
    PD_ERR_PARAM = -5,      /* invalid parameter from the caller */
    PD_ERR_SIGNATURE = -6   /* signature entries inconsistent with sizes */
} pd_result;

/** Sizes and limits shared with the Python layer. */
enum {
    PD_HASH_LEN = 32,           /* BLAKE3 digest length we store */
    PD_MIN_STRONG = 8,          /* shortest strong hash in a signature */
    PD_MAX_STRONG = 32,         /* longest strong hash in a signature */
    PD_WEAK_LEN = 8,            /* weak sum bytes per signature entry */
    PD_LIT_MAX = 262144,        /* longest LITERAL op the delta writer emits */
    PD_DELTA_MIN_OUT = 262400,  /* smallest output buffer for pd_delta_scan */
    PD_TRAILER_LEN = 40,        /* bytes after the END opcode in a delta */
    PD_OP_COPY = 67,            /* 'C' varint offset, varint length */
    PD_OP_LITERAL = 76,         /* 'L' varint length, then the bytes */
    PD_OP_END = 69              /* 'E' u64le result size, 32-byte digest */
};

/* ---- BLAKE3 (blake3.c) ------------------------------------------------ */

typedef struct pd_blake3 pd_blake3;

pd_blake3 *pd_blake3_new(void);
pd_blake3 *pd_blake3_copy(const pd_blake3 *h);
void pd_blake3_free(pd_blake3 *h);
void pd_blake3_reset(pd_blake3 *h);
void pd_blake3_update(pd_blake3 *h, const uint8_t *data, size_t len);
/* Extendable output: any out_len; does not change the state. */
void pd_blake3_final(const pd_blake3 *h, uint8_t *out, size_t out_len);
/* One-shot hash of data into out_len bytes. */
void pd_blake3_hash(const uint8_t *data, size_t len, uint8_t *out,
                    size_t out_len);
/* Name of the implementation in use: "portable", "sse41", "avx2" or
 * "avx512" (best the CPU supports; PYDELTA_BLAKE3_SIMD may lower it). */
const char *pd_blake3_impl(void);

/* ---- weak rolling checksum (weaksum.c) -------------------------------- */

/* The weak sum of one window of len bytes. */
uint64_t pd_weak(const uint8_t *data, size_t len);
/* Rolling weak sums of every window of `window` bytes in data: writes
 * len - window + 1 values to out (nothing if len < window); returns the
 * count. Used by tests to check rolling against pd_weak. */
size_t pd_weak_rolling(const uint8_t *data, size_t len, size_t window,
                       uint64_t *out);

/* ---- signature (signature.c) ------------------------------------------ */

/* Hash the blocks of buf: every block_len bytes (the last block may be
 * shorter) becomes one entry of PD_WEAK_LEN + strong_len bytes (weak sum as
 * u64 little-endian, then the BLAKE3 of the block truncated to strong_len)
 * written to out. Returns the number of entries, or 0 on bad parameters. */
size_t pd_sig_blocks(const uint8_t *buf, size_t len, uint32_t block_len,
                     uint32_t strong_len, uint8_t *out);

/* ---- signature table (sigtable.c) ------------------------------------- */

typedef struct pd_sigtable pd_sigtable;

/* Build the lookup table from nblocks serialized entries. basis_size must
 * agree with nblocks and block_len. On failure returns NULL and sets *err. */
pd_sigtable *pd_sigtable_new(const uint8_t *entries, uint64_t nblocks,
                             uint32_t block_len, uint32_t strong_len,
                             uint64_t basis_size, int *err);
void pd_sigtable_free(pd_sigtable *t);
/* Index of a block whose weak and strong sums match data (block_len bytes),
 * or -1. For tests; the delta scan does this inline. */
int64_t pd_sigtable_find(const pd_sigtable *t, const uint8_t *data);
/* Number of distinct block contents kept in the table. */
uint64_t pd_sigtable_unique(const pd_sigtable *t);

/* ---- delta (delta.c) --------------------------------------------------- */

typedef struct pd_delta pd_delta;

/* A delta job over one signature table (which must outlive the job). */
pd_delta *pd_delta_new(const pd_sigtable *t);
void pd_delta_free(pd_delta *d);
/* Scan NEW. `in` holds the not-yet-used input, starting where the previous
 * call's *in_used stopped; eof says no more input follows `in`. Encoded ops
 * go to out (out_cap >= PD_DELTA_MIN_OUT). Returns PD_NEED_INPUT,
 * PD_NEED_OUTPUT or, once the END op and trailer are written, PD_DONE.
 * The bytes of `in` before *in_used are finished; the rest must be passed
 * again at the front of the next call. */
int pd_delta_scan(pd_delta *d, const uint8_t *in, size_t in_len, int eof,
                  uint8_t *out, size_t out_cap, size_t *in_used,
                  size_t *out_used);
/* Let the caller hash NEW (e.g. on another thread): the job then skips its
 * own hashing, and pd_delta_set_digest must give the BLAKE3 of all of NEW
 * before the call that finishes the delta (eof set). */
void pd_delta_hash_externally(pd_delta *d);
void pd_delta_set_digest(pd_delta *d, const uint8_t *digest);
/* Statistics so far: NEW bytes read, bytes sent as COPY, as LITERAL. */
void pd_delta_stats(const pd_delta *d, uint64_t *new_size,
                    uint64_t *copied, uint64_t *literal);

/* ---- patch (patch.c) --------------------------------------------------- */

typedef struct pd_patch pd_patch;

/* A patch job reading the basis through pread() on old_fd, which holds
 * old_size bytes. */
pd_patch *pd_patch_new(int old_fd, uint64_t old_size);
void pd_patch_free(pd_patch *p);
/* Apply delta ops (everything after the delta header). Produces result
 * bytes into out and hashes them. Returns PD_NEED_INPUT, PD_NEED_OUTPUT,
 * PD_DONE once the END op and its trailer are read (bytes of `in` after
 * *in_used are then not part of the delta), or an error. Unused input
 * must be passed again at the front of the next call. */
int pd_patch_step(pd_patch *p, const uint8_t *in, size_t in_len,
                  uint8_t *out, size_t out_cap, size_t *in_used,
                  size_t *out_used);
/* After PD_DONE: the size and digest the trailer expects, and the size and
 * digest of what was produced. */
void pd_patch_result(const pd_patch *p, uint64_t *expect_size,
                     uint8_t *expect_digest, uint64_t *got_size,
                     uint8_t *got_digest);
/* errno of the last PD_ERR_IO. */
int pd_patch_errno(const pd_patch *p);
