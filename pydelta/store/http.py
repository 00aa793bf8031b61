"""A read-only store over plain HTTP(S): a store directory served by any web server or CDN.

``https://cdn.example.com/models/llama`` names a copy of a store's
directory (``pydelta-store.json``, ``tags/``, ``versions/``, ``packs/``)
published by nginx, a CDN or an object store's public website endpoint.
A pull needs only GETs: the tag, the manifest, then byte ranges of packs
(``Range: bytes=a-b``); everything it reads is verified exactly as from
any other store (the manifest against its id, every chunk and every file
against its BLAKE3), so the server and the network need not be trusted.

Writes raise :class:`~pydelta.errors.ReadOnlyStoreError`, and so does a
listing (HTTP has none): pull by tag or by full version id, and mirror with
``--tag``.

Connections are kept alive, one per thread. 5xx answers, refused or dropped
connections, time-outs and bodies cut short are retried with backoff
(:func:`~pydelta.store.base.retry`); a server that ignores ``Range`` and
sends the whole object is read as a stream, keeping only the range asked
for.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import quote, urljoin, urlsplit

from ..errors import (
    CorruptStoreError,
    ReadOnlyStoreError,
    StoreAccessError,
    StoreError,
    StoreNotFoundError,
    UsageError,
)
from .base import Data, ObjectInfo, Store, Transient, retry

#: seconds to wait for a connection or for the next bytes of an answer
TIMEOUT = 30.0
#: redirects followed per request (CDNs and object stores send a few)
MAX_REDIRECTS = 5
_BLOCK = 1 << 20
_MAX_SMALL = 1 << 30  # refuse a whole-object GET larger than this (manifests, tags)


def _split(url: str) -> Tuple[str, str, int, str]:
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise UsageError(f"invalid HTTP store URL {url!r}: use http(s)://host/path")
    if p.query or p.fragment:
        raise UsageError(f"an HTTP store URL has no query or fragment: {url}")
    port = p.port or (443 if p.scheme == "https" else 80)
    return p.scheme, p.hostname, port, p.path


class HttpStore(Store):
    """A read-only model store at an ``http://`` or ``https://`` URL."""

    writable = False

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.scheme, self.host, self.port, path = _split(url)
        self.base = path.rstrip("/") + "/"
        self.timeout = timeout
        self._local = threading.local()
        self._all: "list[http.client.HTTPConnection]" = []
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context() if self.scheme == "https" else None

    # -- connections

    def _new_conn(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._ssl or ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._new_conn(self.scheme, self.host, self.port)
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()
            self._local.conn = None

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                with contextlib.suppress(Exception):
                    c.close()
            self._all.clear()

    # -- one request

    def _request(self, method: str, key: str, headers: Dict[str, str]) -> http.client.HTTPResponse:
        """Send one request (following redirects); the caller reads or closes
        the response. Connection failures raise Transient."""
        target = self.base + quote(key)
        conn = self._conn()
        own = False
        for _ in range(MAX_REDIRECTS + 1):
            try:
                conn.request(method, target, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                if own:
                    conn.close()
                else:
                    self._drop()
                raise Transient(
                    f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                ) from None
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                loc = resp.getheader("Location") or ""
                resp.read()
                if own:
                    conn.close()
                full = urljoin(f"{self.scheme}://{self.host}:{self.port}{target}", loc)
                scheme, host, port, path = _split(full)
                q = urlsplit(full).query
                target = path + (f"?{q}" if q else "")
                conn = self._new_conn(scheme, host, port)
                own = True
                continue
            if own:
                resp._pydelta_own = conn  # type: ignore[attr-defined]  # closed with the answer
            return resp
        raise StoreError(f"too many redirects for {key} in store {self.url}")

    def _finish(self, resp: http.client.HTTPResponse, keep: bool) -> None:
        own = getattr(resp, "_pydelta_own", None)
        if own is not None:
            with contextlib.suppress(Exception):
                own.close()
        elif not keep:
            self._drop()

    def _status(self, resp: http.client.HTTPResponse, key: str) -> None:
        """Raise for an error answer (after reading its small body)."""
        s = resp.status
        if s in (200, 206):
            return
        with contextlib.suppress(Exception):
            resp.read(64 << 10)
        self._finish(resp, keep=not resp.will_close)
        if s >= 500 or s in (408, 429):
            raise Transient(f"HTTP {s} {resp.reason}")
        if s in (404, 410):
            raise StoreNotFoundError(f"{key} is not in store {self.url}")
        if s in (401, 403):
            raise StoreAccessError(
                f"reading {key}: store {self.url} answered HTTP {s} {resp.reason}"
            )
        if s == 416:
            raise CorruptStoreError(f"{key} in store {self.url} is shorter than its index says")
        raise StoreError(f"reading {key}: store {self.url} answered HTTP {s} {resp.reason}")

    def _read(self, resp: http.client.HTTPResponse, n: int) -> bytes:
        try:
            data = resp.read(n)
        except (OSError, http.client.HTTPException) as e:
            self._finish(resp, keep=False)
            raise Transient(f"connection dropped while reading: {e}") from None
        return data

    # -- reads

    def _get_whole(self, key: str) -> "tuple[bytes, Optional[str]]":
        def op() -> "tuple[bytes, Optional[str]]":
            resp = self._request("GET", key, {})
            self._status(resp, key)
            length = resp.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > _MAX_SMALL:
                self._finish(resp, keep=False)
                raise CorruptStoreError(
                    f"{key} in store {self.url} is far too large ({length} bytes)"
                )
            data = self._read(resp, _MAX_SMALL + 1)
            if len(data) > _MAX_SMALL:
                self._finish(resp, keep=False)
                raise CorruptStoreError(f"{key} in store {self.url} is far too large")
            if length is not None and length.isdigit() and len(data) != int(length):
                self._finish(resp, keep=False)
                raise Transient(f"body cut short ({len(data)} of {length} bytes)")
            self._finish(resp, keep=not resp.will_close)
            return data, resp.getheader("ETag")

        return retry(op, f"reading {key}", self.url)

    def get(self, key: str) -> bytes:
        return self._get_whole(key)[0]

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        try:
            return self._get_whole(key)
        except StoreNotFoundError:
            return None, None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""

        def op() -> bytes:
            resp = self._request("GET", key, {"Range": f"bytes={start}-{start + length - 1}"})
            self._status(resp, key)
            if resp.status == 206:
                data = self._read(resp, length + 1)
                if len(data) != length:
                    self._finish(resp, keep=False)
                    total = (resp.getheader("Content-Range") or "").rpartition("/")[2]
                    if total.isdigit() and int(total) < start + length:
                        raise CorruptStoreError(
                            f"{key} in store {self.url} is shorter than its index says "
                            f"({total} bytes, wanted {start}..{start + length})"
                        )
                    raise Transient(f"range answer of {len(data)} bytes, wanted {length}")
                self._finish(resp, keep=not resp.will_close)
                return data
            # 200: the server ignored Range; stream past the start, keep the range
            skip = start
            while skip:
                got = self._read(resp, min(skip, _BLOCK))
                if not got:
                    break
                skip -= len(got)
            data = self._read(resp, length) if not skip else b""
            self._finish(resp, keep=False)
            if len(data) != length:
                total = resp.getheader("Content-Length")
                if total is not None and total.isdigit() and int(total) < start + length:
                    raise CorruptStoreError(
                        f"{key} in store {self.url} is shorter than its index says "
                        f"({total} bytes, wanted {start}..{start + length})"
                    )
                raise Transient(f"body cut short (wanted bytes {start}..{start + length})")
            return data

        return retry(op, f"reading {key}", self.url)

    def exists(self, key: str) -> bool:
        def op() -> bool:
            resp = self._request("HEAD", key, {})
            if resp.status in (404, 410):
                resp.read()
                self._finish(resp, keep=not resp.will_close)
                return False
            self._status(resp, key)
            resp.read()
            self._finish(resp, keep=not resp.will_close)
            return True

        return retry(op, f"checking {key}", self.url)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise ReadOnlyStoreError(
            f"store {self.url} is served over HTTP, which cannot list objects: "
            "name a tag or a full version id"
        )

    # -- writes

    def _refuse(self, key: str) -> ReadOnlyStoreError:
        return ReadOnlyStoreError(f"store {self.url} is read-only (HTTP): cannot write {key}")

    def put(
        self, key: str, data: Data, *, mode: str = "overwrite", token: Optional[str] = None
    ) -> bool:
        raise self._refuse(key)

    def put_file(self, key: str, path: str) -> None:
        raise self._refuse(key)

    def delete(self, key: str) -> None:
        raise self._refuse(key)
