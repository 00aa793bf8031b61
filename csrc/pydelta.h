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
    PD_OK = 0,            /* call succeeded */
    PD_NEED_INPUT = 1,    /* used what it could; call again with more input */
    PD_NEED_OUTPUT = 2,   /* output buffer too full; drain it, call again */
    PD_DONE = 3,          /* the stream is complete */
    PD_ERR_CORRUPT = -1,  /* malformed input: bad opcode, varint, zero op */
    PD_ERR_BOUNDS = -2,   /* an offset or length reaches outside the basis */
    PD_ERR_IO = -3,       /* reading the basis failed or came up short */
    PD_ERR_NOMEM = -4,    /* out of memory */
    PD_ERR_PARAM = -5,    /* invalid parameter from the caller */
    PD_ERR_SIGNATURE = -6 /* signature entries inconsistent with sizes */
} pd_result;

/** Sizes and limits shared with the Python layer. */
enum {
    PD_HASH_LEN = 32,          /* BLAKE3 digest length we store */
    PD_MIN_STRONG = 8,         /* shortest strong hash in a signature */
    PD_MAX_STRONG = 32,        /* longest strong hash in a signature */
    PD_WEAK_LEN = 8,           /* weak sum bytes per signature entry */
    PD_LIT_MAX = 262144,       /* longest LITERAL op the delta writer emits */
    PD_DELTA_MIN_OUT = 262400, /* smallest output buffer for pd_delta_scan */
    PD_TRAILER_LEN = 40,       /* bytes after the END opcode in a delta */
    PD_OP_COPY = 67,           /* 'C' varint offset, varint length */
    PD_OP_LITERAL = 76,        /* 'L' varint length, then the bytes */
    PD_OP_END = 69             /* 'E' u64le result size, 32-byte digest */
};

/* ---- BLAKE3 (blake3.c) ------------------------------------------------ */

typedef struct pd_blake3 pd_blake3;

pd_blake3 *pd_blake3_new(void);
pd_blake3 *pd_blake3_copy(const pd_blake3 *h);
void pd_blake3_free(pd_blake3 *h);
void pd_blake3_reset(pd_blake3 *h);
void pd_blake3_update(pd_blake3 *h, const uint8_t *data, size_t len);
/* pd_blake3_update with the whole 1 MiB subtrees of data hashed on up to
 * `threads` threads (the calling one among them): the same state, so the
 * same digest, for any length and thread count. */
void pd_blake3_update_par(pd_blake3 *h, const uint8_t *data, size_t len,
                          unsigned threads);
/* Extendable output: any out_len; does not change the state. */
void pd_blake3_final(const pd_blake3 *h, uint8_t *out, size_t out_len);
/* One-shot hash of data into out_len bytes. */
void pd_blake3_hash(const uint8_t *data, size_t len, uint8_t *out,
                    size_t out_len);
/* Name of the implementation in use: "portable", "sse41", "avx2" or
 * "avx512" (best the CPU supports; PYDELTA_BLAKE3_SIMD may lower it). */
const char *pd_blake3_impl(void);

/* ---- XXH3-128 (xxh3.c) ------------------------------------------------ */

/** The per-block strong sums of a native signature (its header's strong
 * hash id; docs/FORMAT.md). */
enum {
    PD_STRONG_BLAKE3 = 1, /* BLAKE3, strong_len 8..32 */
    PD_STRONG_XXH3 = 2,   /* XXH3-128, strong_len 8..16 */
    PD_XXH3_LEN = 16      /* XXH3-128 digest length */
};

/* XXH3-128 of data (unseeded, default secret) in xxHash's canonical form:
 * the high 64 bits, then the low 64 bits, each big-endian. */
void pd_xxh3_128(const uint8_t *data, size_t len, uint8_t *out);

/* ---- weak rolling checksum (weaksum.c) -------------------------------- */

