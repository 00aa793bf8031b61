"""Start-up stays short: what each entry point imports (issue 13.4).

Timing belongs in bench/startup.py; these check the cause instead, so they
are fast and exact: ``import pydelta`` loads none of the library,
``pydelta --version`` no command-line layer, ``pydelta serve`` neither the
command-line layer nor the client side of sync, the common command lines of
the file and sync verbs run without typer (click, rich) and load only the
library their work uses, and the public API still resolves every name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _modules_after(code: str, **env_extra: str) -> set:
    """The modules loaded once ``code`` ran in a fresh interpreter."""
    env = dict(os.environ, **env_extra)
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
    assert not (TYPER_SIDE | {"pydelta._cliparse", "pydelta.sync", "pydelta.delta"}) & mods
    assert "logging" not in mods  # the backend logs only when it first falls back


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


#: The command-line layer: typer and what it brings, and pydelta's typer side.
TYPER_SIDE = {
    "typer",
    "click",
    "rich",
    "shellingham",
    "pydelta.cli",
    "pydelta._cli_typer",
    "pydelta._cli_store",
}


def _run_main(argv: list) -> str:
    """Code running ``pydelta ARGV`` through the script's entry point, in process."""
    return (
        f"import sys\nsys.argv = ['pydelta'] + {argv!r}\nimport pydelta.__main__ as m\n"
        "try:\n    m.main()\nexcept SystemExit as e:\n    assert not e.code, e.code"
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small file, its signature and a delta (made by the library)."""
    import pydelta

    d = tmp_path_factory.mktemp("startup")
    (d / "old").write_bytes(os.urandom(40_000))
    (d / "new").write_bytes((d / "old").read_bytes()[:30_000] + os.urandom(5_000))
    pydelta.signature(str(d / "old"), str(d / "old.sig"))
    pydelta.delta(str(d / "old.sig"), str(d / "new"), str(d / "new.delta"))
    return d


#: verb -> (its command line, modules its work must not load)
FAST_LINES = {
    "signature": (
        ["signature", "{d}/old", "{d}/out.sig", "-q"],
        {"pydelta.delta", "pydelta.patch", "pydelta.sync", "pydelta.store", "pydelta.info"},
    ),
    "delta": (
        ["delta", "{d}/old.sig", "{d}/new", "{d}/out.delta", "-j", "1"],
        {"pydelta.patch", "pydelta.sync", "pydelta.store", "pydelta.info"},
    ),
    "patch": (
        ["patch", "{d}/old", "{d}/new.delta", "{d}/out", "--no-fsync", "-v"],
        {"pydelta.delta", "pydelta.sync", "pydelta.store", "pydelta.info"},
    ),
    "info": (
        ["info", "--json", "{d}/new.delta"],
        {"pydelta.delta", "pydelta.patch", "pydelta.sync", "pydelta.store"},
    ),
}


@pytest.mark.parametrize("verb", sorted(FAST_LINES))
def test_common_verbs_skip_typer(verb, made):
    line, unwanted = FAST_LINES[verb]
    mods = _modules_after(_run_main([a.format(d=made) for a in line]))
    assert "pydelta._cli_verbs" in mods  # the verb ran
    assert not (TYPER_SIDE | {"tqdm"} | unwanted) & mods


def test_sync_client_skips_typer(made):
    # ssh is 'false': the client starts, the connection fails (exit 6); what was loaded counts
    code = _run_main(["sync", "-e", "false", "-q", f"{made}/old", "host:/x"]).replace(
        "assert not e.code, e.code", "assert e.code == 6, e.code"
    )
    mods = _modules_after(code)
    assert "pydelta.sync.client" in mods
    assert not (TYPER_SIDE | {"tqdm", "pydelta.store", "pydelta._cli_verbs"}) & mods


def test_what_the_fast_path_imports_has_no_typer():
    mods = _modules_after("import pydelta._cliparse, pydelta._cli_verbs, pydelta._cliutil")
    assert not TYPER_SIDE & mods


def test_typer_takes_what_the_fast_path_does_not():
    mods = _modules_after(
        _run_main(["info", "--no-such-option", "x"]).replace("not e.code", "e.code == 2")
    )
    assert {"typer", "pydelta.cli"} <= mods


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


def test_value_classes_keep_the_dataclass_behaviour():
    from pydelta.formats.native import DeltaHeader
    from pydelta.formats.rdiff import RdiffSignatureInfo
    from pydelta.results import DeltaStats, FileInfo, PatchResult, SignatureInfo

    info = SignatureInfo(block_len=1024, strong_len=16, block_count=3, basis_size=3000, digest=b"d")
    assert info == SignatureInfo(1024, 16, 3, 3000, b"d") and hash(info) == hash(
        SignatureInfo(1024, 16, 3, 3000, b"d")
    )
    assert info != SignatureInfo(1024, 16, 3, 3001, b"d")
    assert repr(info) == (
        "SignatureInfo(block_len=1024, strong_len=16, block_count=3, basis_size=3000, "
        "digest=b'd', strong_hash='blake3')"
    )
    with pytest.raises(AttributeError):
        info.block_len = 1  # type: ignore[misc]
    assert PatchResult(5, b"x") == PatchResult(size=5, digest=b"x", verified=True)
    assert PatchResult(5, b"x") != (5, b"x", True)  # another type: never equal
    stats = DeltaStats(new_size=10)
    stats.copied += 4
    assert stats == DeltaStats(10, 4) and stats.as_dict()["copied"] == 4
    with pytest.raises(TypeError):
        hash(stats)
    a, b = FileInfo("delta"), FileInfo("delta")
    a.fields["x"] = 1
    assert b.fields == {} and a != b and str(a) == "pydelta delta\n  x  1"
    assert DeltaHeader(1024, 16, 5, b"s").flags == 0
    assert RdiffSignatureInfo(2048, 8, 1, "rabinkarp", "blake2").basis_size is None


def test_requests_round_trip_by_field():
    from pydelta.sync.messages import Bye, Get, Hello, Put, decode, encode

    put = Put("r", "p", mode=0o644, size=9, strong_len=8)
    assert encode(put) == {
        "op": "put",
        "root": "r",
        "path": "p",
        "mode": 0o644,
        "mtime_ns": None,
        "fsync": True,
        "size": 9,
        "cache": True,
        "strong_len": 8,
        "strong_hash": None,
    }
    for msg in (put, Hello(1, "v", ["links"]), Get("r", "p", follow=True), Bye()):
        assert decode(encode(msg)) == msg
    assert Bye() == Bye() and repr(Bye()) == "Bye()"
    assert {Put("r", "p"), Put("r", "p")} == {Put("r", "p")}


@pytest.mark.parametrize("verb", sorted(FAST_LINES))
def test_common_verbs_skip_dataclasses(verb, made):
    # dataclasses loads inspect (ast, dis, tokenize): ~10 ms before the work begins.
    # On the C backend: numba itself loads both (the numba pass runs this one on C too)
    line, _ = FAST_LINES[verb]
    mods = _modules_after(_run_main([a.format(d=made) for a in line]), PYDELTA_BACKEND="c")
    assert "pydelta._cli_verbs" in mods
    assert not {"dataclasses", "inspect"} & mods


def test_the_script_exits_without_collecting():
    # run() (the script's entry) freezes the heap once main() is done: the
    # interpreter's exit then skips traversing every imported object
    from importlib.metadata import entry_points

    eps = entry_points()
    scripts = (
        eps.select(group="console_scripts")
        if hasattr(eps, "select")
        else eps.get("console_scripts", [])
    )
    assert [e.value for e in scripts if e.name == "pydelta"] == ["pydelta.__main__:run"]
    code = (
        "import gc, sys\nsys.argv = ['pydelta', '--version']\n"
        "from pydelta.__main__ import run\n"
        "try:\n    run()\nexcept SystemExit as e:\n    assert not e.code\n"
        "print(gc.get_freeze_count() > 0)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.splitlines()[-1] == "True", out.stderr
