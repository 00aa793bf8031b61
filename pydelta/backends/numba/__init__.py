"""The numba backend: the C core's kernels rewritten with numba.

The same exports, semantics and output as :mod:`pydelta.backends.c`;
one module per kernel, mirroring csrc/ (see :mod:`._jit` for how and when
they are compiled).
"""

from ._jit import (
    DELTA_MIN_OUT,
    DONE,
    ERR_BOUNDS,
    ERR_CORRUPT,
    ERR_IO,
    ERR_NOMEM,
    ERR_PARAM,
    ERR_SIGNATURE,
    HASH_LEN,
    LIT_MAX,
    NAME,
    NEED_INPUT,
    NEED_OUTPUT,
    Buffer,
)
from .blake3 import Blake3, blake3_digest
from .cdc import CDC_CAP, Chunker, cdc_check, cdc_gear
from .delta import DeltaJob
from .patch import PatchJob
from .signature import sig_blocks
from .sigtable import SigTable, set_table_key
from .transform import group16, lit_costs, ungroup16
from .weaksum import weak, weak_rolling
from .xxh3 import STRONG_BLAKE3, STRONG_XXH3, xxh3_128

__all__ = [
    "Buffer",
    "NAME",
    "NEED_INPUT",
    "NEED_OUTPUT",
    "DONE",
    "ERR_CORRUPT",
    "ERR_BOUNDS",
    "ERR_IO",
    "ERR_NOMEM",
    "ERR_PARAM",
    "ERR_SIGNATURE",
    "HASH_LEN",
    "LIT_MAX",
    "DELTA_MIN_OUT",
    "Blake3",
    "blake3_digest",
    "STRONG_BLAKE3",
    "STRONG_XXH3",
    "xxh3_128",
    "weak",
    "weak_rolling",
    "sig_blocks",
    "SigTable",
    "set_table_key",
    "DeltaJob",
    "PatchJob",
    "CDC_CAP",
    "Chunker",
    "cdc_check",
    "cdc_gear",
    "group16",
    "ungroup16",
    "lit_costs",
]
