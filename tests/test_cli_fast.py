"""The fast parser (pydelta/_cliparse.py) against typer, on the same table.

Every command line goes through both: typer (the ``app``, with the verbs'
work replaced by a recorder) and the fast parser. Where the fast parser
takes a line, typer must make exactly the same call; where typer refuses a
line (usage error, help), the fast parser must leave it to typer. The
matrix is generated from the option table, so a new option is covered
without editing this file.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List, Optional, Tuple

import pytest
import typer.main

from pydelta import _cliopts, _cliparse
from pydelta._cliopts import Arg, Opt, Verb
from pydelta.cli import app

VALUES = {"int": ["7", "+7", "0"], "str": ["x y", "", "rdiff", "=v"], "multi": ["*.tmp", "a/"]}
BAD_INT = ["x", "1.5", "0x10", " 7", "٣", ""]


def _positional(verb: Verb) -> Tuple[List[str], List[str]]:
    """(required arguments, all arguments) as sample values."""
    args = [p for p in verb.params if isinstance(p, Arg)]
    names = [f"file{i}" for i in range(len(args))]
    return names[: sum(p.default is _cliopts.REQUIRED for p in args)], names


def _forms(opt: Opt) -> List[List[str]]:
    """Ways to give ``opt`` (valid or not) on a command line."""
    longs = [n for d in opt.names for n in d.split("/") if n.startswith("--")]
    shorts = [n for d in opt.names for n in d.split("/") if not n.startswith("--")]
    out: List[List[str]] = []
    if opt.kind in ("int", "str", "multi"):
        values = VALUES[opt.kind] + (BAD_INT + ["-1", "-"] if opt.kind == "int" else ["-e", "-"])
        for v in values:
            out += [[n, v] for n in longs] + [[f"{n}={v}" for n in longs]]
            out += [[n, v] for n in shorts] + [[f"{n}{v}"] for n in shorts]
        out += [[n] for n in longs + shorts]  # no value
        out += [[longs[0], "1", longs[0], "2"]]  # the last one counts
    else:
        out += [[n] for n in longs + shorts]
        out += [[f"{n}=1"] for n in longs]
        out += [[n, n] for n in longs]
        if shorts:
            out += [[shorts[0] * 2]]
    return out


def _matrix() -> List[List[str]]:
    lines: List[List[str]] = []
    for verb in _cliparse.VERBS.values():
        req, full = _positional(verb)
        v = [verb.name]
        lines += [v, v + req, v + full, v + full + ["extra"], v + req[:-1]]
        lines += [v + ["-"] + full[1:], v + ["--"] + full, v + req + ["--", "-q"]]
        lines += [v + req + ["--help"], v + ["-h"] + req, v + req + ["--bogus"], v + req + ["-Z"]]
        lines += [v + req + ["--qui"], v + ["-5"] + req[1:], v + [""] + req[1:]]
        for p in verb.params:
            if isinstance(p, Opt):
                for form in _forms(p):
                    lines += [v + req + form, v + form + full]
        flags = [
            p.names[-1]
            for p in verb.params
            if isinstance(p, Opt) and p.kind in ("flag", "count") and len(p.names[-1]) == 2
        ]
        if len(flags) >= 2:  # bundled short flags: -qv
            lines += [v + req + ["-" + "".join(f[1] for f in flags)]]
    lines += [
        ["signature", "a", "-qb4096"],
        ["signature", "a", "-qb", "4096", "-S8"],
        ["sync", "a", "h:b", "-nvi", "-ii", "--exclude", "x", "--include", "y", "-e", "ssh -p 2"],
        ["sync", "-lL", "a", "h:b", "--bwlimit=10M", "--no-refine", "--no-sig-cache"],
        ["delta", "s", "n", "-j", "2", "--no-compress", "--level", "19"],
        ["patch", "o", "d", "out", "--no-fsync", "--fsync", "-vq"],
        ["info", "--json", "-"],
        ["--version"],
        ["push", "a", "b"],
        ["serve"],
    ]
    return lines


_COMMAND = typer.main.get_command(app)  # built once: typer rebuilds it at every invoke


def _typer_call(argv: List[str], monkeypatch) -> Tuple[int, List[Tuple[str, Dict[str, Any]]]]:
    """(exit status, the verb calls typer made) for one command line."""
    calls: List[Tuple[str, Dict[str, Any]]] = []
    monkeypatch.setattr(_cliopts, "invoke", lambda verb, kw: calls.append((verb.name, kw)))
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            _COMMAND.main(args=argv, prog_name="pydelta", standalone_mode=False)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # click's usage errors (standalone_mode=False raises them)
            code = getattr(e, "exit_code", 1) or 2
    return code, calls


MATRIX = _matrix()


def test_the_matrix_covers_the_table():
    assert len(MATRIX) > 1000
    assert set(_cliparse.VERBS) == {"signature", "delta", "patch", "info", "sync"}


@pytest.mark.parametrize("start", range(0, len(MATRIX), 100))
def test_fast_parser_matches_typer(start, monkeypatch):
    monkeypatch.delenv(_cliparse.COMPLETE_ENV, raising=False)
    taken = 0
    for argv in MATRIX[start : start + 100]:
        fast = _cliparse.parse(argv)
        code, calls = _typer_call(argv, monkeypatch)
        if fast is not None:
            taken += 1
            assert code == 0 and calls == [(fast[0].name, fast[1])], argv
        if not calls:
            assert fast is None, argv
    assert taken > 0


COMMON = [
    ["signature", "old.bin", "old.sig"],
    ["signature", "-", "-b", "4096", "--format", "rdiff", "-q"],
    ["delta", "old.sig", "new.bin", "new.delta", "-v", "--no-compress"],
    ["delta", "-", "new.bin", "-j2", "--level=19"],
    ["patch", "old.bin", "new.delta", "old.bin", "--no-fsync"],
    ["info", "old.sig", "--json"],
    ["sync", "model.bin", "gpu1:/m/model.bin", "-e", "ssh -p 2222", "--delete", "-v"],
    ["sync", "-n", "--exclude", "*.tmp", "--include", "*.bin", "dir/", "h:dir", "-ii", "--stats"],
]


@pytest.mark.parametrize("argv", COMMON, ids=lambda a: " ".join(a))
def test_common_lines_take_the_fast_path(argv, monkeypatch):
    fast = _cliparse.parse(argv)
    assert fast is not None
    assert _typer_call(argv, monkeypatch) == (0, [(fast[0].name, fast[1])])


def test_completion_is_left_to_typer(monkeypatch):
    monkeypatch.setenv(_cliparse.COMPLETE_ENV, "complete_bash")
    assert _cliparse.parse(["info", "x"]) is None


def _run_main(argv: List[str], monkeypatch, capsys) -> Tuple[Optional[int], str]:
    import sys

    from pydelta import __main__ as entry

    monkeypatch.setattr(sys, "argv", ["pydelta", *argv])
    with pytest.raises(SystemExit) as exc:
        entry.main()
    return exc.value.code, capsys.readouterr().err


def test_fast_path_errors_as_typer(tmp_path, monkeypatch, capsys):
    # the same command, through __main__ (fast) and through typer: same line, same status
    missing = str(tmp_path / "missing.sig")
    fast = _run_main(["info", missing], monkeypatch, capsys)
    from pydelta import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["info", missing])
    typer_side = (exc.value.code, capsys.readouterr().err)
    assert fast == typer_side
    assert fast[0] == 1 and fast[1].startswith("pydelta: error: ") and "missing.sig" in fast[1]