/* The weak sum of one window of len bytes. */
uint64_t pd_weak(const uint8_t *data, size_t len);
/* Continue the weak sum h of a window's first bytes over its next len. */
uint64_t pd_weak_more(uint64_t h, const uint8_t *data, size_t len);
/* The whole-window kernel in use: "avx2" or "portable" (PYDELTA_WEAK_SIMD=portable forces it). */
const char *pd_weak_impl(void);
/* Rolling weak sums of every window of `window` bytes in data: writes
 * len - window + 1 values to out (nothing if len < window); returns the
 * count. Used by tests to check rolling against pd_weak. */
size_t pd_weak_rolling(const uint8_t *data, size_t len, size_t window,
                       uint64_t *out);

/* ---- signature (signature.c) ------------------------------------------ */

/* Hash the blocks of buf: every block_len bytes (the last block may be
 * shorter) becomes one entry of PD_WEAK_LEN + strong_len bytes (weak sum as
 * u64 little-endian, then the block's strong sum of kind strong_kind,
 * PD_STRONG_*, truncated to strong_len) written to out. Returns the number
 * of entries, or 0 on bad parameters. */
size_t pd_sig_blocks(const uint8_t *buf, size_t len, uint32_t block_len,
                     uint32_t strong_len, int strong_kind, uint8_t *out);

/* ---- signature of a file range, read in small pieces (sigread.c) ------ */

/* The entries pd_sig_blocks makes (strong sums of kind strong_kind) over
 * bytes [offset, offset + len) of the regular file fd, read with pread in pieces of buf_cap bytes into buf
 * (the caller's, a whole number of blocks: small enough to stay in the CPU
 * cache), each piece hashed as soon as it is read. out has room for
 * ceil(len / block_len) entries; *got is the bytes read and hashed: fewer
 * than len only at end of file. Returns PD_OK, PD_ERR_PARAM, or PD_ERR_IO
 * with the errno in *err. */
int pd_sig_fd(int fd, uint64_t offset, uint64_t len, uint32_t block_len,
              uint32_t strong_len, int strong_kind, uint8_t *buf,
              size_t buf_cap, uint8_t *out, uint64_t *got, int *err);
/* The same for a librsync signature with that magic (pd_rs_sig_blocks'
 * entries: 4 + strong_len bytes each). */
int pd_rs_sig_fd(uint32_t magic, int fd, uint64_t offset, uint64_t len,
                 uint32_t block_len, uint32_t strong_len, uint8_t *buf,
                 size_t buf_cap, uint8_t *out, uint64_t *got, int *err);
/* Hash bytes [offset, offset + len) of the regular file fd into h, read
 * with pread in pieces of buf_cap bytes into buf (the caller's, small
 * enough to stay in the CPU cache). *got is the bytes hashed: fewer than
 * len only at end of file. PD_OK, PD_ERR_PARAM, or PD_ERR_IO with the
 * errno in *err. */
int pd_blake3_fd(pd_blake3 *h, int fd, uint64_t offset, uint64_t len,
                 uint8_t *buf, size_t buf_cap, uint64_t *got, int *err);

/* ---- signature table (sigtable.c) ------------------------------------- */

typedef struct pd_sigtable pd_sigtable;

/* Build the lookup table from nblocks serialized entries whose strong sums
 * are of kind strong_kind (PD_STRONG_*). basis_size must agree with
 * nblocks and block_len. On failure returns NULL and sets *err. */
pd_sigtable *pd_sigtable_new(const uint8_t *entries, uint64_t nblocks,
                             uint32_t block_len, uint32_t strong_len,
                             int strong_kind, uint64_t basis_size, int *err);
void pd_sigtable_free(pd_sigtable *t);
/* Index of a block whose weak and strong sums match data (block_len bytes),
 * or -1. For tests; the delta scan does this inline. */
int64_t pd_sigtable_find(const pd_sigtable *t, const uint8_t *data);
/* Number of distinct block contents kept in the table. */
uint64_t pd_sigtable_unique(const pd_sigtable *t);
/* Set the key of the weak-sum index for tables built from now on (both
 * formats). The key is drawn at random once per process, which is what
 * keeps chosen weak sums from piling up in one bucket; fixing it is for
 * tests. (0, 0) draws a fresh random key. Deltas never depend on the key. */
