"""Fixtures for the model store tests: a real S3 API server and a faulty front.

* ``moto_endpoint``: moto's S3 server (``ThreadedMotoServer``) on 127.0.0.1
  and a free port, for the whole session. Skips when moto is not installed,
  unless ``PYDELTA_REQUIRE_S3=1`` (CI), which turns the skip into a failure.
* ``store_url``: parametrised over the local-directory store and an S3
  bucket on that server (a fresh bucket per test), so every behaviour test
  runs against both.
* ``fault_proxy``: a small HTTP proxy in front of the moto server that can
  answer 503, reset the connection, or cut a body short, for requests
  matching a rule - the faults a real S3 endpoint shows under load.
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional

import pytest

_bucket_no = itertools.count()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _require_or_skip(why: str) -> None:
    if (
        os.environ.get("PYDELTA_REQUIRE_S3") == "1"
        or os.environ.get("PYDELTA_REQUIRE_TOOLS") == "1"
    ):
        pytest.fail(why + " and PYDELTA_REQUIRE_S3=1", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto S3 server on loopback (fake credentials in the environment)."""
    try:
        import boto3  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        _require_or_skip(f"S3 tests need moto[server] and boto3 ({e}): pip install '.[test,s3]'")
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    os.environ.pop("AWS_PROFILE", None)
    port = _free_port()
    server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_bucket(endpoint: str) -> str:
    """A new empty bucket on the server; returns its name."""
    import boto3

    name = f"bucket{next(_bucket_no)}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@dataclass
class StoreCase:
    """A store for one test: its URL and the endpoint (None for local)."""

    kind: str
    url: str
    endpoint: Optional[str]

    @property
    def kw(self) -> dict:
        """Keyword arguments for push/pull/ls."""
        return {"endpoint_url": self.endpoint} if self.endpoint else {}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch) -> StoreCase:
    """A fresh store: a local directory, or a prefix in a new moto bucket."""
    monkeypatch.setenv("PYDELTA_CACHE_DIR", str(tmp_path / "cache"))
    if request.param == "local":
        return StoreCase("local", str(tmp_path / "store"), None)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = make_bucket(endpoint)
    return StoreCase("s3", f"s3://{bucket}/models/m1", endpoint)


# ---------------------------------------------------------------- faults


@dataclass
class Rule:
    """Answer requests whose "METHOD path" contains ``match`` with a fault, ``times`` times.

    action: "503" (Service Unavailable), "reset" (close the connection
    without an answer), "truncate" (send the headers and half the body).
    """

    match: str
    action: str
    times: int = 1
    hits: int = 0


class FaultProxy:
    """A threaded HTTP proxy to an upstream server, with injectable faults."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split("://", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.rules: List[Rule] = []
        self.requests: List[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                line = f"{self.command} {self.path}"
                rule = proxy._take(line)
                if rule is not None and rule.action == "503":
                    msg = b"<Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if rule is not None and rule.action == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if rule is not None and rule.action == "truncate" and self.command != "HEAD":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    conn.close()
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _take(self, line: str) -> Optional[Rule]:
        with self._lock:
            self.requests.append(line)
            for r in self.rules:
                if r.match in line and r.hits < r.times:
                    r.hits += 1
                    return r
        return None

    def add(self, match: str, action: str, times: int = 1) -> Rule:
        """Add a fault rule; returns it (``hits`` counts how often it fired)."""
        r = Rule(match, action, times)
        with self._lock:
            self.rules.append(r)
        return r

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(moto_endpoint):
    """A FaultProxy in front of the moto server."""
    p = FaultProxy(moto_endpoint)
    try:
        yield p
    finally:
        p.close()
