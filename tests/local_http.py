"""A local HTTP file server on 127.0.0.1 for download tests (Range support, cut connections, slow bodies).

Tests never reach the network: they serve files they make from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` ({url path: bytes}) with HTTP Range support, and misbehaves on request:
    ``cut[path] = n`` sends the first n bytes of the next response and closes the connection (once);
    ``slow[path] = s`` sleeps s seconds between 64 KiB blocks; ``no_range`` ignores Range headers."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.slow: dict[str, float] = {}
        self.no_range = False
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, status)
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        if data is None:
            srv.log.append((self.path, rng, 404))
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng and not srv.no_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                srv.log.append((self.path, rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            status = 206
        else:
            self.send_response(200)
            status = 200
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with srv.lock:
            srv.log.append((self.path, rng, status))
            cut = srv.cut.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the server goes away mid-body
            self.close_connection = True
            return
        for i in range(0, len(body), 1 << 16):
            self.wfile.write(body[i : i + (1 << 16)])
            if self.path in srv.slow:
                time.sleep(srv.slow[self.path])


@contextlib.contextmanager
def serving() -> Iterator[FileServer]:
    """A running :class:`FileServer` (use in a fixture)."""
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def published(data: bytes, stem: str = "model") -> str:
    """A published-style file name: ``<stem>-<first 8 hex digits of sha256>.pth``."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens now: for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused): the 'no network' case."""
    return free_port()


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float) -> int | None:
    """The HTTP status of ``url`` once it answers (polled every 0.5 s), or None if ``proc`` exits first or
    ``timeout`` seconds pass: for a server a test started as a subprocess."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status
        except OSError:
            time.sleep(0.5)
    return None
