"""A static file server on 127.0.0.1 whose responses tests can subvert, path by path.

Hooks model what a hostile mirror or a broken CDN does: an endless body, a body that
trickles one byte every ``delay`` seconds, redirects, error statuses.  Every request path
is logged so tests can assert what the client did (and did not) download.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

Hook = Callable[[http.server.BaseHTTPRequestHandler], None]


class SiteServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hooks: dict[str, Hook] = {}
        self.requests: list[str] = []
        self.stopping = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                hook = server.hooks.get(path)
                if hook is not None:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        hook(self)
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> SiteServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ hooks

    def endless(self, path: str) -> None:
        """No Content-Length, and the body never ends (until the client hangs up)."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            block = b"A" * 65536
            while not self.stopping.is_set():
                h.wfile.write(block)

        self.hooks[path] = hook

    def lying_length(self, path: str, length: int) -> None:
        """Announces a huge Content-Length up front."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(length))
            h.end_headers()
            h.wfile.write(b"x" * 1024)

        self.hooks[path] = hook

    def slow(self, path: str, *, delay: float = 0.5, data: bytes | None = None) -> None:
        """Serve the real file (or ``data``) one byte every ``delay`` seconds."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            body = data if data is not None else (self.root / path.lstrip("/")).read_bytes()
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for i in range(len(body)):
                if self.stopping.wait(delay):
                    return
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()

        self.hooks[path] = hook

    def redirect(self, path: str, location: str, code: int = 302) -> None:
        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.hooks[path] = hook

    def status(self, path: str, code: int) -> None:
        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_error(code)

        self.hooks[path] = hook

    def gzip(self, path: str) -> None:
        import gzip

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            body = gzip.compress((self.root / path.lstrip("/")).read_bytes())
            h.send_response(200)
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.hooks[path] = hook


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return site


@pytest.fixture
def server(site_dir: Path) -> Iterator[SiteServer]:
    srv = SiteServer(site_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[SiteServer]:
    """A second origin: another port on 127.0.0.1."""
    other = tmp_path / "other"
    other.mkdir()
    srv = SiteServer(other).start()
    yield srv
    srv.stop()
