"""The README's Python samples: they type-check and they run.

Every ```python block of README.md is a sample. All of them together must
pass ``mypy --strict`` as written (the names a sample takes from its
surroundings - ``channel``, ``paramiko_client`` - are declared with the
types the text promises). Each sample also runs: the local ones as written
in a scratch directory, the ones that name a remote host with the host and
paths swapped for the loopback sshd (tests/sshd_server.py) or a local
``pydelta serve`` behind a stand-in for a paramiko client.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Dict, List, Tuple

import pytest
from conftest import rand_bytes

import pydelta

README = Path(__file__).resolve().parent.parent / "README.md"
PY = sys.executable
REMOTE_CMD = f"{PY} -m pydelta"


def samples() -> List[str]:
    """The ```python blocks of the README, in order."""
    text = README.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def sample_with(*needles: str) -> str:
    """The one sample that contains every needle."""
    found = [s for s in samples() if all(n in s for n in needles)]
    assert len(found) == 1, f"expected one README sample with {needles}, found {len(found)}"
    return found[0]


def test_readme_has_the_samples():
    assert len(samples()) >= 4


# ---------------------------------------------------------------- mypy --strict

#: What the samples take from the text around them (the names earlier samples
#: or the prose introduce), with the promised types.
PRELUDE = """\
import socket
from typing import Any

import pydelta

channel: socket.socket
paramiko_client: Any
"""


def typing_script() -> str:
    """Every sample as the body of its own function, after the prelude."""
    parts = [PRELUDE]
    for i, code in enumerate(samples()):
        body = "".join("    " + line if line.strip() else line for line in code.splitlines(True))
        parts.append(f"\n\ndef sample_{i}() -> None:\n{body}")
    return "".join(parts)


def mypy_strict(tmp_path: Path, name: str, code: str) -> Tuple[int, str]:
    """Run ``mypy --strict`` on code, against this checkout's pydelta (its
    own modules analysed for their types, errors reported for code only)."""
    api = pytest.importorskip("mypy.api")
    script = tmp_path / name
    script.write_text(code, encoding="utf-8")
    old = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(README.parent)
    try:
        out, err, status = api.run(
            [
                "--strict",
                "--follow-imports=silent",
                "--no-incremental",
                "--cache-dir",
                os.devnull,
                str(script),
            ]
        )
    finally:
        if old is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = old
    return status, out + err


def test_samples_pass_mypy_strict(tmp_path):
    status, report = mypy_strict(tmp_path, "readme_samples.py", typing_script())
    assert status == 0, report


def test_mypy_sees_the_real_types(tmp_path):
    """The check above means something: pydelta's types are found, not Any."""
    probe = PRELUDE + (
        "\n\nreveal_type(pydelta.signature('a'))\n"
        "reveal_type(pydelta.signature('a', 'b'))\n"
        "reveal_type(pydelta.signature('a', 'b', format='rdiff'))\n"
        "reveal_type(pydelta.delta('a', 'b'))\n"
        "reveal_type(pydelta.delta('a', 'b', 'c'))\n"
        "reveal_type(pydelta.blake3())\n"
        "reveal_type(pydelta.Patcher('a', 'b').result)\n"
    )
    _, report = mypy_strict(tmp_path, "probe.py", probe)
    revealed = re.findall(r'Revealed type is "([^"]+)"', report)
    assert revealed == [
        "bytes",
        "pydelta.results.SignatureInfo",
        "pydelta.formats.rdiff.RdiffSignatureInfo",
        "bytes",
        "pydelta.results.DeltaStats",
        "pydelta.backends.Hasher",
        "pydelta.results.PatchResult",
    ], report


# ---------------------------------------------------------------- running them


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def model_pair(n: int = 300_000) -> Tuple[bytes, bytes]:
    old = rand_bytes(n, 1)
    new = old[: n // 3] + rand_bytes(5_000, 2) + old[n // 2 :]
    return old, new


def run_sample(code: str, names: Dict[str, object]) -> Dict[str, object]:
    scope: Dict[str, object] = {"__name__": "readme_sample", "pydelta": pydelta, **names}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - our own README
    return scope


def test_api_sample_runs(scratch, capsys):
    old, new = model_pair()
    (scratch / "old.bin").write_bytes(old)
    (scratch / "new.bin").write_bytes(new)
    run_sample(sample_with("pydelta.patch(", "new.delta"), {})
    assert (scratch / "old.bin").read_bytes() == new
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"{len(new)} {pydelta.blake3_digest(new).hex()}"


def test_streaming_sample_runs_over_one_socket_each_way(scratch):
    """The sender/receiver sample over one socket pair: the receiver sends its
    signature and waits on the same connection for the delta; the sender
    reads the signature off the live connection (no end of input there)."""
    old, new = model_pair()
    code = sample_with("iter_delta", "Patcher")
    sender, receiver = code.split("# receiver:", 1)
    receiver = "# receiver:" + receiver
    sender_dir, receiver_dir = scratch / "sender", scratch / "receiver"
    sender_dir.mkdir()
    receiver_dir.mkdir()
    (sender_dir / "new.bin").write_bytes(new)
    (receiver_dir / "model.bin").write_bytes(old)
    a, b = socket.socketpair()
    errors: List[BaseException] = []

    def receiving_end() -> None:
        try:
            with b:
                run_sample(
                    receiver.replace('"model.bin"', repr(str(receiver_dir / "model.bin"))),
                    {"channel": b},
                )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=receiving_end)
    t.start()
    with a:
        run_sample(sender.replace('"new.bin"', repr(str(sender_dir / "new.bin"))), {"channel": a})
    t.join(60)
    assert not t.is_alive()
    assert not errors, errors
    assert (receiver_dir / "model.bin").read_bytes() == new


class LocalServeClient:
    """Stands in for a paramiko SSHClient: exec_command starts the command
    locally and hands back its pipes (as paramiko hands back channel files)."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def exec_command(self, command: str) -> Tuple[IO[bytes], IO[bytes], IO[bytes]]:
        assert command.endswith("pydelta serve"), command
        proc = subprocess.Popen(
            [PY, "-m", "pydelta", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        assert proc.stdin and proc.stdout and proc.stderr
        return proc.stdin, proc.stdout, proc.stderr


def test_sync_client_sample_runs_over_a_local_serve(scratch, capsys):
    code = sample_with("SyncClient")
    src = scratch / "llama-7b"
    src.mkdir()
    (src / "model.bin").write_bytes(model_pair()[1])
    ckpt = scratch / "remote" / "ckpt" / "run42"
    ckpt.mkdir(parents=True)
    (ckpt / "step1.bin").write_bytes(rand_bytes(10_000, 3))
    models = scratch / "remote" / "models" / "llama-7b"
    code = code.replace('"/models/llama-7b"', repr(str(models))).replace(
        '"/ckpt/run42"', repr(str(ckpt))
    )
    client = LocalServeClient()
    try:
        run_sample(code, {"pydelta": pydelta, "paramiko_client": client})
    finally:
        for proc in client.procs:
            proc.wait(30)
    assert (models / "model.bin").read_bytes() == (src / "model.bin").read_bytes()
    assert (scratch / "run42" / "step1.bin").read_bytes() == (ckpt / "step1.bin").read_bytes()


def test_sync_sample_runs_over_the_test_sshd(scratch, sshd, capsys):
    code = sample_with("pydelta.sync(")
    src = scratch / "llama-7b"
    src.mkdir()
    (src / "model.bin").write_bytes(model_pair()[1])
    remote = scratch / "remote" / "llama-7b"
    code = (
        code.replace('"gpu1:/models/llama-7b"', repr(sshd.target(remote)))
        .replace('ssh="ssh -p 2222"', f"ssh={sshd.ssh_cmd!r}")
        .replace('remote_cmd="~/venv/bin/pydelta"', f"remote_cmd={REMOTE_CMD!r}")
    )
    run_sample(code, {})
    assert (remote / "model.bin").read_bytes() == (src / "model.bin").read_bytes()
    out = capsys.readouterr().out
    assert "model.bin" in out
