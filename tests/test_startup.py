"""Start-up stays short: what each entry point imports (issue 13.4).

Timing belongs in bench/startup.py; these check the cause instead, so they
are fast and exact: ``import pydelta`` loads none of the library,
``pydelta --version`` no command-line layer, ``pydelta serve`` neither the
command-line layer nor the client side of sync, and the public API still
resolves every name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _modules_after(code: str) -> set:
    """The modules loaded once ``code`` ran in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_pydelta_loads_nothing_else():
    mods = _modules_after("import pydelta")
    assert {m for m in mods if m.startswith("pydelta")} == {"pydelta", "pydelta._version"}


def test_version_skips_the_cli():
    code = (
        "import sys\nsys.argv = ['pydelta', '--version']\nimport pydelta.__main__ as m\n"
        "try:\n    m.main()\nexcept SystemExit:\n    pass"
    )
    mods = _modules_after(code)
    assert not {"typer", "click", "pydelta.cli", "pydelta.sync", "pydelta.delta"} & mods


def test_serve_loads_only_the_serving_end():
    code = "import pydelta.sync.server"
    mods = _modules_after(code)
    unwanted = {
        "typer",
        "pydelta.cli",
        "pydelta.sync.client",
        "pydelta.sync.ssh",
        "pydelta.store",
        "tqdm",
    }
    assert not unwanted & mods


def test_cli_help_loads_no_library():
    code = (
        "import pydelta.cli, contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        pydelta.cli.main(['--help'])\n    except SystemExit:\n        pass"
    )
    mods = _modules_after(code)
    assert not {"pydelta.delta", "pydelta.patch", "pydelta.sync.client", "pydelta.store"} & mods


def test_public_api_resolves():
    import pydelta

    for name in pydelta.__all__:
        assert getattr(pydelta, name) is not None, name
    assert callable(pydelta.sync) and callable(pydelta.signature) and callable(pydelta.delta)
    assert pydelta.backend in ("c", "numba", "none")
    assert pydelta.format.STREAM_BLOCK_LEN == 32768
    with pytest.raises(AttributeError):
        pydelta.no_such_name  # noqa: B018


def test_submodule_import_keeps_the_functions():
    # importing pydelta.sync.client (etc.) must not turn pydelta.sync into the module
    code = (
        "import pydelta, pydelta.sync.client, pydelta.delta, pydelta.signature, "
        "pydelta.patch, pydelta.info\n"
        "assert all(callable(getattr(pydelta, n)) for n in "
        "('sync', 'delta', 'signature', 'patch', 'info'))"
    )
    _modules_after(code)


def test_version_output(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pydelta", "--version"],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import pydelta

    assert out.stdout.startswith(f"pydelta {pydelta.__version__} (")
