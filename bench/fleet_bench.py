"""Fleet simulation: N puller processes against one store, and the cost of gc.

    .venv/bin/python bench/fleet_bench.py                       # 256 MiB, 8 pullers
    .venv/bin/python bench/fleet_bench.py --size 64 --pullers 4 --stores local

For each store (the local-directory store; moto's S3 server in its own
process on loopback; the local store served over HTTP by a stdlib server
with Range support, in its own process), with a model pushed as v1 and a
fine-tuned v2 (bench/modelgen.py: grown header, some tensors rewritten):

* whole-file baseline: N processes each downloading the whole v2 file with
  the S3 client (boto3, one plain streamed GET: the fastest whole-file path
  on moto) - or, for the other stores, a plain copy / one HTTP GET;
* "from empty": N pullers, each into its own empty directory (N nodes);
* "from previous": N pullers, each holding v1 already (a persistent volume);
* "one node": N pullers into the SAME directory at once (one node cache):
  the lock lets one download and the others find it ready.

Reported: wall time from the common start to the last finish, and the total
bytes fetched from the store (the sum of the pullers' own counts).

gc cost: a store with many versions (each different from the
last: 20% rewritten), then gc with nothing to do, gc --keep-last 5 (deletes versions and
condemns packs) and the run after the grace period (deletes packs) - wall
time and objects listed.

moto is for behaviour, not speed (its ranged GETs cost more as objects
grow): figures marked moto are relative, see docs in /work/shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

PULLER = r"""
import json, os, sys, time
go = sys.argv[1]
spec = json.loads(sys.argv[2])
import pydelta
import pydelta.store.pull, pydelta.store.s3, boto3, urllib.request  # imports before the start
open(f"{go}.ready.{os.getpid()}", "wb").close()
while not os.path.exists(go):
    time.sleep(0.002)
t0 = time.time()
if spec["mode"] == "pull":
    r = pydelta.pull(spec["store"], spec["dest"], tag=spec["tag"], jobs=spec["jobs"],
                     endpoint_url=spec.get("endpoint"))
    out = {"bytes": r.downloaded_bytes, "fetched": r.fetched_chunks, "quick": r.quick}
elif spec["mode"] == "s3":
    import boto3
    c = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1")
    body = c.get_object(Bucket=spec["bucket"], Key=spec["key"])["Body"]
    n = 0
    with open(spec["dest"], "wb") as fh:
        for block in iter(lambda: body.read(8 << 20), b""):
            fh.write(block)
            n += len(block)
    out = {"bytes": n}
elif spec["mode"] == "http":
    import urllib.request
    n = 0
    with urllib.request.urlopen(spec["url"]) as resp, open(spec["dest"], "wb") as fh:
        for block in iter(lambda: resp.read(8 << 20), b""):
            fh.write(block)
            n += len(block)
    out = {"bytes": n}
else:
    shutil_ = __import__("shutil")
    shutil_.copyfile(spec["src"], spec["dest"])
    out = {"bytes": os.path.getsize(spec["dest"])}
