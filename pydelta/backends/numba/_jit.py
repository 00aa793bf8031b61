"""The numba backend's shared constants and its lazy compiler.

The numba backend has the same exports, semantics and output as
:mod:`pydelta.backends.c`: signatures and
deltas are byte-identical to the C backend's. The kernels are plain
functions over numpy uint8 views of the caller's buffers (no copies of the
MiB buffers), compiled with ``numba.njit(cache=True, nogil=True)``; every
bit of state a job needs between calls lives in small numpy arrays, so the
compiled functions can stop and resume anywhere.

numpy and numba are imported, and the kernels compiled (or loaded from
numba's on-disk cache), on the first call that needs them, not when this
module is imported: ``pydelta --help`` stays fast whichever backend is
chosen. The kernels mirror csrc/, one module per C file: weak sum
(weaksum.py ~ weaksum.c), signature entries (signature.py ~ signature.c),
table build and lookup (sigtable.py ~ sigtable.c), delta scan (delta.py ~
delta.c), patch ops (patch.py ~ patch.c), and BLAKE3 (blake3.py) written
from its specification. Each kernel module registers its kernels here
(:func:`register`); :func:`load` compiles them all on first use.

Integer rules: weak sums and other 64-bit hash arithmetic use uint64 values
and np.uint64 constants only, BLAKE3 words are np.uint32 (every result is
truncated back to uint32), and sizes and positions are int64; they are not
mixed, since numba's typing of mixed signed/unsigned operations differs
between versions. Compile time: numba compiles a helper once per distinct
literal argument, so internal calls pass variables (np.int64(0), not 0)
and copies are loops, not slice assignments (seconds of compile each).
"""

import threading
from typing import Any, Dict, List, Tuple, Union

NAME = "numba"

Buffer = Union[bytes, bytearray, memoryview]

# Result codes: the values of the pd_result enum in csrc/pydelta.h.
NEED_INPUT = 1
NEED_OUTPUT = 2
DONE = 3
ERR_CORRUPT = -1
ERR_BOUNDS = -2
ERR_IO = -3
ERR_NOMEM = -4
ERR_PARAM = -5
ERR_SIGNATURE = -6

# Sizes and limits (csrc/pydelta.h).
HASH_LEN = 32
LIT_MAX = 262144
DELTA_MIN_OUT = 262400
_MIN_STRONG = 8
_MAX_STRONG = 32
_WEAK_LEN = 8
_TRAILER_LEN = 40
_OP_COPY = 67
_OP_LITERAL = 76
_OP_END = 69
_MAX_CANDIDATES = 16  # PD_MAX_CANDIDATES (internal.h)
_OK = 0
_MORE = 100  # internal: the patch kernel's read-request list is full

_WEAK_M = 0x9E3779B97F4A7C15  # PD_WEAK_M
_BLOOM_MUL = 0xD6E8FEB86659FD93
# The keyed bucket mix of the weak-sum index (pd_windex_mix, internal.h).
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1
_SIZE_MAX = _MASK64

# BLAKE3 (https://github.com/BLAKE3-team/BLAKE3-specs): IV, message
# permutation and domain flags.
_B3_IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_CHUNK_START = 1
_CHUNK_END = 2
_PARENT = 4
_ROOT = 8
_B3_STACK = 54  # CV stack depth: enough for 2**64 bytes

# Layout of the small state arrays.
# BLAKE3 hasher: hw uint32[8 + 8*54] (chunk CV, then the CV stack),
# hb uint8[64] (the chunk's buffered block), hs int64[4]:
_HS_COUNTER, _HS_BLOCKS, _HS_BUFLEN, _HS_STACK = 0, 1, 2, 3
_HW_LEN = 8 + 8 * _B3_STACK
# Signature table parameters, tp int64[...]:
(
    _T_NBLOCKS,
    _T_NFULL,
    _T_BASIS,
    _T_BLOCK_LEN,
    _T_STRONG_LEN,
    _T_TAIL_LEN,
    _T_NUNIQ,
    _T_NRUNS,
    _T_BLOOM_SHIFT,
    _T_STRONG_KIND,
    _T_LEN,
) = range(11)
# Delta job, si int64[...] (the weak sum h is in a separate uint64[1]):
(
    _D_USED,
    _D_HAVE_H,
    _D_JUDGED,
    _D_CONT,
    _D_COPY_PENDING,
    _D_COPY_OFF,
    _D_COPY_LEN,
    _D_LIT_LEN,
    _D_COPIED,
    _D_LITERAL,
    _D_DONE,
    _D_EXTERNAL,
    _D_HAVE_DIGEST,
    _D_LEN,
) = range(14)
# Patch job, ps uint64[4]: state, COPY source offset, bytes left in the op,
# expected size from the END trailer.
_P_STATE, _P_OFF, _P_REM, _P_EXPECT = 0, 1, 2, 3
_ST_OP, _ST_COPY, _ST_LITERAL, _ST_DONE = 0, 1, 2, 3
_REQS = 1024  # basis reads collected per kernel call

