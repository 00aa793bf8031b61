"""Time and peak memory of the hostile-input reproducers of issue 10.

    .venv/bin/python bench/hostile_repro.py [--cap-mib 1536] [--only NAME]

Each reproducer runs in a fresh Python under a watchdog (tests/evil_peer.py
``run_guarded``): killed once it grows past ``--cap-mib`` of resident memory
or runs for 120 s, so a blow-up is reported as "killed at N MiB after T s"
instead of taking the machine down. Prints one line per reproducer: wall
time, memory growth after start-up, and how it ended. The same inputs are
the regression tests in tests/test_hostile.py (with a tight bound there).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import evil_peer as E  # noqa: E402

MiB = 1 << 20


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def repro_diagnosis(d: str) -> str:
    """Item 2: a 107-byte delta (block_len 1, wrong END digest) against 16 MiB."""
    n = 16 * MiB
    old = _write(os.path.join(d, "old"), os.urandom(n))
    delta = _write(
        os.path.join(d, "d"),
        E.native_delta(n, [E.copy_op(0, n)], end=E.end_op(n, bytes(32)), block_len=1),
    )
    return f"""
import pydelta
ready()
try:
    pydelta.patch({old!r}, {delta!r}, {os.path.join(d, "out")!r})
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:160])
"""


def repro_client_endless(d: str) -> str:
    """Item 3: an endless signature stream to a pushing client."""
    src = _write(os.path.join(d, "src"), os.urandom(100_000))
    return f"""
import pydelta, evil_peer as E
def script(p):
    E.answer_until(p, "put", {{"stat": {{"ok": True, "type": "missing"}}}})
    p.send_json({{"ok": True, "have": True}})
    p.endless(b"\\0" * (1 << 20))
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.push({src!r}, "remote/f.bin")
    print("OK")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:160])
"""


def repro_server_endless(d: str) -> str:
    """Item 3: an endless signature stream to a serving end (a 'get')."""
    _write(os.path.join(d, "f.bin"), os.urandom(100_000))
    return f"""
import os, threading, pydelta, evil_peer as E
c2s_r, c2s_w = os.pipe(); s2c_r, s2c_w = os.pipe()
def client():
    p = E.Frames(os.fdopen(s2c_r, "rb", buffering=0), os.fdopen(c2s_w, "wb", buffering=0))
    try:
        p.raw(E.MAGIC); p.send_json({{"op": "hello", "proto": 1}})
        p.expect_magic(); p.recv_json()
        p.send_json({{"op": "get", "root": {d!r}, "path": "f.bin"}})
        p.recv_json()
        p.endless(b"\\0" * (1 << 20))
    except E.PeerGone:
        pass
threading.Thread(target=client, daemon=True).start()
ready()
try:
    pydelta.serve(os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
    print("RETURNED")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:160])
"""


def repro_frame_claim(d: str) -> str:
    """Item 3: a 5-byte frame header claiming 256 MiB, then 1.5 s of silence."""
    return """
import time, pydelta, evil_peer as E
def script(p):
    p.recv_json()
    p.frame(E.JSON, b"{", claim=(256 << 20) - 1)
    time.sleep(1.5)
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.pull("x", "y")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:160])
"""


def repro_disk(d: str) -> str:
    """Item 4: 256 'Z' ops of 4 MiB zeros (1 GiB from ~60 KB) for a pull announced as 4 bytes."""
    delta = _write(
        os.path.join(d, "evil.delta"),
        E.native_delta(0, [E.zero_z_op()] * 256, b"abcd", flags=1)[
            60:
        ],  # header made per signature
    )
    dest = os.path.join(d, "dest")
    os.mkdir(dest)
    meta = {"ok": True, "type": "file", "size": 4, "mode": 0o644, "mtime_ns": 0}
    return f"""
import os, pydelta, evil_peer as E
delta = open({delta!r}, "rb").read()
print("delta bytes", len(delta))
def script(p):
    while True:
        m = p.recv_json()
        if m["op"] == "get":
            p.send_json({meta!r}); sig = p.recv_stream()
            p.send_stream(E.delta_header(0, flags=1, sig_digest=sig[-36:-4]) + delta)
        elif m["op"] == "stat":
            p.send_json({meta!r})
        elif m["op"] == "bye":
            p.send_json({{"ok": True}}); return
        else:
            p.send_json({{"ok": True}})
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.pull("src.bin", {os.path.join(dest, "f.bin")!r})
    print("OK")
except pydelta.SyncError as e:
    print("ERR", " | ".join(f.message for f in e.report.failed)[:160] if e.report else e)
"""


def _sig_code(sig: bytes, d: str) -> str:
    new = _write(os.path.join(d, "new"), os.urandom(3 * MiB))
    return f"""
import pydelta
ready()
try:
    pydelta.delta(bytes.fromhex({sig.hex()!r}), {new!r}, {os.path.join(d, "out")!r})
    print("OK")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:160])
"""


def repro_rdiff_block(d: str) -> str:
    """Item 8: a 12-byte rdiff signature with block_len 2**26, 3 MiB NEW."""
    return _sig_code(b"rs\x01G" + (1 << 26).to_bytes(4, "big") + (32).to_bytes(4, "big"), d)


def repro_native_block(d: str) -> str:
    """Item 8: an empty native signature with block_len 2**26, 3 MiB NEW."""
    import pydelta

    head = struct.pack("<4sBBBBII", b"PDSG", 1, 1, 1, 16, 1 << 26, 0)
    body = struct.pack("<QQ", 0, 0)
    return _sig_code(head + body + pydelta.blake3_digest(head + body) + b"PDSE", d)


REPROS = {
    "diagnosis": (repro_diagnosis, None),
    "client-endless-sig": (repro_client_endless, None),
    "server-endless-sig": (repro_server_endless, None),
    "frame-claims-256MiB": (repro_frame_claim, None),
    "disk-4-bytes-announced": (repro_disk, 1 << 30),
    "rdiff-block-2^26": (repro_rdiff_block, None),
    "native-block-2^26": (repro_native_block, None),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap-mib", type=int, default=1536, help="kill past this much growth")
    ap.add_argument("--only", help="run one reproducer")
    args = ap.parse_args()
    for name, (make, fsize) in REPROS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory() as d:
            g = E.run_guarded(make(d), max_growth_mib=args.cap_mib, timeout=120, fsize=fsize)
        how = g.killed or (g.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(
            f"{name:24s} {g.seconds:6.2f}s  grew {g.grew_kib / 1024:7.1f} MiB  {how[:110]}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