void pd_table_key(uint64_t k0, uint64_t k1);

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
/* The parallel pre-scan (prescan.c), for any thread: the windows of
 * buf[0..len) (block_len bytes each, wholly inside buf) starting in
 * [from, to) that have a candidate in the table's weak-sum index. Their
 * positions, plus base (buf's offset in NEW), go to hits (at most cap);
 * returns the count, and *done_to is the end (base-relative as hits) of
 * the range checked: every window before it and not in hits has none. */
size_t pd_delta_prescan(const pd_sigtable *t, const uint8_t *buf, size_t len,
                        size_t from, size_t to, uint64_t base, uint64_t *hits,
                        size_t cap, uint64_t *done_to);
/* Hand the job a pre-scan result: windows of NEW starting in [from, to)
 * have no candidate except at hits[0..n) (ascending, inside the range).
 * The scan then skips the others in literal runs; its output is the same.
 * Replaces the previous hint. PD_OK, PD_ERR_PARAM or PD_ERR_NOMEM. */
int pd_delta_hint(pd_delta *d, uint64_t from, uint64_t to,
                  const uint64_t *hits, size_t n);

/* ---- guarded kernels over a mapping that may shrink (mapguard.c) ------ */

/* pd_delta_scan, pd_blake3_update and pd_delta_prescan over a read-only
 * mapping of a file: a SIGBUS inside (the file was truncated under the
 * mapping) makes the call return PD_ERR_IO instead of killing the process;
 * the job or hasher is then unusable and must be freed. The first call
 * installs the process's SIGBUS handler, which passes any other SIGBUS on
 * to the handler that was there before. pd_map_guard installs it alone:
 * PD_OK, or PD_ERR_PARAM if it could not be installed. */
int pd_map_guard(void);
int pd_delta_scan_mapped(pd_delta *d, const uint8_t *in, size_t in_len,
                         int eof, uint8_t *out, size_t out_cap,
                         size_t *in_used, size_t *out_used);
int pd_blake3_update_mapped(pd_blake3 *h, const uint8_t *data, size_t len);
/* As pd_delta_prescan; the count goes to *count. */
int pd_delta_prescan_mapped(const pd_sigtable *t, const uint8_t *buf,
                            size_t len, size_t from, size_t to, uint64_t base,
                            uint64_t *hits, size_t cap, uint64_t *done_to,
                            size_t *count);
/* Statistics so far: NEW bytes read, bytes sent as COPY, as LITERAL. */
void pd_delta_stats(const pd_delta *d, uint64_t *new_size, uint64_t *copied,
                    uint64_t *literal);

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
int pd_patch_step(pd_patch *p, const uint8_t *in, size_t in_len, uint8_t *out,
                  size_t out_cap, size_t *in_used, size_t *out_used);
/* After PD_DONE: the size and digest the trailer expects, and the size and
 * digest of what was produced. */
void pd_patch_result(const pd_patch *p, uint64_t *expect_size,
                     uint8_t *expect_digest, uint64_t *got_size,
                     uint8_t *got_digest);
/* errno of the last PD_ERR_IO. */
int pd_patch_errno(const pd_patch *p);

/* ---- direct patch output (copy.c) -------------------------------------- */

/* A sink writes a patch job's result straight to a regular file: COPY ops
 * through copy_file_range(2) (the read/write path where the kernel refuses
 * it), LITERAL bytes with pwrite(), starting at file offset `start`, while
 * a second thread hashes (BLAKE3) what was written, read back in order. */
typedef struct pd_sink pd_sink;

enum {
    PD_SINK_NO_CFR = 1,    /* never use copy_file_range (the fallback path) */
    PD_SINK_WRITEBACK = 2, /* start writeback as it goes (before an fsync) */
    PD_SINK_NO_THREAD = 4, /* hash on the writing thread */
    PD_SINK_NO_MAP = 8     /* read the output back with pread, not a mapping */
};

