"""Tests of the ``pydelta`` command line (pydelta/cli.py).

Two ways in: typer's CliRunner on the ``app`` object (fast, in process) and
real subprocesses of ``python -m pydelta`` (real pipes, a real pty, real
exit codes and stderr).
"""

import json
import os
import pty
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # test the in-place build
    sys.path.insert(0, str(REPO))

import pydelta  # noqa: E402
from pydelta.cli import PROGRESS_THRESHOLD, app  # noqa: E402

ERR = "pydelta: error: "
TIMEOUT = 30


# -- helpers -------------------------------------------------------------------


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("PYDELTA_DEBUG", None)
    env.pop("PYDELTA_BACKEND", None)
    return env


CMD = [sys.executable, "-m", "pydelta"]


def run(*args, stdin=None, input=None, cwd=None):
    """Run ``python -m pydelta ARGS``; returns CompletedProcess with bytes stdout, str stderr."""
    p = subprocess.run(
        CMD + [str(a) for a in args],
        stdin=stdin,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=cwd,
        timeout=TIMEOUT,
    )
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


def popen(*args, **kw):
    return subprocess.Popen(CMD + [str(a) for a in args], env=_env(), **kw)


def assert_one_error(stderr, message, rc, want_rc=1):
    """stderr is exactly the one line 'pydelta: error: MESSAGE'."""
    assert rc == want_rc, stderr
    assert "Traceback" not in stderr
    assert stderr == f"{ERR}{message}\n"


def tmp_leftovers(directory):
    return [p.name for p in Path(directory).iterdir() if p.name.endswith(".pydelta-tmp")]


def parse_info(text):
    """'  key    value' lines of `pydelta info` into a dict."""
    lines = text.splitlines()
    fields = {}
    for line in lines[1:]:
        key, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        fields[key] = value
    return lines[0], fields


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def files(tmp_path):
    """old (256 KiB seeded random) and new (old with a replacement, insertion, append)."""
    rng = random.Random(1234)
    old = rng.randbytes(256 * 1024)
    new = bytearray(old)
    new[5000:5100] = rng.randbytes(100)  # replace
    new[100_000:100_000] = rng.randbytes(3000)  # insert
    new += rng.randbytes(777)  # append
    del new[200_000:200_500]  # delete
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(bytes(new))
    return tmp_path


@pytest.fixture
def made(files):
    """files plus old.sig and new.delta made with the library."""
    pydelta.signature(files / "old", files / "old.sig")
    pydelta.delta(files / "old.sig", files / "new", files / "new.delta")
    return files


# -- help and version ----------------------------------------------------------


