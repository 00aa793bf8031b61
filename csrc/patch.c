/** \file patch.c
 * Apply a delta: parse ops from the delta stream and produce the result.
 *
 * The basis is read with pread() at the offsets COPY ops name, so it is
 * never loaded whole; LITERAL bytes are copied straight from the caller's
 * input buffer. Every op is checked before it is acted on: a COPY must lie
 * inside the basis (checked without overflow), lengths must be non-zero
 * (a zero-length op could otherwise make a caller loop forever), varints
 * must be canonical and fit 64 bits, and an unknown opcode is corruption.
 * The result is hashed as it is produced so the caller can verify size and
 * digest against the END trailer before the output is published.
 *
 * An op header split across input buffers is left unused (the job returns
 * PD_NEED_INPUT with *in_used at the op start) and re-read whole next time;
 * an op's payload, once its header is read, may span any number of calls.
 *
 * The job itself (pd_patcher: op loop, basis reads, output hash) serves the
 * librsync patch of rs_job.c too, with that format's parser plugged in.
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

struct pd_patch {
    pd_patcher c; /* first: the shared job */
    uint64_t expect_size;
    uint8_t expect_digest[PD_HASH_LEN];
};

static long parse_op(pd_patcher *c, const uint8_t *in, size_t avail);

pd_patch *pd_patch_new(int old_fd, uint64_t old_size)
{
    pd_patch *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->c.parse = parse_op;
    p->c.fd = old_fd;
    p->c.old_size = old_size;
    p->c.state = PD_ST_OP;
    p->c.hasher = pd_blake3_new();
    if (!p->c.hasher) {
        free(p);
        return NULL;
    }
    return p;
}

void pd_patch_free(pd_patch *p)
{
    if (!p)
        return;
    pd_blake3_free(p->c.hasher);
    free(p);
}

void pd_patch_set_sink(pd_patch *p, pd_sink *s)
{
    p->c.sink = s;
}

int pd_patch_errno(const pd_patch *p)
{
    return p->c.err_no;
}

void pd_patch_result(const pd_patch *p, uint64_t *expect_size,
                     uint8_t *expect_digest, uint64_t *got_size,
                     uint8_t *got_digest)
{
    *expect_size = p->expect_size;
    memcpy(expect_digest, p->expect_digest, PD_HASH_LEN);
    *got_size = p->c.produced;
    pd_blake3_final(p->c.hasher, got_digest, PD_HASH_LEN);
}

/* Parse one op header at in[0..avail). Returns bytes used, 0 if incomplete,
 * or a negative pd_result. */
static long parse_op(pd_patcher *c, const uint8_t *in, size_t avail)
{
    pd_patch *p = (pd_patch *)c;
    if (avail == 0)
        return 0;
    uint8_t op = in[0];
    size_t n = 1;
    uint64_t a, b;
    int k;
    switch (op) {
    case PD_OP_COPY:
        k = pd_get_varint(in + n, avail - n, &a);
        if (k <= 0)
            return k < 0 ? PD_ERR_CORRUPT : 0;
        n += (size_t)k;
        k = pd_get_varint(in + n, avail - n, &b);
        if (k <= 0)
            return k < 0 ? PD_ERR_CORRUPT : 0;
        n += (size_t)k;
        if (b == 0)
            return PD_ERR_CORRUPT;
        if (a > c->old_size || b > c->old_size - a)
            return PD_ERR_BOUNDS;
        c->off = a;
        c->rem = b;
        c->state = PD_ST_COPY;
        return (long)n;
    case PD_OP_LITERAL:
        k = pd_get_varint(in + n, avail - n, &a);
        if (k <= 0)
            return k < 0 ? PD_ERR_CORRUPT : 0;
        n += (size_t)k;
        if (a == 0)
            return PD_ERR_CORRUPT;
        c->rem = a;
        c->state = PD_ST_LITERAL;
        return (long)n;
    case PD_OP_END:
        if (avail < 1 + PD_TRAILER_LEN)
            return 0;
        p->expect_size = pd_get_u64(in + 1);
        memcpy(p->expect_digest, in + 9, PD_HASH_LEN);
        c->state = PD_ST_DONE;
        return 1 + PD_TRAILER_LEN;
    default:
        return PD_ERR_CORRUPT;
    }
}

