"""A store directory served over HTTP on loopback, for the fleet tests and bench.

``RangeServer(root)`` serves the files under ``root`` read-only with the
standard library's threaded HTTP server, answering ``Range: bytes=a-b`` with
206 (what nginx or a CDN does), counting the body bytes it sends and the
requests it answers, and optionally sending at most ``rate`` bytes per
second per response (to catch a puller mid-download) or refusing
everything with 503 (``down``).

Run as a script (``python tests/http_range_server.py ROOT PORT``) it serves
until killed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeServer:
    """A threaded HTTP server over a directory (see the module doc)."""

    def __init__(self, root: str, port: int = 0, rate: Optional[float] = None) -> None:
        self.root = os.path.abspath(root)
        self.rate = rate
        self.down = False
        self.sent = 0
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _path(self) -> Optional[str]:
                rel = unquote(urlsplit(self.path).path).lstrip("/")
                full = os.path.abspath(os.path.join(outer.root, rel))
                if not full.startswith(outer.root + os.sep) or not os.path.isfile(full):
                    return None
                return full

            def _empty(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                with outer.lock:
                    outer.requests += 1
                if outer.down:
                    self._empty(503)
                    return
                path = self._path()
                if path is None:
                    self._empty(404)
                    return
                size = os.path.getsize(path)
                start, end = 0, size - 1
                code = 200
                rng = self.headers.get("Range")
                if rng:
                    m = _RANGE.match(rng.strip())
                    if m:
                        start = int(m.group(1))
                        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                        if start >= size or end < start:
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{size}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        code = 206
                n = end - start + 1
                self.send_response(code)
                self.send_header("Content-Length", str(n))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{int(os.stat(path).st_mtime_ns)}-{size}"')
                if code == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if not body:
                    return
                with open(path, "rb") as fh:
                    fh.seek(start)
                    left = n
                    while left:
                        block = fh.read(min(left, 64 << 10))
                        if not block:
                            break
                        if outer.rate:
                            time.sleep(len(block) / outer.rate)
                        try:
                            self.wfile.write(block)
                        except OSError:
                            return
                        left -= len(block)
                        with outer.lock:
                            outer.sent += len(block)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "RangeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    srv = RangeServer(sys.argv[1], int(sys.argv[2]))
    print(srv.url, flush=True)
    srv.httpd.serve_forever()