# ---------------------------------------------------------------------------
# Lazy import and compilation.

np: Any = None  # numpy, bound by load()
_ready = False
_lock = threading.Lock()

# Constants of the kernels (uint64; uint32 for BLAKE3 words), bound by
# load(): numba freezes module globals into the compiled code as constants
# of their numpy type.
_U0 = _U1 = _U8 = _U31 = _U17 = _U29 = _U32 = _M32 = _U7F = _UFF = None
_UMIX1 = _UMIX2 = None
_IV0 = _IV1 = _IV2 = _IV3 = _IV4 = _IV5 = _IV6 = _IV7 = None
_UM = _UM2 = _UM3 = _UM4 = _UBLOOM = None
_UST_OP = _UST_COPY = _UST_LITERAL = _UST_DONE = None
_F_START = _F_END = _F_PARENT = _F_ROOT = _F_NONE = _B64 = None
_Z0 = _HLEN = None  # int64 0 and HASH_LEN: not literals, which numba would
# compile helpers for separately


def _constants(np_mod) -> dict:
    u = np_mod.uint64
    m = _WEAK_M
    c = {
        "_U0": u(0),
        "_U1": u(1),
        "_U8": u(8),
        "_U31": u(31),
        "_U17": u(17),
        "_U29": u(29),
        "_U32": u(32),
        "_M32": u(0xFFFFFFFF),
        "_U7F": u(0x7F),
        "_UFF": u(0xFF),
        "_UM": u(m),
        "_UM2": u(m * m & _MASK64),
        "_UM3": u(m**3 & _MASK64),
        "_UM4": u(m**4 & _MASK64),
        "_UBLOOM": u(_BLOOM_MUL),
        "_UMIX1": u(_MIX1),
        "_UMIX2": u(_MIX2),
        "_UST_OP": u(_ST_OP),
        "_UST_COPY": u(_ST_COPY),
        "_UST_LITERAL": u(_ST_LITERAL),
        "_UST_DONE": u(_ST_DONE),
    }
    c["_Z0"] = np_mod.int64(0)
    c["_HLEN"] = np_mod.int64(HASH_LEN)
    w = np_mod.uint32
    c.update(
        {
            "_F_START": w(_CHUNK_START),
            "_F_END": w(_CHUNK_END),
            "_F_PARENT": w(_PARENT),
            "_F_ROOT": w(_ROOT),
            "_F_NONE": w(0),
            "_B64": w(64),
        }
    )
    for i, v in enumerate(_B3_IV):
        c[f"_IV{i}"] = w(v)
    return c


#: The globals of every kernel module, and the names in each to compile.
_modules: List[Tuple[Dict[str, Any], Tuple[str, ...]]] = []


def register(module_globals: Dict[str, Any], kernels: Tuple[str, ...]) -> None:
    """A kernel module announces itself (at import): :func:`load` binds numpy
    and the constants in its globals and compiles its ``kernels``."""
    _modules.append((module_globals, kernels))


def ensure() -> None:
    """Compile the kernels if that has not been done yet."""
    if not _ready:
        load()


def load() -> None:
    """Import numpy and numba, and make the kernels numba functions.

    Kernels call kernels of other modules through names those modules
    imported; every such name is rebound to the compiled function, so a
    compiled kernel only ever calls compiled kernels.
    """
    global np, _ready
    with _lock:
        if _ready:
            return
        import numba
        import numpy

        consts = _constants(numpy)
        consts["np"] = numpy
        globals().update(consts)
        compiled: Dict[int, Any] = {}
        for g, names in _modules:
            g.update(consts)
            bind = g.get("_bind")  # a module's own constants (xxh3.py)
            if bind is not None:
                g.update(bind(numpy))
            for name in names:
                fn = g[name]
                try:
                    jitted = numba.njit(cache=True, nogil=True)(fn)
                except RuntimeError:  # no writable cache location: compile every run
                    jitted = numba.njit(nogil=True)(fn)
                compiled[id(fn)] = (fn, jitted)
        for g, _ in _modules:
            for key, value in list(g.items()):
                hit = compiled.get(id(value))
                if hit is not None and hit[0] is value:
                    g[key] = hit[1]
        _ready = True


def _ro(buf: Buffer):
    """A read-only uint8 numpy view of a buffer (no copy). Input buffers are
    always passed read-only so each kernel is compiled for one type."""
    a = np.frombuffer(buf, dtype=np.uint8)
    if a.flags.writeable:
        a.flags.writeable = False
    return a


def _u32(v: int, what: str) -> int:
    """Range check as cffi does for a uint32_t argument."""
    if not 0 <= v <= 0xFFFFFFFF:
        raise OverflowError(f"{what} does not fit uint32_t")
    return v


def _u64(v: int, what: str) -> int:
    """Range check as cffi does for a uint64_t argument."""
    if not 0 <= v <= _MASK64:
        raise OverflowError(f"{what} does not fit uint64_t")
    return v
