"""The zstandard package is imported on first use by the compressed-literal
code, not when pydelta's modules load (it pulls in ``platform``: start-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("zstandard")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_loading_the_delta_driver_does_not_import_zstandard():
    out = _run(
        "import sys\n"
        "from pydelta.delta import use_compression\n"
        "from pydelta.formats import literals\n"
        "assert literals.available()\n"
        "assert use_compression(None, 1)\n"
        "print('zstandard' in sys.modules)\n"
    )
    assert out == "False"


def test_the_first_compressor_imports_it_and_compresses():
    out = _run(
        "import sys\n"
        "from pydelta.formats import literals\n"
        "op = literals.Compressor().op(memoryview(bytes(4096)))\n"
        "print('zstandard' in sys.modules, op is not None and op[0][:1] == b'Z')\n"
    )
    assert out == "True True"


def test_without_zstandard_nothing_is_compressed(monkeypatch):
    from pydelta.errors import UsageError
    from pydelta.formats import literals

    monkeypatch.setattr(literals, "zstandard", None)
    assert not literals.available()
    with pytest.raises(UsageError, match="zstandard"):
        literals.Compressor()