out["t0"], out["t1"] = t0, time.time()
print(json.dumps(out))
"""


def run_fleet(specs: List[Dict[str, Any]], work: str, env: Dict[str, str]) -> Dict[str, Any]:
    """Start one process per spec, release them together, wait for all."""
    go = os.path.join(work, f"go-{time.monotonic_ns()}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PULLER, go, json.dumps(s)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for s in specs
    ]
    while True:  # every interpreter up, imports done, waiting
        ready = [f for f in os.listdir(work) if f.startswith(os.path.basename(go) + ".ready.")]
        if len(ready) == len(procs):
            break
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(p.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
        time.sleep(0.02)
    for f in ready:
        os.unlink(os.path.join(work, f))
    open(go, "wb").close()
    t0 = time.time()
    outs = []
    for p in procs:
        so, se = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(se.decode()[-2000:])
        outs.append(json.loads(so.decode().strip().splitlines()[-1]))
    os.unlink(go)
    wall = max(o["t1"] for o in outs) - t0
    return {
        "wall": wall,
        "bytes": sum(o["bytes"] for o in outs),
        "downloaders": sum(1 for o in outs if o.get("fetched", 1)),
        "waited": sum(1 for o in outs if o.get("quick")),
    }


def dirs(
    work: str, name: str, n: int, seed_from: Optional[str] = None, fname: str = "model.safetensors"
) -> List[str]:
    out = []
    for i in range(n):
        d = os.path.join(work, f"{name}-{i}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        if seed_from:
            shutil.copyfile(seed_from, os.path.join(d, fname))
        out.append(os.path.join(d, fname))
    return out


def fleet_rows(
    kind: str,
    url: str,
    endpoint: Optional[str],
    baseline: List[Dict[str, Any]],
    old: str,
    a,
    work: str,
    env,
    log,
) -> List[Dict[str, Any]]:
    rows = []
    size = os.path.getsize(old)
    n = a.pullers

    def row(case: str, res: Dict[str, Any], ideal: int) -> None:
        r = {
            "store": kind,
            "case": case,
            "pullers": n,
            "wall": res["wall"],
            "bytes": res["bytes"],
            "ideal": ideal,
            "downloaders": res.get("downloaders"),
            "waited": res.get("waited"),
        }
        log(f"  {kind:6} {case:28} {res['wall']:7.2f} s  {res['bytes'] / 2**20:9.1f} MiB")
        rows.append(r)

    row("whole file (baseline)", run_fleet(baseline, work, env), n * size)
    common = {"mode": "pull", "store": url, "tag": "v2", "jobs": a.jobs, "endpoint": endpoint}
    specs = [dict(common, dest=d) for d in dirs(work, f"{kind}-empty", n)]
    row("pydelta, from empty", run_fleet(specs, work, env), n * size)
    specs = [dict(common, dest=d) for d in dirs(work, f"{kind}-prev", n, seed_from=old)]
    row("pydelta, from previous", run_fleet(specs, work, env), 0)
    shared = dirs(work, f"{kind}-node", 1)[0]
    specs = [dict(common, dest=shared) for _ in range(n)]
    row("pydelta, one node (shared)", run_fleet(specs, work, env), size)
    for d in os.listdir(work):
        if d.startswith(f"{kind}-"):
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    return rows


def gc_rows(
    kind: str, url: str, endpoint: Optional[str], a, work: str, log
) -> List[Dict[str, Any]]:
    import random

    import pydelta
    from pydelta.store.gc import gc

    kw = {"endpoint_url": endpoint} if endpoint else {}
    r = random.Random(5)
    if url.startswith("/"):
        shutil.rmtree(url, ignore_errors=True)  # a fresh store, whatever ran before
    data = bytearray(r.randbytes(int(a.gc_size * 2**20)))
    src = os.path.join(work, "gc-model.bin")
    t0 = time.monotonic()
    for i in range(a.gc_versions):
        n = len(data) // 5
        at = r.randrange(0, len(data) - n)
        data[at : at + n] = r.randbytes(n)
        with open(src, "wb") as fh:
            fh.write(data)
        pydelta.push(src, url, tag=f"v{i}", pack_size=4 << 20, jobs=4, **kw)
    push_s = time.monotonic() - t0
    log(f"  {kind}: {a.gc_versions} versions pushed in {push_s:.1f} s")
    out = []
    cache = os.environ.get("PYDELTA_CACHE_DIR")
    for case, args in (
        ("nothing to delete (cold cache)", dict()),
        ("nothing to delete (warm cache)", dict()),
        ("--keep-last 5 (delete versions, condemn)", dict(keep_last=5)),
        ("after the grace period (delete packs)", dict(keep_last=5)),
    ):
        if case.startswith("nothing") and "cold" in case and cache:
            shutil.rmtree(os.path.join(cache, "manifests"), ignore_errors=True)
        t0 = time.monotonic()
        rep = gc(url, grace=0, jobs=8, **kw, **args)
        s = time.monotonic() - t0
        log(
            f"  {kind:6} gc {case:42} {s:6.2f} s  ({len(rep.versions_deleted)} versions, "
            f"{rep.packs_condemned} condemned, {rep.packs_deleted} deleted, {rep.packs_repacked} repacked)"
        )
        out.append(
            {
                "store": kind,
                "case": case,
                "versions": a.gc_versions,
                "seconds": s,
                "versions_deleted": len(rep.versions_deleted),
                "condemned": rep.packs_condemned,
                "deleted": rep.packs_deleted,
                "repacked": rep.packs_repacked,
                "bytes_deleted": rep.bytes_deleted,
            }
        )
    return out


def markdown(rows, gcs, a, size: int) -> str:
    lines = [
        f"# Fleet benchmark: {a.pullers} pullers, {size / 2**20:.0f} MiB model ({a.kind} pair)",
        "",
        f"Machine: {os.cpu_count()} cores (shared with other work); every puller is its own process "
        f"(`-j {a.jobs}`), all released at once; the store and its server run on the same machine "
        "(loopback). moto is slow at ranged GETs; its figures compare like with like only.",
        "",
        "| store | case | wall (s) | fetched (MiB) | whole-file equivalent (MiB) | downloaders / waited |",
        "|---|---|---:|---:|---:|---|",
    ]
    if not rows:
        lines = [f"# Fleet benchmark: gc cost (machine: {os.cpu_count()} cores, shared)"]
    for r in rows:
        who = (
            ""
            if r["downloaders"] is None or r["case"].startswith("whole")
            else f"{r['downloaders']} / {r['waited']}"
        )
        lines.append(
            f"| {r['store']} | {r['case']} | {r['wall']:.2f} | {r['bytes'] / 2**20:,.1f} | "
            f"{r['pullers'] * size / 2**20:,.0f} | {who} |"
        )
    if gcs:
        lines += [
            "",
            f"## gc on a store with {a.gc_versions} versions ({a.gc_size:g} MiB each, "
            "20% rewritten per version)",
            "",
            "| store | run | seconds | versions deleted | packs condemned | packs deleted | repacked |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for g in gcs:
            lines.append(
                f"| {g['store']} | {g['case']} | {g['seconds']:.2f} | {g['versions_deleted']} | "
                f"{g['condemned']} | {g['deleted']} | {g['repacked']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=256, help="model size in MiB")
    ap.add_argument("--kind", default="finetune", help="bench/modelgen.py pair for v1 -> v2")
    ap.add_argument("--pullers", type=int, default=8, help="0: only the gc measurement")
    ap.add_argument("--jobs", type=int, default=4, help="parallel requests per puller")
    ap.add_argument("--stores", default="local,http,moto")
    ap.add_argument("--gc-versions", type=int, default=50, help="0: no gc measurement")
    ap.add_argument("--gc-size", type=float, default=8, help="MiB per version in the gc store")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="fleet-bench-")
    os.makedirs(work, exist_ok=True)
    os.environ.setdefault("PYDELTA_CACHE_DIR", os.path.join(work, "cache"))
    for k, v in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    from store_bench import Moto, make_pairs

    import pydelta

    old, new = make_pairs(work, a.size, [a.kind], log)[a.kind]
    size = os.path.getsize(new)
    rows: List[Dict[str, Any]] = []
    gcs: List[Dict[str, Any]] = []
    stores = a.stores.split(",")
    local = os.path.join(work, "store")
    shutil.rmtree(local, ignore_errors=True)
    pydelta.push(old, local, tag="v1")
    pydelta.push(new, local, tag="v2")
    if "local" in stores and a.pullers:
        base = [
            {"mode": "copy", "src": new, "dest": d} for d in dirs(work, "local-base", a.pullers)
        ]
        rows += fleet_rows("local", local, None, base, old, a, work, env, log)
    if "local" in stores:
        if a.gc_versions:
            gcs += gc_rows("local", os.path.join(work, "gc-store"), None, a, work, log)
    if "http" in stores and a.pullers:
        srv = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "http_range_server.py"), local, "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        url = srv.stdout.readline().strip()  # type: ignore[union-attr]
        whole = os.path.join(local, "whole.bin")  # the whole file, served beside the store
        if not os.path.exists(whole):
            os.link(new, whole)
        try:
            base = [
                {"mode": "http", "url": url + "/whole.bin", "dest": d}
                for d in dirs(work, "http-base", a.pullers)
            ]
            rows += fleet_rows("http", url, None, base, old, a, work, env, log)
        finally:
            srv.terminate()
            srv.wait()
            os.unlink(whole)
    if "moto" in stores:
        moto = Moto()
        try:
            bucket = moto.bucket()
            url = f"s3://{bucket}/llama"
            pydelta.push(old, url, tag="v1", endpoint_url=moto.url)
            pydelta.push(new, url, tag="v2", endpoint_url=moto.url)
            moto.client.upload_file(new, bucket, "whole/model.safetensors")
            base = (
                []
                if not a.pullers
                else [
                    {
                        "mode": "s3",
                        "endpoint": moto.url,
                        "bucket": bucket,
                        "key": "whole/model.safetensors",
                        "dest": d,
                    }
                    for d in dirs(work, "moto-base", a.pullers)
                ]
            )
            if a.pullers:
                rows += fleet_rows("moto", url, moto.url, base, old, a, work, env, log)
            if a.gc_versions:
                gcs += gc_rows("moto", f"s3://{moto.bucket()}/gc", moto.url, a, work, log)
        finally:
            moto.close()
    md = markdown(rows, gcs, a, size)
    print(md)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(
        a.out,
        f"fleet_bench-{a.size:g}M-{a.pullers}p"
        if a.pullers
        else f"fleet_bench-gc-{a.gc_versions}v",
    )
    with open(stem + ".md", "w") as fh:
        fh.write(md)
    with open(stem + ".json", "w") as fh:
        json.dump({"rows": rows, "gc": gcs, "size": size, "args": vars(a)}, fh, indent=1)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
