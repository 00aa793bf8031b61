/** \file scan.c
 * The op writer both delta scans share (delta.c for native deltas, rs_job.c
 * for librsync ones): a COPY is held back while the next match continues
 * it, so a run of matched blocks becomes one op; literal bytes are carried
 * across calls (the caller's buffer moves on) and cut at exactly
 * PD_LIT_MAX bytes by the scans, so op boundaries never depend on how the
 * input was chunked. Only the encoding of an op differs by format:
 *
 *   native   'C' varint offset, varint length / 'L' varint length, bytes
 *   librsync 0x45 + 4*w(offset) + w(length), both big-endian in 1, 2, 4 or
 *            8 bytes / 0x01..0x40 for literals that short, else
 *            0x41 + w(length), big-endian length, bytes
 *
 * These calls happen once per op, not per byte, so the format is a field
 * tested at run time rather than a second copy of the code.
 */
#include "internal.h"

_Static_assert((int)PD_LIT_MAX == (int)PD_RS_LIT_MAX,
               "both formats cut literals at the same length");

int pd_ops_init(pd_ops *w, int fmt)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    w->lit = malloc(PD_LIT_MAX);
    return w->lit ? PD_OK : PD_ERR_NOMEM;
}

void pd_ops_free(pd_ops *w)
{
    free(w->lit);
    w->lit = NULL;
}

/* librsync's integer width code of v: 0..3 for 1, 2, 4, 8 bytes. */
static int rs_width(uint64_t v)
{
    if (v <= 0xff)
        return 0;
    if (v <= 0xffff)
        return 1;
    if (v <= 0xffffffffULL)
        return 2;
    return 3;
}

/* Store v big-endian in 1 << code bytes; returns the bytes written. */
static size_t put_be(uint8_t *p, uint64_t v, int code)
{
    size_t n = (size_t)1 << code;
    for (size_t i = n; i-- > 0;) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return n;
}

size_t pd_ops_flush_copy(pd_ops *w, uint8_t *out)
{
    if (!w->copy_pending)
        return 0;
    w->copy_pending = 0;
    size_t n = 0;
    if (w->fmt == PD_OPS_NATIVE) {
        out[n++] = PD_OP_COPY;
        n += pd_put_varint(out + n, w->copy_off);
        n += pd_put_varint(out + n, w->copy_len);
        return n;
    }
    int wo = rs_width(w->copy_off), wl = rs_width(w->copy_len);
    out[n++] = (uint8_t)(PD_RS_OP_COPY_BASE + 4 * wo + wl);
    n += put_be(out + n, w->copy_off, wo);
    n += put_be(out + n, w->copy_len, wl);
    return n;
}

size_t pd_ops_literal(pd_ops *w, uint8_t *out, const uint8_t *src, size_t len)
{
    size_t total = w->lit_len + len, n = 0;
    if (w->fmt == PD_OPS_NATIVE) {
        out[n++] = PD_OP_LITERAL;
        n += pd_put_varint(out + n, total);
    } else if (total <= 64) {
        out[n++] = (uint8_t)total;
    } else {
        int wl = rs_width(total);
        out[n++] = (uint8_t)(PD_RS_OP_LITERAL_N1 + wl);
        n += put_be(out + n, total, wl);
    }
    memcpy(out + n, w->lit, w->lit_len);
    memcpy(out + n + w->lit_len, src, len);
    w->literal += total;
    w->lit_len = 0;
    return n + total;
}

size_t pd_ops_copy(pd_ops *w, uint8_t *out, uint64_t off, uint64_t len)
{
    size_t n = 0;
    if (w->copy_pending && w->copy_off + w->copy_len == off) {
        w->copy_len += len;
    } else {
        n = pd_ops_flush_copy(w, out);
        w->copy_pending = 1;
        w->copy_off = off;
        w->copy_len = len;
    }
    w->copied += len;
    return n;
}

void pd_ops_carry(pd_ops *w, const uint8_t *src, size_t len)
{
    memcpy(w->lit + w->lit_len, src, len);
    w->lit_len += len;
}
