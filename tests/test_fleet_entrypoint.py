"""examples/fleet: the container entrypoint run as a real process, configured
by environment variables only, and the Dockerfile and Kubernetes manifest
checked against it (docker itself is not needed)."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from pydelta.store import push

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "fleet")
ENTRYPOINT = os.path.join(EXAMPLES, "entrypoint.sh")
SMALL = dict(pack_size=256 << 10, chunk_avg=16 << 10, jobs=2)

# the "server": proves it was exec'd (same PID as the entrypoint) and sees the model
SERVER = [
    sys.executable,
    "-c",
    "import os, sys; d = os.environ['PYDELTA_DEST']; "
    "print('server', os.getpid(), sorted(os.listdir(d)), os.path.getsize(os.path.join(d, 'w.bin'))); "
    "sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)",
]


def _env(tmp_path, **kw) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYDELTA_")}
    bindir = os.path.dirname(sys.executable)  # the venv running the tests has the pydelta script
    if not os.path.exists(os.path.join(bindir, "pydelta")):
        bindir = os.path.dirname(shutil.which("pydelta") or "pydelta")
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYDELTA_CACHE_DIR"] = str(tmp_path / "cache")
    env.update(kw)
    return env


def _start(env, *args):
    p = subprocess.Popen(
        ["sh", ENTRYPOINT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = p.communicate(timeout=120)
    return p.pid, p.returncode, out, err


@pytest.fixture
def model_store(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    data = random.Random(1).randbytes(1 << 20)
    (src / "w.bin").write_bytes(data)
    (src / "config.json").write_bytes(b'{"layers": 2}\n')
    store = tmp_path / "store"
    push(src, store, tag="prod", **SMALL)
    return src, store


def test_entrypoint_pulls_then_execs_the_server(tmp_path, model_store):
    src, store = model_store
    dest = tmp_path / "volume" / "model"
    env = _env(
        tmp_path,
        PYDELTA_STORE=str(store),
        PYDELTA_DEST=str(dest),
        PYDELTA_TAG="prod",
        PYDELTA_JOBS="2",
    )
    pid, rc, out, err = _start(env, *SERVER)
    assert rc == 0, err
    line = [ln for ln in out.splitlines() if ln.startswith("server")][0]
    assert line.split()[1] == str(pid)  # exec'd: the server replaced the entrypoint
    assert "'config.json', 'w.bin'" in line
    assert (dest / "w.bin").read_bytes() == (src / "w.bin").read_bytes()
    assert "downloaded" in out
    # a restart finds the model in its volume: nothing but the tag is read
    pid, rc, out, err = _start(env, *SERVER)
    assert rc == 0, err
    assert "quick check" in out
    assert "downloaded 0 bytes" in out
    # the server's own exit status is the container's
    _, rc, _, _ = _start(env, *SERVER, "3")
    assert rc == 3


def test_entrypoint_new_version_fetches_only_the_difference(tmp_path, model_store):
    src, store = model_store
    dest = tmp_path / "volume" / "model"
    env = _env(tmp_path, PYDELTA_STORE=str(store), PYDELTA_DEST=str(dest), PYDELTA_TAG="prod")
    assert _start(env)[1] == 0  # no arguments: pull only (an initContainer)
    data = bytearray((src / "w.bin").read_bytes())
    data[500_000:520_000] = random.Random(2).randbytes(20_000)
    (src / "w.bin").write_bytes(bytes(data))
    push(src, store, tag="prod", **SMALL)
    _, rc, out, err = _start(env, *SERVER)
    assert rc == 0, err
    assert (dest / "w.bin").read_bytes() == bytes(data)
    got = int(
        [ln for ln in out.splitlines() if ln.startswith("downloaded")][0]
        .split()[1]
        .replace(",", "")
    )
    assert got < 200_000, out


def test_entrypoint_failures_do_not_start_the_server(tmp_path, model_store):
    _, store = model_store
    dest = tmp_path / "volume" / "model"
    # version missing: 11
    env = _env(tmp_path, PYDELTA_STORE=str(store), PYDELTA_DEST=str(dest), PYDELTA_TAG="nope")
    _, rc, out, err = _start(env, *SERVER)
    assert rc == 11 and "server" not in out
    assert "tag 'nope' is not in store" in err and "not starting the server" in err
    # store unreachable: 10
    env = _env(tmp_path, PYDELTA_STORE="http://127.0.0.1:9/models", PYDELTA_DEST=str(dest))
    _, rc, out, err = _start(env, *SERVER)
    assert rc == 10 and "server" not in out
    # no store configured: the shell says so
    env = _env(tmp_path, PYDELTA_DEST=str(dest))
    _, rc, out, err = _start(env, *SERVER)
    assert rc != 0 and "PYDELTA_STORE" in err


def test_entrypoint_near_store_from_the_environment(tmp_path, model_store):
    src, store = model_store
    mirror_dir = tmp_path / "node-cache"
    shutil.copytree(store, mirror_dir)
    dest = tmp_path / "volume" / "model"
    env = _env(
        tmp_path,
        PYDELTA_STORE=str(tmp_path / "not-mounted"),
        PYDELTA_NEAR=str(mirror_dir),
        PYDELTA_DEST=str(dest),
        PYDELTA_TAG="prod",
        PYDELTA_TIMEOUT="60",
    )
    _, rc, out, err = _start(env, *SERVER)
    assert rc == 0, err
    assert (dest / "w.bin").read_bytes() == (src / "w.bin").read_bytes()


def test_dockerfile_and_manifest_match_the_entrypoint():
    docker = open(os.path.join(EXAMPLES, "Dockerfile")).read()
    assert "COPY examples/fleet/entrypoint.sh /usr/local/bin/pydelta-entrypoint" in docker
    assert 'ENTRYPOINT ["/usr/local/bin/pydelta-entrypoint"]' in docker
    manifest = open(os.path.join(EXAMPLES, "kubernetes.yaml")).read()
    script = open(ENTRYPOINT).read()
    # the initContainer runs the entrypoint with no arguments: pull only
    init = manifest[manifest.index("initContainers:") : manifest.index("      containers:")]
    assert 'command: ["/usr/local/bin/pydelta-entrypoint"]' in init and "args:" not in init
    assert "mountPath: /models" in init and "value: /models/model" in init
    assert "volumeClaimTemplates:" in manifest
    # every setting the manifest passes is one the entrypoint documents
    names = set(re.findall(r"\b(PYDELTA_[A-Z_]+)\b", manifest))
    assert {"PYDELTA_STORE", "PYDELTA_TAG", "PYDELTA_DEST", "PYDELTA_NEAR"} <= names
    for name in names:
        assert name in script, name
    # and the CLI reads it (pull --help lists the environment)
    helptext = subprocess.run(
        [sys.executable, "-m", "pydelta", "pull", "--help"], capture_output=True, text=True
    ).stdout
    for name in names:
        assert name in helptext, name