/* NULL on a bad descriptor or no memory. */
pd_sink *pd_sink_new(int out_fd, uint64_t start, int flags);
void pd_sink_free(pd_sink *s);
/* Route a job's output to the sink (it must outlive the job's steps); the
 * job's steps then report in *out_used the bytes written to the file, and
 * `out` is only staging room for literal bytes. */
void pd_patch_set_sink(pd_patch *p, pd_sink *s);
/* After the last step: bytes written and their BLAKE3 (waits for the
 * hasher). PD_OK, or PD_ERR_IO if a write or the read-back failed. */
int pd_sink_finish(pd_sink *s, uint64_t *size, uint8_t *digest);
/* Also make the block signature of the result from the same read-back:
 * the entries pd_sig_blocks would make over the whole result (weak sum
 * and strong sum of kind strong_kind truncated to strong_len of every
 * block_len bytes, the last block short), into a buffer grown as they come, at most limit bytes
 * (past it signing stops: no signature; the patch goes on). own_thread:
 * read back on a thread of its own (else on the digest's). Call before the
 * first write. PD_OK, PD_ERR_PARAM or PD_ERR_NOMEM. */
int pd_sink_sign(pd_sink *s, uint32_t block_len, uint32_t strong_len,
                 int strong_kind, size_t limit, int own_thread);
/* Hash the digest on up to `threads` threads (tree-parallel, the same
 * digest); default 1. Call before the first write. PD_OK or PD_ERR_PARAM. */
int pd_sink_hash_threads(pd_sink *s, unsigned threads);
/* After pd_sink_finish: the signature entries (*len bytes), or NULL when
 * not asked, past the limit, or a write or read-back failed. Valid until
 * pd_sink_free. */
const uint8_t *pd_sink_sig(const pd_sink *s, size_t *len);
/* errno of the failure; whether it was a write (else the read-back); and
 * bytes the kernel copied (0 once on the fallback path from the start). */
int pd_sink_errno(const pd_sink *s);
int pd_sink_write_failed(const pd_sink *s);
uint64_t pd_sink_kernel_copied(const pd_sink *s);

/* ---- librsync (rdiff) interop (rs_hash.c, rs_sums.c, rs_job.c) -------- */

/* Files in librsync's formats, byte for byte (docs/librsync-format.md):
 * big-endian, a 4-byte magic, signatures of u32 weak sum + truncated
 * strong sum per block, deltas of one-byte opcodes with big-endian
 * parameters. These jobs follow the same resumable pattern as the native
 * ones above and return the same pd_result codes. */
enum {
    PD_RS_DELTA_MAGIC = 0x72730236,
    PD_RS_MD4_MAGIC = 0x72730136,       /* rollsum + MD4 (legacy) */
    PD_RS_BLAKE2_MAGIC = 0x72730137,    /* rollsum + BLAKE2b */
    PD_RS_RK_MD4_MAGIC = 0x72730146,    /* RabinKarp + MD4 */
    PD_RS_RK_BLAKE2_MAGIC = 0x72730147, /* RabinKarp + BLAKE2b (rdiff 2.3) */
    PD_RS_WEAK_ROLLSUM = 0,
    PD_RS_WEAK_RABINKARP = 1,
    PD_RS_STRONG_MD4 = 0,
    PD_RS_STRONG_BLAKE2 = 1,
    PD_RS_BLAKE2_LEN = 32, /* BLAKE2b digest length librsync uses */
    PD_RS_MD4_LEN = 16,
    PD_RS_OP_END = 0,            /* 0x01..0x40: literal of that length */
    PD_RS_OP_LITERAL_N1 = 65,    /* 0x41..0x44: literal, u8..u64 length */
    PD_RS_OP_COPY_BASE = 69,     /* 0x45..0x54: copy, offset/length widths */
    PD_RS_LIT_MAX = 262144,      /* longest literal the delta writer emits */
    PD_RS_DELTA_MIN_OUT = 262400 /* smallest output buffer for the scan */
};

/* BLAKE2b of data, digest length out_len (1..64), unkeyed. */
void pd_rs_blake2b(const uint8_t *data, size_t len, uint8_t *out,
                   size_t out_len);
