"""Model store benchmark: pydelta push/pull vs whole files vs a fixed-size split.

For each model-like pair (bench/modelgen.py: finetune with a grown header,
append, retune, identical) and a multi-file model folder, on each store
(the local-directory store, and moto's S3 server in its own process on
loopback), side by side in one run:

* **pydelta**: push OLD, then push NEW (bytes uploaded, time); pull NEW into
  a DEST that holds OLD (bytes downloaded, time); pull NEW into an empty
  DEST (time);
* **fixed**: the naive scheme - fixed-size pieces + checksums + a manifest,
  with the same pack size, parallelism, compression and ranged GETs (it is
  pydelta with min = avg = max chunk size, so only the chunking differs);
* **whole**: the whole file with the S3 client (boto3 ``upload_file``:
  multipart, parallel; download: one plain GET streamed to disk, moto's
  fastest path), or a plain file copy for the local store.

Every measured operation runs in a child process; its wall time and peak
RSS (``wait4``) are recorded. Plus: ``--quick-gib N`` times an up-to-date
``pull --quick`` of an N GiB folder (sparse files), and ``--sweep`` measures
the average chunk size trade-off (second-push bytes vs chunk count and
manifest size).

moto is for behaviour, not speed: it serves objects from its own memory
(a plain GET of a whole object is unusually cheap there, a ranged GET of a
large object unusually dear); the local store shows the CPU cost.

Usage:
  python bench/store_bench.py --size-mib 1024                  # everything
  python bench/store_bench.py --size-mib 256 --stores local --kinds finetune
  python bench/store_bench.py --sweep --size-mib 1024 --stores local
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

KINDS = ("finetune", "append", "retune", "identical")


# ---------------------------------------------------------------- child operations


def op_main(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one operation (in a child process); returns its result fields."""
    kind = spec["op"]
    if kind in ("push", "pull"):
        import pydelta
        from pydelta.store import ChunkParams

        kw: Dict[str, Any] = {"jobs": spec["jobs"]}
        if spec.get("endpoint"):
            kw["endpoint_url"] = spec["endpoint"]
        if kind == "push":
            if spec.get("fixed"):
                kw["chunker"] = ChunkParams(*([spec["chunk"]] * 3))
            else:
                kw["chunk_avg"] = spec["chunk"]
            r = pydelta.push(spec["src"], spec["store"], pack_size=spec["pack"], tag="latest", **kw)
            return {
                "bytes": r.uploaded_bytes,
                "version": r.version,
                "new_chunks": r.new_chunks,
                "known_chunks": r.known_chunks,
                "packs": r.packs,
            }
        r = pydelta.pull(spec["store"], spec["dest"], quick=spec.get("quick", False), **kw)
        return {
            "bytes": r.downloaded_bytes,
            "requests": r.requests,
            "fetched": r.fetched_chunks,
            "local": r.local_chunks,
            "quick": r.quick,
            "api_s": r.seconds,
        }
    if kind == "whole-up":
        if spec.get("endpoint"):
            import boto3
            from boto3.s3.transfer import TransferConfig

            c = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1")
            cfg = TransferConfig(max_concurrency=spec["jobs"])
            total = 0
            for rel, path in spec["files"]:
                c.upload_file(path, spec["bucket"], f"{spec['prefix']}/{rel}", Config=cfg)
                total += os.path.getsize(path)
            return {"bytes": total}
        total = 0
        for rel, path in spec["files"]:
            out = os.path.join(spec["store"], rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copyfile(path, out)
            total += os.path.getsize(path)
        return {"bytes": total}
    if kind == "whole-down":
        total = 0
        if spec.get("endpoint"):
            import boto3

            c = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1")
            for rel, _ in spec["files"]:
                out = os.path.join(spec["dest"], rel)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                body = c.get_object(Bucket=spec["bucket"], Key=f"{spec['prefix']}/{rel}")["Body"]
                with open(out, "wb") as fh:
                    for block in iter(lambda: body.read(8 << 20), b""):
                        fh.write(block)
                        total += len(block)
            return {"bytes": total}
        for rel, _ in spec["files"]:
            out = os.path.join(spec["dest"], rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copyfile(os.path.join(spec["store"], rel), out)
            total += os.path.getsize(out)
        return {"bytes": total}
    raise SystemExit(f"unknown op {kind}")


def run_child(spec: Dict[str, Any], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run op_main(spec) in a child; adds seconds and peak RSS (MiB)."""
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec), out],
        env={**os.environ, **(env or {})},
    )
    _, status, ru = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {spec['op']} ({proc.returncode})")
    with open(out) as fh:
        res = json.load(fh)
    os.unlink(out)
    res["seconds"] = seconds
    res["rss_mib"] = ru.ru_maxrss / 1024
    return res


# ---------------------------------------------------------------- environment


from s3_clients import free_port  # noqa: E402 (bench/ is on sys.path)


class Moto:
    """moto's S3 server in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")
        self.n = 0

    def bucket(self) -> str:
        self.n += 1
        name = f"bench{self.n}"
        self.client.create_bucket(Bucket=name)
        return name

    def copy_prefix(self, bucket: str, src: str, dst: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=src + "/"
        )
        for page in pages:
            for o in page.get("Contents", []):
                key = dst + o["Key"][len(src) :]
                self.client.copy_object(
                    Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": o["Key"]}
                )

    def drop_bucket(self, bucket: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            for o in page.get("Contents", []):
                self.client.delete_object(Bucket=bucket, Key=o["Key"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def make_pairs(work: str, size_mib: float, kinds: List[str], log) -> Dict[str, Tuple[str, str]]:
    """{kind: (old, new)} files (cached in work; the old file is shared)."""
    import modelgen

    out = {}
    for kind in kinds:
        old = os.path.join(work, f"old-{size_mib:g}M.safetensors")
        new = os.path.join(work, f"{kind}-{size_mib:g}M.safetensors")
        if not (os.path.exists(old) and os.path.exists(new)):
            log(f"generating {kind} {size_mib:g} MiB ...")
            tmp_old = old + ".tmp"
            modelgen.make_pair(kind, size_mib, tmp_old, new)
            os.replace(tmp_old, old)
        out[kind] = (old, new)
    return out


def make_folder(work: str, size_mib: float, log) -> Tuple[str, str]:
    """A 4-shard model folder, old and new (shard 1 fine-tuned, shard 4 appended, config edited)."""
    import modelgen

    base = os.path.join(work, f"folder-{size_mib:g}M")
    old, new = base + "-old", base + "-new"
    if os.path.isdir(old) and os.path.isdir(new):
        return old, new
    log(f"generating a 4-shard folder of {size_mib:g} MiB ...")
    for d in (old, new):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    kinds = ["finetune", "identical", "identical", "append"]
    for i, kind in enumerate(kinds):
        name = f"model-{i + 1:05d}-of-00004.safetensors"
        modelgen.make_pair(
            kind, size_mib / 4, os.path.join(old, name), os.path.join(new, name), seed=i + 1
        )
    for d, rev in ((old, 1), (new, 2)):
        with open(os.path.join(d, "config.json"), "w") as fh:
            json.dump({"architectures": ["LlamaForCausalLM"], "revision": rev, "layers": 32}, fh)
        with open(os.path.join(d, "tokenizer.json"), "w") as fh:
            json.dump({"vocab": {f"tok{i}": i for i in range(20000)}}, fh)
    return old, new


def files_of(path: str) -> List[Tuple[str, str]]:
    if os.path.isfile(path):
        return [(os.path.basename(path), path)]
    out = []
    for dp, _, fns in os.walk(path):
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            out.append((os.path.relpath(p, path), p))
    return out


def size_of(path: str) -> int:
    return sum(os.path.getsize(p) for _, p in files_of(path))


def place_old(old: str, dest: str, target_name: Optional[str]) -> None:
    """DEST holding the previous version (a copy of OLD)."""
    shutil.rmtree(dest, ignore_errors=True)
    if os.path.isdir(old):
        shutil.copytree(old, dest)
    else:
        os.makedirs(dest)
        shutil.copyfile(old, os.path.join(dest, target_name or os.path.basename(old)))


# ---------------------------------------------------------------- one case


def bench_case(
    name: str, old: str, new: str, store_kind: str, moto: Optional[Moto], a, work: str, log
) -> List[Dict[str, Any]]:
    """All schemes for one pair on one store."""
    rows = []
    nbytes = size_of(new)
    single = os.path.isfile(new)
    target = "model.safetensors"
    base = {"jobs": a.jobs, "pack": a.pack_mib << 20, "chunk": a.chunk_kib << 10}
    for scheme in ("pydelta", "fixed", "whole"):
        cache = tempfile.mkdtemp(prefix="cache-", dir=work)
        env = {"PYDELTA_CACHE_DIR": cache}
        row: Dict[str, Any] = {"case": name, "store": store_kind, "scheme": scheme, "size": nbytes}
        rss = []
        if moto is not None:
            bucket = moto.bucket()
            endpoint = moto.url
            url = f"s3://{bucket}/m"
        else:
            bucket, endpoint = "", None
            url = os.path.join(work, f"store-{scheme}")
            shutil.rmtree(url, ignore_errors=True)
        dest = os.path.join(work, "dest")
        if scheme == "whole":
            spec = {
                "jobs": a.jobs,
                "bucket": bucket,
                "prefix": "m",
                "endpoint": endpoint,
                "store": url,
            }
            r = run_child({**spec, "op": "whole-up", "files": files_of(new)})
            row.update(push_bytes=r["bytes"], push_s=r["seconds"])
            rss.append(r["rss_mib"])
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            r = run_child({**spec, "op": "whole-down", "files": files_of(new), "dest": dest})
            row.update(
                pull_prev_bytes=r["bytes"], pull_prev_s=r["seconds"], pull_empty_s=r["seconds"]
            )
            rss.append(r["rss_mib"])
        else:
            spec = {**base, "store": url, "endpoint": endpoint, "fixed": scheme == "fixed"}
            src_old = old
            src_new = new
            if single:  # push under a stable name, so both versions are "model.safetensors"
                for s, link in ((old, "old"), (new, "new")):
                    d = os.path.join(work, f"src-{link}")
                    shutil.rmtree(d, ignore_errors=True)
                    os.makedirs(d)
                    os.link(s, os.path.join(d, target))
                src_old = os.path.join(work, "src-old", target)
                src_new = os.path.join(work, "src-new", target)
            r = run_child({**spec, "op": "push", "src": src_old}, env)
            row["first_push_s"] = r["seconds"]
            r = run_child({**spec, "op": "push", "src": src_new}, env)
            row.update(push_bytes=r["bytes"], push_s=r["seconds"])
            rss.append(r["rss_mib"])
            place_old(old, dest, target if single else None)
            pdest = os.path.join(dest, target) if single else dest
            r = run_child({**spec, "op": "pull", "dest": pdest}, env)
            row.update(
                pull_prev_bytes=r["bytes"], pull_prev_s=r["seconds"], pull_requests=r["requests"]
            )
            rss.append(r["rss_mib"])
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            r = run_child({**spec, "op": "pull", "dest": pdest}, env)
            row.update(pull_empty_s=r["seconds"], pull_empty_bytes=r["bytes"])
            rss.append(r["rss_mib"])
        row["rss_mib"] = max(rss)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        if moto is not None:
            moto.drop_bucket(bucket)
        else:
            shutil.rmtree(url, ignore_errors=True)
        log(json.dumps(row))
        rows.append(row)
    return rows


def quick_case(
    gib: int, store_kind: str, moto: Optional[Moto], a, work: str, log
) -> Dict[str, Any]:
    """An up-to-date pull --quick of a gib-GiB folder (sparse 1 GiB files)."""
    src = os.path.join(work, f"quick-src-{gib}G")
    if not os.path.isdir(src):
        os.makedirs(src)
        for i in range(gib):
            with open(os.path.join(src, f"shard-{i:03d}.bin"), "wb") as fh:
                fh.truncate(1 << 30)
                fh.seek(i * 4096)
                fh.write(f"shard {i}".encode())
    if moto is not None:
        url, endpoint = f"s3://{moto.bucket()}/q", moto.url
    else:
        url, endpoint = os.path.join(work, "quick-store"), None
        shutil.rmtree(url, ignore_errors=True)
    spec = {
        "jobs": a.jobs,
        "pack": a.pack_mib << 20,
        "chunk": a.chunk_kib << 10,
        "store": url,
        "endpoint": endpoint,
    }
    log(f"quick: pushing {gib} GiB of sparse files ...")
    run_child({**spec, "op": "push", "src": src})
    dest = os.path.join(work, "quick-dest")
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-r", "--sparse=always", src, dest], check=True)
    full = run_child({**spec, "op": "pull", "dest": dest})
    api = run_child({**spec, "op": "pull", "dest": dest, "quick": True})
    cmd = [sys.executable, "-m", "pydelta", "pull", url, dest, "--quick", "-q"]
    if endpoint:
        cmd += ["--endpoint-url", endpoint]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    cli = time.perf_counter() - t0
    shutil.rmtree(dest, ignore_errors=True)
    row = {
        "case": f"quick-{gib}G",
        "store": store_kind,
        "full_check_s": full["seconds"],
        "quick_api_child_s": api["seconds"],
        "quick_api_s": api["api_s"],
        "quick_cli_s": cli,
        "quick_hit": api["quick"],
    }
    log(json.dumps(row))
    return row


def sweep(pairs: Dict[str, Tuple[str, str]], a, work: str, log) -> List[Dict[str, Any]]:
    """Average chunk size vs second-push bytes, chunks and manifest size (local store)."""
    import pydelta
    from pydelta.store import open_store

    rows = []
    for avg_kib in (32, 64, 128, 256, 512, 1024):
        for kind in ("finetune", "append"):
            old, new = pairs[kind]
            url = os.path.join(work, "sweep-store")
            shutil.rmtree(url, ignore_errors=True)
            d = os.path.join(work, "sweep-src")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            os.link(old, os.path.join(d, "model.safetensors"))
            pydelta.push(
                os.path.join(d, "model.safetensors"),
                url,
                chunk_avg=avg_kib << 10,
                pack_size=a.pack_mib << 20,
                jobs=a.jobs,
            )
            os.unlink(os.path.join(d, "model.safetensors"))
            os.link(new, os.path.join(d, "model.safetensors"))
            r = pydelta.push(
                os.path.join(d, "model.safetensors"), url, pack_size=a.pack_mib << 20, jobs=a.jobs
            )
            st = open_store(url)
            man = len(st.get(f"versions/{r.version}"))
            chunks = r.new_chunks + r.known_chunks
            row = {
                "avg_kib": avg_kib,
                "kind": kind,
                "size": os.path.getsize(new),
                "push_bytes": r.uploaded_bytes,
                "chunks": chunks,
                "manifest": man,
            }
            log(json.dumps(row))
            rows.append(row)
    shutil.rmtree(os.path.join(work, "sweep-store"), ignore_errors=True)
    return rows


# ---------------------------------------------------------------- report


def pct(a: float, b: float) -> str:
    return f"{100.0 * a / b:.2f}%" if b else "-"


def markdown(
    rows: List[Dict[str, Any]], quick: List[Dict[str, Any]], sweep_rows: List[Dict[str, Any]], a
) -> str:
    out = [
        f"# store_bench: {a.size_mib:g} MiB pairs, jobs {a.jobs}, packs {a.pack_mib} MiB"
        + ("" if a.sweep else f", chunks avg {a.chunk_kib} KiB"),
        "",
        f"Machine: {os.cpu_count()} cores (shared); moto {moto_version()} in its own process on loopback. "
        "Times are wall seconds of a child process; RSS its peak. Second push: OLD already stored. "
        "Pull (prev): DEST holds OLD. 'whole' = boto3 upload_file (multipart, parallel) and one "
        "plain GET, or a file copy on the local store. 'fixed' = fixed-size pieces of the same size, "
        "same packs/parallelism/compression.",
        "",
    ]
    if rows:
        out += [
            "| case | store | scheme | 2nd push sent | push s | pull (prev) fetched | pull (prev) s | pull (empty) s | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            out.append(
                f"| {r['case']} | {r['store']} | {r['scheme']} | {r['push_bytes']:,} ({pct(r['push_bytes'], r['size'])}) "
                f"| {r['push_s']:.2f} | {r['pull_prev_bytes']:,} ({pct(r['pull_prev_bytes'], r['size'])}) "
                f"| {r['pull_prev_s']:.2f} | {r['pull_empty_s']:.2f} | {r['rss_mib']:.0f} |"
            )
        out.append("")
    if quick:
        out += [
            "| up-to-date pull --quick | store | full check s | quick (API, child) s | quick (CLI) s |",
            "|---|---|---|---|---|",
        ]
        for q in quick:
            out.append(
                f"| {q['case']} | {q['store']} | {q['full_check_s']:.2f} | {q['quick_api_child_s']:.2f} "
                f"| {q['quick_cli_s']:.2f} |"
            )
        out.append("")
    if sweep_rows:
        out += [
            "| avg chunk | pair | 2nd push sent | chunks per GiB | manifest bytes per GiB | objects per 100 GB (packs) |",
            "|---|---|---|---|---|---|",
        ]
        for s in sweep_rows:
            per_gib = (1 << 30) / s["size"]
            out.append(
                f"| {s['avg_kib']} KiB | {s['kind']} | {s['push_bytes']:,} ({pct(s['push_bytes'], s['size'])}) "
                f"| {s['chunks'] * per_gib:,.0f} | {s['manifest'] * per_gib:,.0f} | {100e9 / (a.pack_mib << 20):,.0f} |"
            )
        out.append("")
    return "\n".join(out)


def moto_version() -> str:
    try:
        import moto

        return moto.__version__
    except ImportError:
        return "-"


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        res = op_main(json.loads(sys.argv[2]))
        with open(sys.argv[3], "w") as fh:
            json.dump(res, fh)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=float, default=1024)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--stores", default="local,moto")
    ap.add_argument("--folder", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--quick-gib", type=int, default=10, help="0: skip the --quick case")
    ap.add_argument("--sweep", action="store_true", help="only the chunk size sweep")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--pack-mib", type=int, default=32)
    ap.add_argument("--chunk-kib", type=int, default=256)
    ap.add_argument("--work", default=os.path.join(HERE, "work", "store"))
    ap.add_argument(
        "--out", default=None, help="Markdown/JSON output (default bench/results/store_bench-SIZE)"
    )
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    kinds = [k for k in a.kinds.split(",") if k]
    pairs = make_pairs(a.work, a.size_mib, kinds if not a.sweep else ["finetune", "append"], log)
    out = a.out or os.path.join(
        HERE, "results", f"store_bench-{a.size_mib:g}M" + ("-sweep" if a.sweep else "")
    )
    rows: List[Dict[str, Any]] = []
    quick: List[Dict[str, Any]] = []
    sweep_rows: List[Dict[str, Any]] = []
    if a.sweep:
        sweep_rows = sweep(pairs, a, a.work, log)
    else:
        folder = make_folder(a.work, a.size_mib, log) if a.folder else None
        for store_kind in a.stores.split(","):
            moto = Moto() if store_kind == "moto" else None
            try:
                for kind in kinds:
                    old, new = pairs[kind]
                    rows += bench_case(kind, old, new, store_kind, moto, a, a.work, log)
                if folder:
                    rows += bench_case(
                        "folder (4 shards)", folder[0], folder[1], store_kind, moto, a, a.work, log
                    )
                if a.quick_gib:
                    quick.append(quick_case(a.quick_gib, store_kind, moto, a, a.work, log))
            finally:
                if moto is not None:
                    moto.close()
    text = markdown(rows, quick, sweep_rows, a)
    print(text)
    with open(out + ".md", "w") as fh:
        fh.write(text + "\n")
    with open(out + ".json", "w") as fh:
        json.dump(
            {"rows": rows, "quick": quick, "sweep": sweep_rows, "args": vars(a)}, fh, indent=1
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
