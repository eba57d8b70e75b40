"""A headless Debian Chromium (driven by Playwright, no browser download) and a 127.0.0.1 server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("REGISTRY_TOOL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _missing(what: str) -> None:
    # scripts/setup-system.sh installs chromium; in CI a missing browser is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; run scripts/setup-system.sh (make setup)")
    pytest.skip(f"{what} is missing (make setup installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium ({CHROMIUM})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self) -> Any:
        # Last-Modified has a one-second resolution: a file a test replaces within the second the
        # page first fetched it would be answered 304, and the page would keep the replaced bytes
        # (on a fast machine the rollback test did). Always send the file.
        del self.headers["If-Modified-Since"]
        delay = self.server.slow.get(self.path.rsplit("/", 1)[-1])  # type: ignore[attr-defined]
        if delay:
            time.sleep(delay)  # a slow answer (the other requests go on: one thread per request)
        return super().send_head()


class Server:
    def __init__(self, root: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        #: file name -> seconds its answer waits
        self.slow: dict[str, float] = {}
        self.httpd.slow = self.slow  # type: ignore[attr-defined]
        self.root = root
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("served"))
    yield srv
    srv.close()