/* BLAKE2b-256 of n inputs of len bytes at data + i * stride (SIMD lanes
 * where the CPU has them); digest i to out + 32 * i. Returns n. */
size_t pd_rs_blake2b_many(const uint8_t *data, size_t stride, size_t n,
                          size_t len, uint8_t *out);
/* MD4 of data (16 bytes to out). */
void pd_rs_md4(const uint8_t *data, size_t len, uint8_t *out);
/* The BLAKE2b kernels in use: "portable", "avx2" or "avx512" (best the CPU
 * has; PYDELTA_RS_SIMD may lower it). pd_rs_set_impl switches to a named
 * one; returns 1 if it is now in use, 0 if unknown or unsupported. */
const char *pd_rs_impl(void);
int pd_rs_set_impl(const char *name);

/* Weak sum (PD_RS_WEAK_*) of one window. */
uint32_t pd_rs_weak(int kind, const uint8_t *data, size_t len);
/* Rolling weak sums of every window of `window` bytes: writes
 * len - window + 1 values to out; returns the count (0 if window is 0 or
 * longer than len). For tests. */
size_t pd_rs_weak_rolling(int kind, const uint8_t *data, size_t len,
                          size_t window, uint32_t *out);

/* Signature entries of buf: one per block_len bytes (the last may be
 * short), 4 + strong_len bytes each, for a signature with that magic.
 * Returns the number of entries, 0 on bad parameters. */
size_t pd_rs_sig_blocks(uint32_t magic, const uint8_t *buf, size_t len,
                        uint32_t block_len, uint32_t strong_len, uint8_t *out);

typedef struct pd_rs_sigtable pd_rs_sigtable;

/* The lookup table of nblocks entries (the body of a signature). On
 * failure returns NULL and sets *err. */
pd_rs_sigtable *pd_rs_sigtable_new(uint32_t magic, const uint8_t *entries,
                                   uint64_t nblocks, uint32_t block_len,
                                   uint32_t strong_len, int *err);
void pd_rs_sigtable_free(pd_rs_sigtable *t);
/* Index of a block matching data (block_len bytes), or -1. For tests. */
int64_t pd_rs_sigtable_find(const pd_rs_sigtable *t, const uint8_t *data);
/* Number of distinct blocks in the table. */
uint64_t pd_rs_sigtable_unique(const pd_rs_sigtable *t);

typedef struct pd_rs_delta pd_rs_delta;

/* A librsync delta job (commands after the magic, through END) over a
 * table that must outlive it. Same calling convention as pd_delta_scan;
 * out_cap >= PD_RS_DELTA_MIN_OUT. */
pd_rs_delta *pd_rs_delta_new(const pd_rs_sigtable *t);
void pd_rs_delta_free(pd_rs_delta *d);
int pd_rs_delta_scan(pd_rs_delta *d, const uint8_t *in, size_t in_len, int eof,
                     uint8_t *out, size_t out_cap, size_t *in_used,
                     size_t *out_used);
/* pd_rs_delta_scan over a mapping that may shrink (mapguard.c): a SIGBUS
 * inside returns PD_ERR_IO, as pd_delta_scan_mapped. */
int pd_rs_delta_scan_mapped(pd_rs_delta *d, const uint8_t *in, size_t in_len,
                            int eof, uint8_t *out, size_t out_cap,
                            size_t *in_used, size_t *out_used);
void pd_rs_delta_stats(const pd_rs_delta *d, uint64_t *new_size,
                       uint64_t *copied, uint64_t *literal);

typedef struct pd_rs_patch pd_rs_patch;

/* A job applying librsync delta commands (everything after the magic),
 * reading the basis of old_size bytes through pread() on old_fd. With
 * old_fd < 0 it only decodes and counts the commands (no output). Same
 * calling convention as pd_patch_step; PD_DONE once END is read. */
pd_rs_patch *pd_rs_patch_new(int old_fd, uint64_t old_size);
void pd_rs_patch_free(pd_rs_patch *p);
int pd_rs_patch_step(pd_rs_patch *p, const uint8_t *in, size_t in_len,
                     uint8_t *out, size_t out_cap, size_t *in_used,
                     size_t *out_used);
