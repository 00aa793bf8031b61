"""Compare S3 clients on the model store's workload: boto3 vs obstore.

The store's traffic is (1) parallel PUTs of pack objects (tens of MiB) and
(2) many parallel ranged GETs of runs of chunks (128 KiB .. 8 MiB) from
packs. This runs both patterns with each client against a moto S3 server
started in its own process on loopback (so server and client do not share
a GIL), at the same parallelism, and prints a Markdown table.

moto is for behaviour, not speed: its cost per request and per byte
dominates, so the table says how the clients compare *here*, on the same
server; real S3 figures would be larger for both.

Usage: python bench/s3_clients.py [--packs 8] [--pack-mib 16] [--ranges 200]
       [--range-kib 512] [--jobs 8] [--out bench/results/s3_clients.md]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Tuple


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_moto() -> Tuple[subprocess.Popen, str]:
    """moto's S3 server in a child process; returns (process, endpoint)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto server did not start")


class Boto3Client:
    name = "boto3"

    def __init__(self, endpoint: str, bucket: str, jobs: int) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.c = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            config=Config(
                max_pool_connections=jobs + 4,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def put(self, key: str, data: bytes) -> None:
        self.c.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        r = self.c.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
        )
        return r["Body"].read()


class ObstoreClient:
    name = "obstore"

    def __init__(self, endpoint: str, bucket: str, jobs: int) -> None:
        from obstore.store import S3Store

        self.s = S3Store(
            bucket,
            endpoint=endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
            client_options={"allow_http": True},
            virtual_hosted_style_request=False,
        )

    def put(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.s, key, data)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        import obstore

        return bytes(obstore.get_range(self.s, key, start=start, length=length))


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", type=int, default=8)
    ap.add_argument("--pack-mib", type=int, default=16)
    ap.add_argument("--ranges", type=int, default=200)
    ap.add_argument("--range-kib", type=int, default=512)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    proc, endpoint = start_moto()
    rows: List[str] = []
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench"
        )
        pack = random.Random(1).randbytes(a.pack_mib << 20)
        rlen = a.range_kib << 10
        rng = random.Random(2)
        ranges = [
            (rng.randrange(a.packs), rng.randrange(0, (a.pack_mib << 20) - rlen))
            for _ in range(a.ranges)
        ]
        for cls in (Boto3Client, ObstoreClient, Boto3Client, ObstoreClient):
            c = cls(endpoint, "bench", a.jobs)
            with ThreadPoolExecutor(a.jobs) as pool:
                t_put = timed(
                    lambda: list(pool.map(lambda i: c.put(f"{c.name}/p{i}", pack), range(a.packs)))
                )
                t_get = timed(
                    lambda: list(
                        pool.map(lambda r: c.get_range(f"{c.name}/p{r[0]}", r[1], rlen), ranges)
                    )
                )
            up = a.packs * len(pack) / t_put / 1e6
            down = a.ranges * rlen / t_get / 1e6
            rows.append(
                f"| {c.name} | {t_put:.2f} s ({up:.0f} MB/s) | {t_get:.2f} s ({down:.0f} MB/s, "
                f"{a.ranges / t_get:.0f} req/s) |"
            )
            print(rows[-1], flush=True)
    finally:
        proc.terminate()
        proc.wait()
    md = [
        f"S3 clients against moto (separate process, loopback), {a.jobs} threads; "
        f"PUT {a.packs} x {a.pack_mib} MiB packs, then {a.ranges} ranged GETs of {a.range_kib} KiB "
        "(each client run twice, alternating).",
        "",
        "| client | parallel PUTs | parallel ranged GETs |",
        "|---|---|---|",
        *rows,
    ]
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