@pytest.mark.parametrize("verb", [[], ["signature"], ["delta"], ["patch"], ["info"]])
def test_help_has_example(runner, verb):
    result = runner.invoke(app, verb + ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert "Usage:" in result.stdout


def test_main_help_shows_ssh_pipeline(runner):
    result = runner.invoke(app, ["--help"])
    assert (
        "ssh host pydelta signature f | pydelta delta - f.new | ssh host pydelta patch f - f"
        in (result.stdout)
    )
    for verb in ("signature", "delta", "patch", "info"):
        assert verb in result.stdout


def test_help_subprocess_and_no_args():
    p = run("--help")
    assert p.returncode == 0 and b"Example" in p.stdout and p.stderr == ""
    # no arguments at all: the help, not a traceback
    p = run()
    assert b"Usage:" in p.stdout + p.stderr.encode()
    assert "Traceback" not in p.stderr


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    line = f"pydelta {pydelta.__version__} (backend {pydelta.backend}"
    assert result.stdout.startswith(line) and result.stdout.count("\n") == 1
    if pydelta.backend == "c":  # and the SIMD kernels in use
        assert "blake3 " in result.stdout
    # a subprocess (on the default backend): -V is --version
    p, q = run("-V"), run("--version")
    assert p.returncode == q.returncode == 0
    assert p.stdout == q.stdout and p.stdout.startswith(f"pydelta {pydelta.__version__} (".encode())


# -- round trips ---------------------------------------------------------------


def test_round_trip_files(runner, files):
    old, new = files / "old", files / "new"
    sig, dlt, out = files / "old.sig", files / "new.delta", files / "out"
    for args in (
        ["signature", old, sig],
        ["delta", sig, new, dlt],
        ["patch", old, dlt, out],
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.stderr
        # nothing on stdout or stderr when writing to files
        assert result.stdout == "" and result.stderr == ""
    assert out.read_bytes() == new.read_bytes()
    assert sig.read_bytes() == pydelta.signature(old)
    assert not tmp_leftovers(files)


def test_quiet_beats_verbose(runner, made):
    args = ["delta", str(made / "old.sig"), str(made / "new"), str(made / "d")]
    result = runner.invoke(app, args + ["-v"])
    assert result.exit_code == 0 and result.stderr.startswith("pydelta: new ")
    result = runner.invoke(app, args + ["-v", "-q"])
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


def test_round_trip_stdout_and_stdin(runner, files):
    old, new = files / "old", files / "new"
    sig = runner.invoke(app, ["signature", str(old)])  # omitted output: stdout
    assert sig.exit_code == 0
    assert sig.stdout_bytes == pydelta.signature(old)
    dlt = runner.invoke(app, ["delta", "-", str(new), "-"], input=sig.stdout_bytes)
    assert dlt.exit_code == 0
    assert dlt.stdout_bytes == pydelta.delta(sig.stdout_bytes, new)
    res = runner.invoke(app, ["patch", str(old), "-"], input=dlt.stdout_bytes)
    assert res.exit_code == 0, res.stderr
    assert res.stdout_bytes == new.read_bytes()


def test_round_trip_subprocess_verbose(files):
    old, new = files / "old", files / "new"
    assert run("signature", old, files / "s", "--block-size", "2048").returncode == 0
    p = run("delta", files / "s", new, files / "d", "-v")
    assert p.returncode == 0 and p.stdout == b""
    stats = pydelta.delta(files / "s", new, files / "d2")
    line = (
        f"pydelta: new {stats.new_size} bytes, copied {stats.copied} "
        f"({100 * stats.copied / stats.new_size:.1f}%), literal {stats.literal} "
        f"({100 * stats.literal / stats.new_size:.1f}%), delta {stats.delta_size} bytes\n"
    )
    assert p.stderr == line
    assert stats.new_size == new.stat().st_size and stats.literal > 0 and stats.copied > 0
    p = run("patch", old, files / "d", files / "out")
    assert p.returncode == 0 and p.stderr == "" and p.stdout == b""
    assert (files / "out").read_bytes() == new.read_bytes()


def test_pipeline_real_pipes(files):
    """signature old | delta - new | patch old - out, three processes."""
    old, new, out = files / "old", files / "new", files / "out"
    p1 = popen("signature", old, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p2 = popen("delta", "-", new, stdin=p1.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p1.stdout.close()  # p2 owns it now
    p3 = popen(
        "patch", old, "-", out, stdin=p2.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p2.stdout.close()
    out3, err3 = p3.communicate(timeout=TIMEOUT)
    err2 = p2.stderr.read()
    err1 = p1.stderr.read()
    assert p2.wait(timeout=TIMEOUT) == 0, err2
    assert p1.wait(timeout=TIMEOUT) == 0, err1
    p1.stderr.close()
    p2.stderr.close()
    assert p3.returncode == 0, err3
    assert (out3, err3, err2, err1) == (b"", b"", b"", b"")
    assert out.read_bytes() == new.read_bytes()


def test_patch_in_place(made):
    old, new = made / "old", made / "new"
    p = run("patch", old, made / "new.delta", old)
    assert p.returncode == 0 and p.stderr == ""
    assert old.read_bytes() == new.read_bytes()
    assert not tmp_leftovers(made)


def test_patch_old_from_redirected_stdin(made):
    with open(made / "old", "rb") as fh:
        p = run("patch", "-", made / "new.delta", made / "out", stdin=fh)
    assert p.returncode == 0, p.stderr
    assert (made / "out").read_bytes() == (made / "new").read_bytes()


# -- info ----------------------------------------------------------------------


def test_info_signature(runner, files):
    sig = files / "old.sig"
    pydelta.signature(files / "old", sig, block_size=4096, strong_len=20)
    result = runner.invoke(app, ["info", str(sig)])
    assert result.exit_code == 0
    kind, f = parse_info(result.stdout)
    assert kind == "pydelta signature"
    assert f["block size"] == "4096"
    assert f["blocks"] == str(-(-256 * 1024 // 4096))
    assert f["basis size"] == str(256 * 1024)
    assert f["strong hash"] == "BLAKE3, 20 bytes"
    assert result.stdout == str(pydelta.info(sig)) + "\n"


def test_info_delta(runner, made):
    result = runner.invoke(app, ["info", str(made / "new.delta")])
    assert result.exit_code == 0
    kind, f = parse_info(result.stdout)
    assert kind == "pydelta delta"
    new_size = (made / "new").stat().st_size
    assert f["result size"] == str(new_size)
    assert f["basis size"] == str(256 * 1024)
    assert f["delta size"] == str((made / "new.delta").stat().st_size)
    assert int(f["copied bytes"]) + int(f["literal bytes"]) == new_size
    assert f["block size"] == str(pydelta.default_block_len(256 * 1024))


def test_info_stdin(runner, made):
    result = runner.invoke(app, ["info", "-"], input=(made / "new.delta").read_bytes())
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == str(pydelta.info(made / "new.delta")) + "\n"


# -- errors: one line, exit 1, no traceback ------------------------------------


def test_missing_input(files):
    missing = files / "missing.bin"
    p = run("signature", missing, files / "x.sig")
    assert_one_error(
        p.stderr, f"cannot open old file {missing}: No such file or directory", p.returncode
    )
    assert not (files / "x.sig").exists()
    p = run("delta", files / "nosig", files / "new", files / "x.delta")
    assert_one_error(
        p.stderr,
        f"cannot open signature {files / 'nosig'}: No such file or directory",
        p.returncode,
    )


def test_data_file_as_signature(files):
    old = files / "old"
    p = run("delta", old, files / "new", files / "x.delta")
    assert_one_error(
        p.stderr,
        f"{old} is not a pydelta signature: it is not a pydelta file; "
        "make one with 'pydelta signature OLD'",
        p.returncode,
        want_rc=3,
    )
    assert not (files / "x.delta").exists()


def test_delta_and_signature_swapped(made):
    sig, dlt = made / "old.sig", made / "new.delta"
    p = run("delta", dlt, made / "new", made / "x.delta")
    assert_one_error(
        p.stderr,
        f"{dlt} is not a pydelta signature: it is a pydelta delta (arguments in the wrong order?); "
        "make one with 'pydelta signature OLD'",
        p.returncode,
        want_rc=3,
    )
    p = run("patch", made / "old", sig, made / "out")
    assert_one_error(
        p.stderr,
        f"{sig} is not a pydelta delta: it is a pydelta signature (arguments in the wrong order?); "
        "make one with 'pydelta delta SIG NEW'",
        p.returncode,
        want_rc=3,
    )
    assert not (made / "out").exists()


def test_truncated_delta_leaves_target_alone(made):
    short = made / "short.delta"
    short.write_bytes((made / "new.delta").read_bytes()[:500])
    target = made / "out"
    target.write_bytes(b"precious")
    p = run("patch", made / "old", short, target)
    assert_one_error(
        p.stderr,
        f"delta {short} is truncated (ends after 500 bytes, before its end marker)",
        p.returncode,
        want_rc=3,
    )
    assert target.read_bytes() == b"precious"
    assert not tmp_leftovers(made)


def test_wrong_old_file(made):
    dlt = made / "new.delta"
    # a different size
    p = run("patch", made / "new", dlt, made / "out")
    assert_one_error(
        p.stderr,
        f"old file {made / 'new'} has {(made / 'new').stat().st_size} bytes but delta {dlt} "
        f"was made against a {256 * 1024}-byte file: patch the file the signature was made from",
        p.returncode,
        want_rc=4,
    )
    # the same size, other content: found when the result fails verification
    other = made / "other"
    other.write_bytes(random.Random(99).randbytes(256 * 1024))
    p = run("patch", other, dlt, other)  # in place: must leave it untouched
    assert_one_error(
        p.stderr,
        f"old file {other} is not the file the signature was made from (its content differs): "
        "make a new signature of it and a new delta",
        p.returncode,
        want_rc=4,
    )
    assert other.read_bytes() == random.Random(99).randbytes(256 * 1024)
    assert not tmp_leftovers(made)


def test_unwritable_output_directory(files):
    old = files / "old"
    gone = files / "no" / "such" / "dir"
    p = run("signature", old, gone / "x.sig")
    assert_one_error(
        p.stderr,
        f"cannot write signature {gone / 'x.sig'}: No such file or directory (in {gone})",
        p.returncode,
    )
    # a regular file used as a directory (refused even for root)
    p = run("signature", old, old / "x.sig")
    assert_one_error(
        p.stderr,
        f"cannot write signature {old / 'x.sig'}: Not a directory (in {old})",
        p.returncode,
    )


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_directory(files):
    ro = files / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        p = run("signature", files / "old", ro / "x.sig")
    finally:
        ro.chmod(0o755)
    assert_one_error(
        p.stderr,
        f"cannot write signature {ro / 'x.sig'}: Permission denied (in {ro})",
        p.returncode,
    )


def test_block_size_zero(files):
    p = run("signature", files / "old", files / "x.sig", "--block-size", "0")
    assert_one_error(
        p.stderr, "block size 0 is out of range: use 1..67108864 bytes", p.returncode, want_rc=2
    )
    assert not (files / "x.sig").exists()


@pytest.mark.parametrize("size", ["0", "-5", str((1 << 26) + 1), str(10**30)])
def test_bad_block_size_cli_runner(runner, files, size):
    result = runner.invoke(app, ["signature", str(files / "old"), str(files / "x.sig"), "-b", size])
    assert result.exit_code == 2  # a usage error
    assert result.stderr == f"{ERR}block size {size} is out of range: use 1..67108864 bytes\n"
    assert isinstance(result.exception, SystemExit)
    assert not (files / "x.sig").exists()


def test_bad_strong_len(files):
    p = run("signature", files / "old", files / "x.sig", "--strong-len", "4")
    want = "strong hash length 4 is out of range for XXH3-128: use 8..16 bytes"
    assert_one_error(p.stderr, want + " (up to 32 with BLAKE3: --hash blake3)", p.returncode, 2)
    p = run("signature", files / "old", files / "x.sig", "-S", "20", "--hash", "xxh3")
    want = "strong hash length 20 is out of range for XXH3-128: use 8..16 bytes"
    assert_one_error(p.stderr, want + " (up to 32 with BLAKE3: --hash blake3)", p.returncode, 2)
    p = run("signature", files / "old", files / "x.sig", "-S", "33", "--hash", "blake3")
    want = "strong hash length 33 is out of range for BLAKE3: use 8..32 bytes"
    assert_one_error(p.stderr, want, p.returncode, 2)


def test_signature_strong_hash_choice(files):
    """XXH3-128 by default, BLAKE3 on request or for sums over 16 bytes; `info` names it."""
    for args, title in (
        ((), "XXH3-128, 16 bytes"),
        (("--hash", "blake3"), "BLAKE3, 16 bytes"),
        (("-H", "xxh3", "-S", "8"), "XXH3-128, 8 bytes"),
        (("-S", "24"), "BLAKE3, 24 bytes"),
    ):
        p = run("signature", files / "old", files / "x.sig", *args)
        assert p.returncode == 0, p.stderr
        p = run("info", files / "x.sig")
        assert re.search(rf"strong hash +{title}\n", p.stdout.decode()), p.stdout
    for bad in ("md4", "sha1"):
        p = run("signature", files / "old", files / "x.sig", "--hash", bad)
        assert_one_error(p.stderr, f"unknown --hash {bad!r}: use xxh3 or blake3", p.returncode, 2)
    p = run("signature", "--format", "rdiff", files / "old", files / "x.sig", "--hash", "xxh3")
    assert p.returncode != 0 and "Traceback" not in p.stderr


def test_non_integer_block_size_is_usage_error(files):
    p = run("signature", files / "old", files / "x.sig", "--block-size", "big")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "--block-size" in p.stderr


def test_both_inputs_stdin(files):
    p = run("delta", "-", "-", files / "x", input=b"")
    assert_one_error(p.stderr, "SIG and NEW cannot both be standard input", p.returncode, want_rc=2)
    p = run("patch", "-", "-", files / "x", input=b"")
    assert_one_error(
        p.stderr, "OLD and DELTA cannot both be standard input", p.returncode, want_rc=2
    )


def test_patch_old_from_pipe(made):
    p = run("patch", "-", made / "new.delta", made / "out", input=(made / "old").read_bytes())
    assert_one_error(
        p.stderr,
        "old file <stdin> is not a regular file "
        "(patch reads it at random offsets; save it to a file first)",
        p.returncode,
    )


def test_info_on_data_file(files):
    p = run("info", files / "old")
    assert_one_error(
        p.stderr,
        f"{files / 'old'} is neither a pydelta signature nor a delta: it is not a pydelta file",
        p.returncode,
        want_rc=3,
    )


# -- terminals, pipes, signals ------------------------------------------------


@pytest.mark.parametrize(
    "verb, what",
    [
        (["signature", "-"], "signature"),
        (["delta", "{sig}", "-"], "delta"),
        (["patch", "{old}", "-"], "result"),
    ],
)
def test_refuses_binary_to_terminal(made, verb, what):
    """stdout a pty: refuse at once, before reading stdin (left open, never written)."""
    args = [a.format(sig=made / "old.sig", old=made / "old") for a in verb]
    master, slave = pty.openpty()
    try:
        proc = popen(*args, stdin=subprocess.PIPE, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = None
        try:
            # stdin stays open: reading it first would hang until the timeout
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("pydelta read its input before refusing the terminal")
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert_one_error(
        err.decode(),
        f"refusing to write binary {what} to a terminal; give an output file or redirect stdout",
        proc.returncode,
        want_rc=2,
    )


def test_terminal_ok_when_output_is_a_file(made):
    master, slave = pty.openpty()
    try:
        proc = popen(
            "signature", made / "old", made / "x.sig", stdout=slave, stderr=subprocess.PIPE
        )
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0 and err == b""
    assert (made / "x.sig").read_bytes() == (made / "old.sig").read_bytes()


def test_broken_pipe_is_quiet(made):
    """patch old delta | head -c 10: exit 141 (as if killed by SIGPIPE), nothing on stderr."""
    proc = popen(
        "patch", made / "old", made / "new.delta", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.read(10) == (made / "new").read_bytes()[:10]
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=TIMEOUT) == 141
    assert err == b""


def test_keyboard_interrupt(files):
    """SIGINT while reading a pipe: one line, exit 130, no temporary file left."""
    proc = popen(
        "signature",
        "-",
        files / "x.sig",
        "--progress",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # a runner started in the background (nohup, `&`) ignores SIGINT, and
        # Python keeps an ignored SIGINT ignored: the child would never see it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdin.write(b"x" * 100_000)
    proc.stdin.flush()
    # the progress bar appears once the command runs and is reading stdin
    os.set_blocking(proc.stderr.fileno(), False)
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while b"signature" not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read()
        seen += chunk or b""
        time.sleep(0.02)
    assert b"signature" in seen, seen
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    os.set_blocking(proc.stderr.fileno(), True)
    rest = proc.stderr.read()
    proc.stdin.close()
    proc.stderr.close()
    proc.stdout.close()
    assert proc.wait(timeout=TIMEOUT) == 130
    err = (seen + rest).decode()
    assert "Traceback" not in err
    assert err.rstrip("\n").splitlines()[-1].endswith(f"{ERR}interrupted")
    assert not (files / "x.sig").exists()
    assert not tmp_leftovers(files)


# -- progress and quiet --------------------------------------------------------


def test_progress_flags(runner, files):
    old, sig = str(files / "old"), str(files / "old.sig")
    result = runner.invoke(app, ["signature", old, sig, "--progress"])
    assert result.exit_code == 0
    assert "100%" in result.stderr and "signature" in result.stderr
    # default: stderr is not a terminal, so no bar
    result = runner.invoke(app, ["signature", old, sig])
    assert result.exit_code == 0 and result.stderr == ""
    # --quiet beats --progress
    result = runner.invoke(app, ["signature", old, sig, "--progress", "-q"])
    assert result.exit_code == 0 and result.stderr == ""
    result = runner.invoke(app, ["delta", sig, str(files / "new"), str(files / "d"), "--progress"])
    assert result.exit_code == 0 and "100%" in result.stderr
    result = runner.invoke(app, ["patch", old, str(files / "d"), str(files / "o"), "--progress"])
    assert result.exit_code == 0 and "100%" in result.stderr
    result = runner.invoke(app, ["patch", old, str(files / "d"), str(files / "o"), "--no-progress"])
    assert result.exit_code == 0 and result.stderr == ""
    assert (files / "o").read_bytes() == (files / "new").read_bytes()


def _stderr_on_pty(args):
    """Run pydelta with stderr on a pty (size 0x0, as a bare pty reports); returns (rc, text)."""
    master, slave = pty.openpty()
    try:
        proc = popen(*args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    finally:
        os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=TIMEOUT), out.decode("utf-8", "replace")


def test_progress_default_on_terminal_for_large_input(files):
    big = files / "big"
    with open(big, "wb") as fh:  # sparse: cheap to make, 64 MiB to read
        fh.truncate(PROGRESS_THRESHOLD)
    rc, text = _stderr_on_pty(["signature", big, files / "big.sig", "--block-size", "65536"])
    assert rc == 0
    assert "signature: 100%" in text and "Traceback" not in text
    # a small input on the same kind of terminal: no bar
    rc, text = _stderr_on_pty(["signature", files / "old", files / "old.sig"])
    assert rc == 0 and text == ""


# -- scripting: exit codes, -v, --json, completion, /dev/null (issue 15) -------


def test_exit_codes_are_documented_in_help(runner):
    text = runner.invoke(app, ["--help"]).stdout
    for code in ("2 usage", "3 bad input", "4 wrong old file", "5", "6 remote", "7 some files"):
        assert code in text
    assert "--install-completion" in text


def test_level_out_of_range_is_our_one_line_usage_error(made):
    p = run("delta", "--level", "30", made / "old.sig", made / "new", made / "x")
    assert_one_error(
        p.stderr, "compression level 30 is out of range: use 1..22", p.returncode, want_rc=2
    )
    assert not (made / "x").exists()


def test_swapped_delta_arguments_get_a_hint(made):
    p = run("delta", made / "new", made / "old.sig", made / "x")
    assert p.returncode == 3 and p.stderr.count("\n") == 1
    assert "wrong order?" in p.stderr and "'pydelta delta SIG NEW'" in p.stderr


def test_verbose_signature_and_patch(made):
    p = run("signature", "-v", made / "old", made / "s.sig")
    assert p.returncode == 0
    assert (
        p.stderr == "pydelta: old 262144 bytes, 256 blocks of 1024 bytes, 16-byte strong hashes\n"
    )
    p = run("patch", "-v", made / "old", made / "new.delta", made / "out")
    new = (made / "new").read_bytes()
    assert p.returncode == 0
    assert p.stderr == (
        f"pydelta: result {len(new)} bytes, BLAKE3 {pydelta.blake3_digest(new).hex()} (verified)\n"
    )
    p = run("patch", "-v", "-q", made / "old", made / "new.delta", made / "out")
    assert p.returncode == 0 and p.stderr == ""


def test_info_json_and_quiet(made):
    p = run("info", "--json", "-q", made / "new.delta")
    assert p.returncode == 0 and p.stderr == ""
    obj = json.loads(p.stdout)
    new = (made / "new").read_bytes()
    assert obj["format"] == "pydelta" and obj["kind"] == "delta"
    assert obj["result_size"] == len(new)
    assert obj["result_digest"] == pydelta.blake3_digest(new).hex()


def test_dev_null_is_the_empty_basis(files):
    new = (files / "new").read_bytes()
    pydelta.signature(os.devnull, files / "empty.sig")
    pydelta.delta(files / "empty.sig", files / "new", files / "lit.delta")
    p = run("patch", os.devnull, files / "lit.delta", files / "out")
    assert p.returncode == 0, p.stderr
    assert (files / "out").read_bytes() == new
    # a delta that copies from a real basis is refused: wrong basis, exit 4
    pydelta.signature(files / "old", files / "old.sig")
    pydelta.delta(files / "old.sig", files / "new", files / "new.delta")
    p = run("patch", os.devnull, files / "new.delta", files / "out2")
    assert p.returncode == 4 and p.stderr.count("\n") == 1
    assert not (files / "out2").exists()


def test_shell_completion_script():
    # The shell is named, not detected from the process tree: a runner
    # started outside a shell (a service, setsid) has no shell to detect.
    env = dict(_env(), _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    p = subprocess.run(
        CMD + ["--show-completion", "bash"], capture_output=True, env=env, timeout=TIMEOUT
    )
    assert p.returncode == 0 and b"_pydelta_completion" in p.stdout


def test_unknown_backend_is_one_line(files):
    env = dict(_env(), PYDELTA_BACKEND="foo")
    p = subprocess.run(
        CMD + ["signature", str(files / "old"), str(files / "x.sig")],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert_one_error(
        p.stderr,
        "unknown PYDELTA_BACKEND 'foo': use one of c, numba (or leave it unset)",
        p.returncode,
        want_rc=2,
    )
    p = subprocess.run(CMD + ["-V"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert p.returncode == 0 and "unknown PYDELTA_BACKEND 'foo'" in p.stdout


NO_BACKEND = """\
import sys
sys.modules["pydelta._core"] = None  # the C core not built
sys.modules["numba"] = None  # and no numba
sys.argv = ["pydelta", *sys.argv[1:]]
from pydelta.__main__ import main
main()
"""


def test_no_backend_is_one_line_and_version_still_works(files):
    def pd(*args):
        return subprocess.run(
            [sys.executable, "-c", NO_BACKEND, *map(str, args)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=TIMEOUT,
        )

    p = pd("signature", files / "old", files / "x.sig")
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"{ERR}no backend: pydelta's C core is not built")
    assert "pip install 'pydelta-sync[numba]'" in p.stderr
    p = pd("--version")
    assert p.returncode == 0 and p.stdout.startswith(f"pydelta {pydelta.__version__} (no backend")


NUMBA_FALLBACK = """\
import sys
sys.modules["pydelta._core"] = None  # the C core not built: numba stands in
sys.argv = ["pydelta", *sys.argv[1:]]
from pydelta.__main__ import main
main()
"""


def test_numba_fallback_says_so_once_and_q_silences_it(made):
    pytest.importorskip("numba")

    def pd(*args):
        return subprocess.run(
            [sys.executable, "-c", NUMBA_FALLBACK, *map(str, args)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=600,
        )

    p = pd("patch", made / "old", made / "new.delta", made / "out")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("\n") == 1
    assert p.stderr.startswith("pydelta: warning: C core not available")
    assert "using the numba backend" in p.stderr
    p = pd("patch", "-q", made / "old", made / "new.delta", made / "out")
    assert p.returncode == 0 and p.stderr == ""
    assert (made / "out").read_bytes() == (made / "new").read_bytes()
