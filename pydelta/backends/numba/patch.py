"""Applying a delta (csrc/patch.c).

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from . import _jit
from ._jit import (
    _HLEN,
    _MORE,
    _OK,
    _OP_COPY,
    _OP_END,
    _OP_LITERAL,
    _P_EXPECT,
    _P_OFF,
    _P_REM,
    _P_STATE,
    _REQS,
    _ST_COPY,
    _TRAILER_LEN,
    _U0,
    _U7F,
    _U8,
    _UST_COPY,
    _UST_DONE,
    _UST_LITERAL,
    _UST_OP,
    _Z0,
    DONE,
    ERR_BOUNDS,
    ERR_CORRUPT,
    ERR_IO,
    HASH_LEN,
    NEED_INPUT,
    NEED_OUTPUT,
    Buffer,
    _ro,
    _u64,
)
from .blake3 import (
    _copy,
    _k_b3_final,
    _k_b3_update,
    _new_state,
)

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# Patch (patch.c). The kernel parses ops and copies literals; for each COPY
# it reserves the output and records a read request (out position, basis
# offset, length, input position, bytes left in the op before it), and
# Python reads the basis with preadv straight into the output buffer.


def _get_varint(a, p, avail):
    """pd_get_varint: (bytes used, value); 0 bytes: need more input; -1:
    overlong or more than 64 bits."""
    r = _U0
    for i in range(10):
        if i >= avail:
            return 0, r
        b = a[p + i]
        if i == 9 and b > 1:
            return -1, r
        r |= (np.uint64(b) & _U7F) << np.uint64(7 * i)
        if b < 0x80:
            # a trailing zero group would be a second spelling
            if i > 0 and b == 0:
                return -1, r
            return i + 1, r
    return -1, r


def _get_u64(a, p):
    v = _U0
    for i in range(7, -1, -1):
        v = (v << _U8) | np.uint64(a[p + i])
    return v


def _parse_op(ps, edig, old_size, a, p, avail):
    """Parse one op header at a[p:p+avail]: bytes used, 0 if incomplete,
    or a negative result code."""
    if avail == 0:
        return 0
    op = a[p]
    n = 1
    if op == _OP_COPY:
        k, x = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        k, y = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        if y == _U0:
            return ERR_CORRUPT
        if x > old_size or y > old_size - x:
            return ERR_BOUNDS
        ps[_P_OFF] = x
        ps[_P_REM] = y
        ps[_P_STATE] = _UST_COPY
        return n
    if op == _OP_LITERAL:
        k, x = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        if x == _U0:
            return ERR_CORRUPT
        ps[_P_REM] = x
        ps[_P_STATE] = _UST_LITERAL
        return n
    if op == _OP_END:
        if avail < 1 + _TRAILER_LEN:
            return 0
        ps[_P_EXPECT] = _get_u64(a, p + 1)
        _copy(edig, _Z0, a, p + 9, _HLEN)
        ps[_P_STATE] = _UST_DONE
        return 1 + _TRAILER_LEN
    return ERR_CORRUPT


def _k_patch_run(ps, edig, old_size, a, ip, in_end, out, o, out_cap, req):
    """Run ops until a result code (or _MORE: the request list is full);
    returns (rc, input position, output position, requests)."""
    uold = np.uint64(old_size)
    nreq = 0
    rc = _OK
    while rc == _OK:
        st = ps[_P_STATE]
        if st == _UST_DONE:
            rc = DONE
        elif st == _UST_OP:
            k = _parse_op(ps, edig, uold, a, ip, in_end - ip)
            if k < 0:
                rc = k
            elif k == 0:
                rc = NEED_INPUT
            else:
                ip += k
        elif st == _UST_COPY:
            room = out_cap - o
            if room == 0:
                rc = NEED_OUTPUT
            elif nreq == req.shape[0]:
                rc = _MORE
            else:
                rem = ps[_P_REM]
                uk = rem if rem < np.uint64(room) else np.uint64(room)
                k = np.int64(uk)
                req[nreq, 0] = o
                req[nreq, 1] = np.int64(ps[_P_OFF])
                req[nreq, 2] = k
                req[nreq, 3] = ip
                req[nreq, 4] = np.int64(rem)
                nreq += 1
                o += k
                ps[_P_OFF] = ps[_P_OFF] + uk
                ps[_P_REM] = rem - uk
                if ps[_P_REM] == _U0:
                    ps[_P_STATE] = _UST_OP
        else:  # _ST_LITERAL
            room = out_cap - o
            avail = in_end - ip
            if avail == 0:
                rc = NEED_INPUT
            elif room == 0:
                rc = NEED_OUTPUT
            else:
                rem = ps[_P_REM]
                lim = room if room < avail else avail
                uk = rem if rem < np.uint64(lim) else np.uint64(lim)
                k = np.int64(uk)
                _copy(out, o, a, ip, k)
                o += k
                ip += k
                ps[_P_REM] = rem - uk
                if ps[_P_REM] == _U0:
                    ps[_P_STATE] = _UST_OP
    return rc, ip, o, nreq


class PatchJob:
    """A resumable patch job reading the basis through a file descriptor."""

    def __init__(self, fd: int, old_size: int) -> None:
        _jit.ensure()
        _u64(old_size, "old_size")
        self._fd = fd
        self._old_size = old_size
        self._ps = np.zeros(4, np.uint64)
        self._edig = np.zeros(HASH_LEN, np.uint8)
        self._req = np.zeros((_REQS, 5), np.int64)
        self._hasher = _new_state()
        self._produced = 0
        self._errno = 0

    def step(self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray) -> tuple:
        """Apply ops from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        a = _ro(inbuf)
        if in_off < 0 or in_len < 0 or in_off + in_len > a.size:
            raise ValueError("input range reaches outside the buffer")
        out = np.frombuffer(outbuf, dtype=np.uint8)
        ps, edig, req = self._ps, self._edig, self._req
        ip, end, o, cap = in_off, in_off + in_len, 0, out.size
        while True:
            expect = (ps[_P_EXPECT], edig.copy())
            rc, ip, o, nreq = _k_patch_run(ps, edig, self._old_size, a, ip, end, out, o, cap, req)
            if nreq:
                bad = self._read(memoryview(outbuf).cast("B"), req[:nreq].tolist())
                if bad is not None:
                    # as if the ops after the failed read were never parsed
                    o, off, _, ip, rem = bad
                    ps[_P_STATE], ps[_P_OFF], ps[_P_REM] = _ST_COPY, off, rem
                    ps[_P_EXPECT], edig[:] = expect
                    rc = ERR_IO
            if rc != _MORE:
                break
        if o:
            hw, hb, hs = self._hasher
            view = out[:o]
            view.flags.writeable = False
            _k_b3_update(hw, hb, hs, view, 0, o)
            self._produced += o
        return int(rc), ip - in_off, o

    def _read(self, view: memoryview, reqs: list) -> Optional[list]:
        """Read the basis for each request; the failing request, or None."""
        fd = self._fd
        for r in reqs:
            pos, off, k = r[0], r[1], r[2]
            while k:
                try:
                    got = _preadv(fd, view[pos : pos + k], off)
                except OSError as e:
                    self._errno = e.errno or 0
                    return r
                if got == 0:
                    # the basis is shorter than it was said to be
                    self._errno = 0
                    return r
                pos += got
                off += got
                k -= got
        return None

    def result(self) -> tuple:
        """(expected size, expected digest, produced size, produced digest)."""
        hw, hb, hs = self._hasher
        out = np.empty(HASH_LEN, np.uint8)
        _k_b3_final(hw, hb, hs, out)
        return int(self._ps[_P_EXPECT]), self._edig.tobytes(), self._produced, out.tobytes()

    @property
    def errno(self) -> int:
        """errno of the last basis read failure (0: the basis ended early)."""
        return self._errno


if hasattr(os, "preadv"):

    def _preadv(fd: int, view: memoryview, off: int) -> int:
        return os.preadv(fd, [view], off)

else:  # pragma: no cover - platforms without preadv

    def _preadv(fd: int, view: memoryview, off: int) -> int:
        data = os.pread(fd, len(view), off)
        view[: len(data)] = data
        return len(data)


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_get_varint",
    "_get_u64",
    "_parse_op",
    "_k_patch_run",
)
_jit.register(globals(), KERNELS)
