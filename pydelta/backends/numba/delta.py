"""The delta scan (csrc/delta.c).

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any

from . import _jit
from ._jit import (
    _D_CONT,
    _D_COPIED,
    _D_COPY_LEN,
    _D_COPY_OFF,
    _D_COPY_PENDING,
    _D_DONE,
    _D_EXTERNAL,
    _D_HAVE_DIGEST,
    _D_HAVE_H,
    _D_JUDGED,
    _D_LEN,
    _D_LIT_LEN,
    _D_LITERAL,
    _D_USED,
    _HLEN,
    _OP_COPY,
    _OP_END,
    _OP_LITERAL,
    _T_BASIS,
    _T_BLOCK_LEN,
    _T_BLOOM_SHIFT,
    _T_NFULL,
    _T_NUNIQ,
    _T_STRONG_KIND,
    _T_STRONG_LEN,
    _T_TAIL_LEN,
    _TRAILER_LEN,
    _UM,
    _UM2,
    _UM3,
    _UM4,
    _Z0,
    DELTA_MIN_OUT,
    DONE,
    ERR_PARAM,
    HASH_LEN,
    LIT_MAX,
    NEED_INPUT,
    NEED_OUTPUT,
    _ro,
)
from .blake3 import (
    _b3_final,
    _b3_update,
    _copy,
    _new_state,
)
from .sigtable import (
    SigTable,
    _bloom_test,
    _strong_eq,
    _table_match,
)
from .weaksum import (
    _weak,
)
from .xxh3 import _strong

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# Delta scan (delta.c).


def _put_varint(out, o, v):
    n = 0
    while v >= 0x80:
        out[o + n] = np.uint8((v & 0x7F) | 0x80)
        n += 1
        v >>= 7
    out[o + n] = np.uint8(v)
    return n + 1


def _put_u64(out, o, v):
    for i in range(8):
        out[o + i] = np.uint8((v >> (8 * i)) & 0xFF)


def _emit_copy(si, out, o):
    n = 0
    out[o] = _OP_COPY
    n += 1
    n += _put_varint(out, o + n, si[_D_COPY_OFF])
    n += _put_varint(out, o + n, si[_D_COPY_LEN])
    si[_D_COPY_PENDING] = 0
    return n


def _emit_literal(si, lit, out, o, a, src, length):
    """One LITERAL of the carried bytes followed by a[src:src+length]."""
    ll = si[_D_LIT_LEN]
    total = ll + length
    n = 0
    out[o] = _OP_LITERAL
    n += 1
    n += _put_varint(out, o + n, total)
    _copy(out, o + n, lit, _Z0, ll)
    _copy(out, o + n + ll, a, src, length)
    si[_D_LITERAL] += total
    si[_D_LIT_LEN] = 0
    return n + total


def _add_copy(si, out, o, off, length):
    n = 0
    if si[_D_COPY_PENDING] != 0 and si[_D_COPY_OFF] + si[_D_COPY_LEN] == off:
        si[_D_COPY_LEN] += length
    else:
        if si[_D_COPY_PENDING] != 0:
            n = _emit_copy(si, out, o)
        si[_D_COPY_PENDING] = 1
        si[_D_COPY_OFF] = off
        si[_D_COPY_LEN] = length
    si[_D_COPIED] += length
    return n


def _try_continuation(si, h, tp, weak, strong, a, p, avail, sh, have_sh, tsh, hw, hb, hs):
    """Length matched by the block at the continuation offset (a full block
    or the tail), or 0; and the updated have_sh flag."""
    cont = si[_D_CONT]
    if cont < 0 or cont >= tp[_T_BASIS]:
        return 0, have_sh
    bl = tp[_T_BLOCK_LEN]
    slen = tp[_T_STRONG_LEN]
    j = cont // bl
    if j < tp[_T_NFULL]:
        # the weak sum filters only if it is already known
        if avail < bl or (si[_D_HAVE_H] != 0 and weak[j] != h):
            return 0, have_sh
        if not have_sh:
            _strong(tp[_T_STRONG_KIND], a, p, bl, sh, slen, hw, hb, hs)
            have_sh = True
        if not _strong_eq(sh, strong, j, slen):
            return 0, have_sh
        return bl, have_sh
    n = tp[_T_TAIL_LEN]
    if avail < n or _weak(a, p, n) != weak[j]:
        return 0, have_sh
    _strong(tp[_T_STRONG_KIND], a, p, n, tsh, slen, hw, hb, hs)
    if not _strong_eq(tsh, strong, j, slen):
        return 0, have_sh
    return n, have_sh


def _k_delta_scan(
    si,
    hv,
    dig,
    lit,
    nw,
    nb,
    ns,
    sw,
    sb,
    ss,
    sh,
    tsh,
    tp,
    weak,
    strong,
    runs,
    uidx,
    bucket,
    tk,
    bloom,
    out_tab,
    a,
    base,
    in_len,
    eof,
    out,
    out_cap,
):
    """pd_delta_scan over a[base:base+in_len]; returns (rc, used, produced).
    nw/nb/ns: the hasher of NEW; sw/sb/ss: scratch for block hashes; dig:
    the digest of NEW given by the caller when it hashes NEW itself."""
    bl = tp[_T_BLOCK_LEN]
    nuniq = tp[_T_NUNIQ]
    shift = np.uint64(tp[_T_BLOOM_SHIFT])
    pos = np.int64(0)  # not 0: see _k_sig_blocks
    lit_start = np.int64(0)
    o = np.int64(0)
    rc = 0
    if si[_D_DONE] != 0:
        return DONE, 0, 0
    if out_cap < DELTA_MIN_OUT:
        return ERR_PARAM, 0, 0
    finished = False
    while True:
        # One pass emits at most one COPY and one LITERAL.
        if out_cap - o < LIT_MAX + 64:
            rc = NEED_OUTPUT
            break
        avail = in_len - pos
        if avail < bl and not eof:
            rc = NEED_INPUT
            break
        if avail == 0:
            finished = True
            break

        mlen = 0
        moff = 0
        if si[_D_JUDGED] == 0:
            have_sh = False
            mlen, have_sh = _try_continuation(
                si, hv[0], tp, weak, strong, a, base + pos, avail, sh, have_sh, tsh, sw, sb, ss
            )
            moff = si[_D_CONT]
            # the weak sum of the window only when the continuation fails
            if mlen == 0 and avail >= bl:
                if si[_D_HAVE_H] == 0:
                    hv[0] = _weak(a, base + pos, bl)
                    si[_D_HAVE_H] = 1
                if nuniq != 0:
                    b, have_sh = _table_match(
                        tp,
                        strong,
                        runs,
                        uidx,
                        bucket,
                        tk,
                        bloom,
                        hv[0],
                        a,
                        base + pos,
                        sh,
                        have_sh,
                        sw,
                        sb,
                        ss,
                    )
                    if b >= 0:
                        mlen = bl
                        moff = b * bl
        if mlen != 0:
            here = pos - lit_start
            if si[_D_LIT_LEN] + here != 0:
                o += _emit_literal(si, lit, out, o, a, base + lit_start, here)
            o += _add_copy(si, out, o, moff, mlen)
            pos += mlen
            lit_start = pos
            si[_D_HAVE_H] = 0
            si[_D_CONT] = moff + mlen
            continue

        # A miss: the first byte of the window is literal.
        if si[_D_COPY_PENDING] != 0:
            o += _emit_copy(si, out, o)
        si[_D_CONT] = -1
        if avail < bl:
            # end of NEW, less than a block left: all literal
            room = LIT_MAX - si[_D_LIT_LEN] - (pos - lit_start)
            pos += avail if avail < room else room
        elif avail == bl:
            if not eof:
                # cannot roll without the next byte; resume here
                si[_D_JUDGED] = 1
                rc = NEED_INPUT
                break
            pos += 1
            si[_D_HAVE_H] = 0
        else:
            # roll through the literal run; stop at a pre-filter hit, the
            # end of the buffer, or a full literal
            limit = lit_start + (LIT_MAX - si[_D_LIT_LEN])
            end = in_len - bl
            if end > limit:
                end = limit
            h = hv[0]
            h = h * _UM + (np.uint64(a[base + pos + bl]) - out_tab[a[base + pos]])
            pos += 1
            # four positions a step (as delta.c): the sums at pos+1..pos+4
            # all come from h, so the multiplies run in parallel
            while pos + 4 <= end and not _bloom_test(bloom, h, shift):
                q = base + pos
                x1 = np.uint64(a[q + bl]) - out_tab[a[q]]
                x2 = np.uint64(a[q + bl + 1]) - out_tab[a[q + 1]]
                x3 = np.uint64(a[q + bl + 2]) - out_tab[a[q + 2]]
                x4 = np.uint64(a[q + bl + 3]) - out_tab[a[q + 3]]
                h1 = h * _UM + x1
                h2 = h * _UM2 + (x1 * _UM + x2)
                h3 = h * _UM3 + (x1 * _UM2 + x2 * _UM + x3)
                h4 = h * _UM4 + (x1 * _UM3 + x2 * _UM2 + x3 * _UM + x4)
                if _bloom_test(bloom, h1, shift):
                    h = h1
                    pos += 1
                    break
                if _bloom_test(bloom, h2, shift):
                    h = h2
                    pos += 2
                    break
                if _bloom_test(bloom, h3, shift):
                    h = h3
                    pos += 3
                    break
                h = h4
                pos += 4
            while pos < end and not _bloom_test(bloom, h, shift):
                h = h * _UM + (np.uint64(a[base + pos + bl]) - out_tab[a[base + pos]])
                pos += 1
            hv[0] = h
            si[_D_JUDGED] = 0
        if si[_D_LIT_LEN] + (pos - lit_start) == LIT_MAX:
            o += _emit_literal(si, lit, out, o, a, base + lit_start, pos - lit_start)
            lit_start = pos

    if finished:
        # All of NEW is decided: flush and write END with the trailer.
        external = si[_D_EXTERNAL] != 0
        if external and si[_D_HAVE_DIGEST] == 0:
            return ERR_PARAM, 0, 0
        if pos - lit_start + si[_D_LIT_LEN] != 0:
            o += _emit_literal(si, lit, out, o, a, base + lit_start, pos - lit_start)
        lit_start = pos
        if si[_D_COPY_PENDING] != 0:
            o += _emit_copy(si, out, o)
        if not external:
            _b3_update(nw, nb, ns, a, base, pos)
        si[_D_USED] += pos
        out[o] = _OP_END
        o += 1
        _put_u64(out, o, si[_D_USED])
        if external:
            _copy(out, o + 8, dig, _Z0, _HLEN)
        else:
            _b3_final(nw, nb, ns, out[o + 8 : o + 8 + HASH_LEN])
        o += _TRAILER_LEN
        si[_D_DONE] = 1
        return DONE, pos, o

    # Suspend: carry this call's literal bytes, which leave the buffer.
    ll = si[_D_LIT_LEN]
    k = pos - lit_start
    _copy(lit, ll, a, base + lit_start, k)
    si[_D_LIT_LEN] = ll + k
    if si[_D_EXTERNAL] == 0:
        _b3_update(nw, nb, ns, a, base, pos)
    si[_D_USED] += pos
    return rc, pos, o


class DeltaJob:
    """A resumable delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        if table._tp is None:
            raise ValueError("the signature table was not built")
        self._table = table
        self._si = np.zeros(_D_LEN, np.int64)  # cont starts at 0: block 0 is tried first
        self._hv = np.zeros(1, np.uint64)
        self._digest = np.zeros(HASH_LEN, np.uint8)
        self._lit = np.empty(LIT_MAX, np.uint8)
        self._new = _new_state()
        self._scratch = _new_state()
        self._sh = np.zeros(HASH_LEN, np.uint8)
        self._tsh = np.zeros(HASH_LEN, np.uint8)

    def scan(
        self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray
    ) -> tuple:
        """Scan inbuf[in_off:in_off+in_len]; returns (code, input used, output made)."""
        a = _ro(inbuf)
        if in_off < 0 or in_len < 0 or in_off + in_len > a.size:
            raise ValueError("input range reaches outside the buffer")
        out = np.frombuffer(outbuf, dtype=np.uint8)
        t = self._table
        nw, nb, ns = self._new
        sw, sb, ss = self._scratch
        rc, used, produced = _k_delta_scan(
            self._si,
            self._hv,
            self._digest,
            self._lit,
            nw,
            nb,
            ns,
            sw,
            sb,
            ss,
            self._sh,
            self._tsh,
            t._tp,
            t._weak,
            t._strong,
            t._runs,
            t._uidx,
            t._bucket,
            t._tk,
            t._bloom,
            t._out_tab,
            a,
            in_off,
            in_len,
            bool(eof),
            out,
            out.size,
        )
        return int(rc), int(used), int(produced)

    def hash_externally(self) -> None:
        """The caller hashes NEW itself and gives the digest via set_digest()."""
        self._si[_D_EXTERNAL] = 1

    def set_digest(self, digest: bytes) -> None:
        """BLAKE3 of all of NEW, before the final (eof) scan call."""
        d = _ro(digest)
        if d.size < HASH_LEN:
            raise ValueError(f"a digest is {HASH_LEN} bytes")
        self._digest[:] = d[:HASH_LEN]
        self._si[_D_HAVE_DIGEST] = 1

    def stats(self) -> tuple:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        si = self._si
        return int(si[_D_USED]), int(si[_D_COPIED]), int(si[_D_LITERAL])


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_put_varint",
    "_put_u64",
    "_emit_copy",
    "_emit_literal",
    "_add_copy",
    "_try_continuation",
    "_k_delta_scan",
)
_jit.register(globals(), KERNELS)
