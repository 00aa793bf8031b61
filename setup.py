"""Build pydelta's C core (``pydelta._core``) with cffi, optionally.

The metadata lives in ``pyproject.toml``; this file only wires in the cffi
extension and two packaging choices:

* The extension is compiled against CPython's limited API (cffi's generated
  module defines ``Py_LIMITED_API`` and cffi marks the extension
  ``py_limited_api``, hence ``_core.abi3.so``), so the wheel is tagged
  ``cp39-abi3``: one wheel for every CPython >= 3.9.
* The C core is optional. Without a working C compiler the build prints a
  warning and installs pure Python; at run time pydelta then uses its numba
  backend (``pip install 'pydelta-sync[numba]'``). Set
  ``PYDELTA_REQUIRE_C=1`` to make a failed C build fail the install instead
  (CI does, so a broken C build can never pass as a numba fallback).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _c_required() -> bool:
    return os.environ.get("PYDELTA_REQUIRE_C", "").strip() not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a warning (see above)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, ...
            self._skip(exc)

    def build_extension(self, ext) -> None:  # noqa: ANN001 (setuptools' type)
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc: BaseException) -> None:
        if _c_required():
            raise exc
        print(
            "WARNING: pydelta's C core could not be built "
            f"({type(exc).__name__}: {exc}); installing without it. pydelta "
            "will use its numba backend: pip install 'pydelta-sync[numba]' "
            "(set PYDELTA_REQUIRE_C=1 to make this an error)",
            file=sys.stderr,
        )


setup(
    cmdclass={"build_ext": OptionalBuildExt},
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