int pd_read_basis(int fd, uint8_t *dst, size_t len, uint64_t off, int *err_no)
{
    while (len) {
        ssize_t r = pread(fd, dst, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *err_no = errno;
            return PD_ERR_IO;
        }
        if (r == 0) {
            /* The basis is shorter than it was said to be. */
            *err_no = 0;
            return PD_ERR_IO;
        }
        dst += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return PD_OK;
}

static int patch_copy(int fd, uint64_t *off, uint64_t *rem, uint8_t *out,
                      size_t room, size_t *made, int *err_no)
{
    if (!room)
        return PD_NEED_OUTPUT;
    size_t k = *rem < room ? (size_t)*rem : room;
    int r = pd_read_basis(fd, out, k, *off, err_no);
    if (r != PD_OK)
        return r;
    *made = k;
    *off += k;
    *rem -= k;
    return PD_OK;
}

static int patch_literal(uint64_t *rem, const uint8_t *in, size_t avail,
                         uint8_t *out, size_t room, size_t *moved)
{
    if (!avail)
        return PD_NEED_INPUT;
    if (!room)
        return PD_NEED_OUTPUT;
    size_t k = *rem < room ? (size_t)*rem : room;
    if (k > avail)
        k = avail;
    memcpy(out, in, k);
    *moved = k;
    *rem -= k;
    return PD_OK;
}

/* Sink mode: write the staged literal bytes out[0..*staged). */
static int flush_staged(pd_patcher *p, const uint8_t *out, size_t *staged)
{
    int rc = *staged ? pd_sink_write(p->sink, out, *staged) : PD_OK;
    *staged = 0;
    return rc;
}

/* Sink mode: copy up to room bytes of the current COPY op to the sink. */
static int sink_copy(pd_patcher *p, size_t room, size_t *made)
{
    if (!room)
        return PD_NEED_OUTPUT;
    size_t k = p->rem < room ? (size_t)p->rem : room;
    int r = pd_sink_copy(p->sink, p->fd, p->off, k, &p->err_no);
    if (r != PD_OK)
        return r;
    *made = k;
    p->off += k;
    p->rem -= k;
    return PD_OK;
}

int pd_patcher_step(pd_patcher *p, const uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_cap, size_t *in_used,
                    size_t *out_used)
{
    /* o: bytes produced by this call. With a sink, literal bytes are
     * staged at out[0..staged) (staged <= o, so the room left for them,
     * out_cap - o, is always there) and written before each COPY. */
    size_t ip = 0, o = 0, staged = 0;
    int rc = PD_OK;
    pd_sink *sink = p->counting ? NULL : p->sink;

    while (rc == PD_OK) {
        size_t k = 0;
        switch (p->state) {
        case PD_ST_DONE:
            rc = PD_DONE;
            break;
        case PD_ST_OP: {
            long n = p->parse(p, in + ip, in_len - ip);
            if (n < 0)
                rc = (int)n;
            else if (n == 0)
                rc = PD_NEED_INPUT;
            else
                ip += (size_t)n;
            break;
        }
        case PD_ST_COPY:
            if (p->counting) {
                p->rem = 0;
            } else if (sink) {
                rc = flush_staged(p, out, &staged);
                if (rc == PD_OK)
                    rc = sink_copy(p, out_cap - o, &k);
            } else {
                rc = patch_copy(p->fd, &p->off, &p->rem, out + o, out_cap - o,
                                &k, &p->err_no);
            }
            o += k;
            if (!p->rem)
                p->state = PD_ST_OP;
            break;
        case PD_ST_LITERAL:
            if (p->counting && in_len > ip) {
                /* skip the bytes: nothing is produced */
                k = p->rem < in_len - ip ? (size_t)p->rem : in_len - ip;
                p->rem -= k;
                ip += k;
            } else {
                size_t at = sink ? staged : o;
                rc = patch_literal(&p->rem, in + ip, in_len - ip, out + at,
                                   out_cap - o, &k);
                ip += k;
                o += k;
                if (sink)
                    staged += k;
            }
            if (!p->rem)
                p->state = PD_ST_OP;
            break;
        }
    }
    if (sink) {
        int wr = flush_staged(p, out, &staged);
        if (wr != PD_OK && rc >= 0)
            rc = wr;
    } else if (p->hasher && o) {
        pd_blake3_update(p->hasher, out, o);
    }
    p->produced += o;
    *in_used = ip;
    *out_used = o;
    return rc;
}

int pd_patch_step(pd_patch *p, const uint8_t *in, size_t in_len, uint8_t *out,
                  size_t out_cap, size_t *in_used, size_t *out_used)
{
    return pd_patcher_step(&p->c, in, in_len, out, out_cap, in_used, out_used);
}