/* Commands decoded so far, and the BLAKE3 digest of the output (zeros when
 * only counting). */
void pd_rs_patch_stats(const pd_rs_patch *p, uint64_t *result_size,
                       uint64_t *copies, uint64_t *copied, uint64_t *literals,
                       uint64_t *literal, uint8_t *digest);
/* errno of the last PD_ERR_IO (0: the basis ended early). */
int pd_rs_patch_errno(const pd_rs_patch *p);
/* Direct output for a librsync patch (see pd_sink above). */
void pd_rs_patch_set_sink(pd_rs_patch *p, pd_sink *s);

/* ---- content-defined chunking for the model store (cdc.c) ------------- */

/* Cut points by a gear hash with FastCDC-style normalisation (see cdc.c for
 * the exact rule and the fixed gear table), and the BLAKE3 of each chunk.
 * Streaming: the chunks are the same whatever sizes the input comes in. */
enum {
    PD_CDC_MIN_MIN = 64,          /* smallest allowed min_size */
    PD_CDC_MIN_AVG = 256,         /* smallest allowed avg_size (a power of 2) */
    PD_CDC_MAX_MAX = 1073741824   /* largest allowed max_size (1 GiB) */
};

typedef struct pd_cdc pd_cdc;

/* PD_OK if min <= avg <= max are valid chunker sizes (avg a power of two,
 * min >= PD_CDC_MIN_MIN, max <= PD_CDC_MAX_MAX), else PD_ERR_PARAM. */
int pd_cdc_check(uint64_t min_size, uint64_t avg_size, uint64_t max_size);
/* A chunker job; NULL on invalid sizes or no memory. */
pd_cdc *pd_cdc_new(uint64_t min_size, uint64_t avg_size, uint64_t max_size);
void pd_cdc_free(pd_cdc *c);
/* Start a new stream (a new file). */
void pd_cdc_reset(pd_cdc *c);
/* Scan in[0, in_len); eof says nothing follows. For each chunk that ends,
 * writes its length to lens[i] and its BLAKE3 (PD_HASH_LEN bytes) to
 * digests + PD_HASH_LEN * i, at most cap chunks; *count is how many.
 * Returns PD_NEED_INPUT (all of in used, no eof), PD_NEED_OUTPUT (cap
 * chunks written: pass in + *in_used again), PD_DONE (eof: the last chunk
 * emitted; reset before the next stream). An empty stream has no chunks. */
int pd_cdc_scan(pd_cdc *c, const uint8_t *in, size_t in_len, int eof,
                uint64_t *lens, uint8_t *digests, size_t cap,
                size_t *in_used, size_t *count);
/* The 256 entries of the gear table (splitmix64 seeded with 0). */
void pd_cdc_gear(uint64_t *out);

/* ---- byte grouping of compressed literals (transform.c) --------------- */

/* dst[0, n) = the bytes of src[0, n) at even offsets, then those at odd
 * offsets; pd_ungroup16 undoes it. src and dst must not overlap. */
void pd_group16(const uint8_t *src, size_t n, uint8_t *dst);
void pd_ungroup16(const uint8_t *src, size_t n, uint8_t *dst);

/* Order-0 entropy estimates of a sample of buf[0, n) for choosing a
 * literal's transform, in bits * 2^16: costs[0] of the bytes as they are,
 * costs[1] of the two streams of transform 2 (even offsets, odd offsets).
 * The sample: the first PD_LIT_COSTS_LINE bytes of every
 * PD_LIT_COSTS_STRIDE * PD_LIT_COSTS_LINE, within the first
 * PD_LIT_COSTS_MAX bytes. Integer arithmetic only (the same everywhere). */
enum {
    PD_LIT_COSTS_MAX = 1073741824,
    PD_LIT_COSTS_LINE = 64,
    PD_LIT_COSTS_STRIDE = 4
};
void pd_lit_costs(const uint8_t *buf, size_t n, uint64_t costs[2]);
