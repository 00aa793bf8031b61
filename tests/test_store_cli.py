"""The push, pull and ls commands (thin: the library does the work)."""

from __future__ import annotations

import random
import subprocess
import sys

from typer.testing import CliRunner

from pydelta.cli import app

runner = CliRunner()


def test_push_pull_ls(tmp_path):
    data = random.Random(1).randbytes(700_000)
    (tmp_path / "m.bin").write_bytes(data)
    st = str(tmp_path / "store")
    r = runner.invoke(app, ["push", str(tmp_path / "m.bin"), st, "--pack-size", "1", "-t", "v1"])
    assert r.exit_code == 0, r.output
    assert "tag v1" in r.output and "1 file, 700,000 bytes" in r.output
    r = runner.invoke(app, ["pull", st, str(tmp_path / "o.bin"), "-t", "v1", "-j", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.bin").read_bytes() == data
    assert "1 created" in r.output
    r = runner.invoke(app, ["pull", st, str(tmp_path / "o.bin"), "-t", "v1", "--quick"])
    assert "quick check" in r.output
    r = runner.invoke(app, ["ls", st])
    assert r.exit_code == 0 and "v1" in r.output and "700,000" in r.output
    r = runner.invoke(app, ["push", str(tmp_path / "m.bin"), st, "-n"])
    assert r.exit_code == 0 and "dry run" in r.output
    r = runner.invoke(app, ["pull", st, str(tmp_path / "n.bin"), "-t", "v1", "-n"])
    assert r.exit_code == 0 and "create  n.bin" in r.output
    assert not (tmp_path / "n.bin").exists()


def test_errors_are_one_line(tmp_path):
    st = tmp_path / "store"
    for args in (
        ["pull", str(st), str(tmp_path / "o")],
        ["ls", str(st)],
        ["push", str(tmp_path / "missing"), str(st)],
        ["pull", str(st), str(tmp_path / "o"), "-t", "../x"],
    ):
        p = subprocess.run([sys.executable, "-m", "pydelta", *args], capture_output=True, text=True)
        assert p.returncode != 0, args
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pydelta: error: "), (args, p.stderr)
