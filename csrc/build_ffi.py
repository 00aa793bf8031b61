"""cffi build script for pydelta's C core (out-of-line API mode).

The public header ``csrc/pydelta.h`` is both the C API and the cdef: it is
read here verbatim, so the two cannot drift apart.
"""

import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(os.path.join("csrc", name) for name in os.listdir(HERE) if name.endswith(".c"))

with open(os.path.join(HERE, "pydelta.h"), encoding="utf-8") as fh:
    CDEF = fh.read()

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pydelta._core",
    '#include "pydelta.h"\n',
    sources=SOURCES,
    include_dirs=["csrc"],
    extra_compile_args=(
        [] if sys.platform == "win32" else ["-O3", "-std=gnu11", "-Wall", "-Wextra"]
    ),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
