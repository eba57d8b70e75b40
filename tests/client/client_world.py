"""Test support for the client tests: a subvertible static server and a signed registry world.

The registry itself (keys, root chain, releases, site) is built by tests.world.  A ``World``
reaches its site either through the in-memory ``SiteSimulator`` (trust-state and attack tests:
``sim_world``/``sim_trusted``) or through a static file server on 127.0.0.1 whose responses
tests can subvert, path by path (transport tests and the CLI: ``world``/``trusted``).

Hooks model what a hostile mirror or a broken CDN does: an endless body, a body that
trickles one byte every ``delay`` seconds, redirects, error statuses.  Every request path
is logged so tests can assert what the client did (and did not) download.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from registry_tool.client import Fetcher, Registry, TrustState, trust
from registry_tool.client.store import StateStore
from registry_tool.format import Pin
from registry_tool.registry import Publication as RegistryDocument
from registry_tool.signing import SecretKey
from tests.world import (
    IndexTree,
    Keys,
    SiteSimulator,
    add_module,
    forge_plugin_document,
    forge_top,
    registry_toml,
    write_meta,
)
from tests.world import manifest_text as world_manifest
from tests.world import new_key as new_key

Hook = Callable[[http.server.BaseHTTPRequestHandler], None]


class SiteServer:
    """A static file server for ``root`` on 127.0.0.1 whose responses tests can subvert per path."""

    def __init__(self, root: Path) -> None:
        """Bind a free port on 127.0.0.1 (serving starts with ``start``)."""
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
        """The bound port."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL (with a trailing slash)."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> SiteServer:
        """Serve in a daemon thread; returns self."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end every hook still writing."""
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

    def delayed(self, path: str, seconds: float) -> None:
        """Serve the real file, but only after ``seconds``."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            body = (self.root / path.lstrip("/")).read_bytes()
            self.stopping.wait(seconds)
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.hooks[path] = hook

    def redirect(self, path: str, location: str, code: int = 302) -> None:
        """Answer ``path`` with a redirect to ``location``."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.hooks[path] = hook

    def status(self, path: str, code: int) -> None:
        """Answer ``path`` with the error status ``code``."""

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_error(code)

        self.hooks[path] = hook

    def gzip(self, path: str) -> None:
        """Serve the real file gzip-compressed (Content-Encoding: gzip)."""
        import gzip

        def hook(h: http.server.BaseHTTPRequestHandler) -> None:
            body = gzip.compress((self.root / path.lstrip("/")).read_bytes())
            h.send_response(200)
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.hooks[path] = hook


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds; returns early, so the timeout can allow a loaded machine."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --------------------------------------------------------------------------- a signed registry

# The real clock: the CLI tests run the tool, which checks expiry against the real time.
NOW = datetime.now(UTC).replace(microsecond=0)

REGISTRY_TOML = registry_toml(
    "client-tests",
    description="Registry used by the client tests",
    permissions=("keys", "network"),
    allow_backports=True,
)


def module_bytes(variant: int, permissions: tuple[str, ...] = ()) -> bytes:
    """The ``add`` module; ``variant`` changes its bytes, ``permissions`` adds imports."""
    return add_module(variant, permissions)


def manifest_text(
    name: str, version: str, permissions: tuple[str, ...], host: str, description: str, dependencies: str = ""
) -> str:
    """The client tests' manifest (no [limits]: the registry's defaults apply)."""
    return world_manifest(
        name,
        version,
        description=description,
        host=host,
        permissions=dict.fromkeys(permissions, True),
        dependencies=dependencies or None,
    )


@dataclass
class World:
    """An index, the site built from it, a client's directories, and the way the client reaches
    the site: the in-memory simulator ``sim`` when set, else a file server on 127.0.0.1 started
    on first use (``server``)."""

    index: Path
    site: Path
    keys: Keys
    state_dir: Path
    plugins: Path
    index_keys: list[SecretKey] = field(default_factory=list)
    variant: int = 0
    sim: SiteSimulator | None = None
    _server: SiteServer | None = None

    @property
    def tree(self) -> IndexTree:
        """The index as a tests.world tree (signing time NOW)."""
        return IndexTree(self.index, self.keys, NOW, int(NOW.timestamp()))

    @property
    def server(self) -> SiteServer:
        """The HTTP server (transport tests); started on first use."""
        if self.sim is not None:
            raise AssertionError("this world is simulated: use world.sim, or the `world` fixture for HTTP")
        if self._server is None:
            self._server = SiteServer(self.site).start()
        return self._server

    def close(self) -> None:
        """Stop the HTTP server if one was started."""
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return self.sim.base_url if self.sim is not None else self.server.url

    @property
    def fetcher(self) -> Fetcher | None:
        """What the client fetches with: the simulator, or None (the real HTTP fetcher)."""
        return self.sim

    def _site_changed(self) -> None:
        if self.sim is not None:
            self.sim.load(self.site)

    def add_release(
        self,
        name: str,
        version: str,
        *,
        permissions: tuple[str, ...] = (),
        host: str = ">=0.2.0, <0.4.0",
        signer: SecretKey | None = None,
        description: str = "adds two numbers",
        dependencies: str = "",
    ) -> Path:
        """``dependencies``: the body of a ``[dependencies]`` table (TOML lines)."""
        self.variant += 1
        return self.tree.add_release(
            name,
            version,
            manifest=manifest_text(name, version, permissions, host, description, dependencies),
            module=module_bytes(self.variant, permissions),
            signer=signer,
        )

    def yank(self, name: str, version: str, reason: str) -> None:
        """A yank signed by the plugin's maintainer."""
        self.tree.yank(name, version, reason)

    def build(
        self, *, now: datetime | None = None, out: Path | None = None, previous: bool = True
    ) -> RegistryDocument:
        """Build the site; ``previous=False`` ignores the served registry.json (the owners' own
        history, when the served one was forged)."""
        previous_site = self.site if previous and (self.site / "registry.json").exists() else None
        doc = self.tree.build(
            out or self.site, index_keys=self.index_keys, now=now or NOW, previous=previous_site
        )
        if out is None:
            self._site_changed()
        return doc

    def edit_root(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """The next root version in the index (not yet served: see ``publish_root``)."""
        self.tree.edit_root(edit)

    def publish_root(self) -> None:
        """Copy the index's root chain into the served site (as the next build would)."""
        for path in (self.index / "root").iterdir():
            (self.site / "root" / path.name).write_bytes(path.read_bytes())
        self._site_changed()

    def forge_registry(self, mutate: Callable[[dict[str, Any]], None], key: SecretKey | None = None) -> bytes:
        """Rewrite the top document and sign it with the index key: what a stolen index key allows."""
        data = forge_top(self.site, mutate, key or (self.index_keys or [self.keys.index])[0])
        self._site_changed()
        return data

    def forge_plugin(
        self, name: str, mutate: Callable[[dict[str, Any]], None], key: SecretKey | None = None
    ) -> bytes:
        """Rewrite a plugin document, re-derive tree and catalog, re-sign the top document with the
        index key: what a stolen index key allows below the top.  Returns the forged document."""
        forged = forge_plugin_document(
            self.site, name, mutate, key or (self.index_keys or [self.keys.index])[0]
        )
        self._site_changed()
        return forged

    def write_meta(self, documents: Iterable[bytes]) -> list[Pin]:
        """Store documents at their content address in the served site; their pins."""
        pins = write_meta(self.site, documents)
        self._site_changed()
        return pins

    def write_site(self, relpath: str, data: bytes) -> None:
        """Serve ``data`` at ``relpath`` (on disk, and in the simulator when there is one)."""
        path = self.site / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._site_changed()

    def trust(self, **kwargs: Any) -> TrustState:
        """Pin root version 1 (as served) for this world's URL."""
        root1 = (self.site / "root" / "1.root.json").read_bytes()
        kwargs.setdefault("fetcher", self.fetcher)
        return trust(self.url, root_bytes=root1, state_dir=self.state_dir, **kwargs)

    def open(self, clock: Callable[[], datetime] | None = None, **kwargs: Any) -> Registry:
        """``Registry.open`` at NOW + 5 minutes (or ``clock``) through this world's transport."""
        kwargs.setdefault("fetcher", self.fetcher)
        return Registry.open(
            self.url, state_dir=self.state_dir, clock=clock or (lambda: NOW + timedelta(minutes=5)), **kwargs
        )

    def state(self) -> TrustState | None:
        """The client's saved trust state for this world's URL."""
        return StateStore(self.state_dir).load(self.url)

    def assert_failed_closed(self, before: dict[str, bytes]) -> None:
        """Nothing changed since the ``snapshot`` ``before`` but what a failed operation's session
        verified: the plugin directory and the metadata cache are as they were; the trust state is
        too, unless the operation failed after its session verified the root chain and
        registry.json (docs/trust.md 10.1), and then it holds exactly what a session stores."""
        state_file = str(StateStore(self.state_dir).path_for(self.url))
        after = self.snapshot()
        if after.get(state_file) != before.get(state_file):
            self.open()  # a session of its own: it verifies what the failed operation stored
            assert self.snapshot()[state_file] == after[state_file], "the failed case stored unverified state"
            after[state_file] = before[state_file]
        assert after == before, "a failed case changed the plugin directory or the trust state"

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the plugin directory and of the trust state, for 'nothing changed' checks."""
        files: dict[str, bytes] = {}
        for base in (self.plugins, self.state_dir):
            if base.exists():
                for p in sorted(base.rglob("*")):
                    if p.is_file() and not p.name.endswith((".lck", ".lock.lck")):
                        files[str(p)] = p.read_bytes()
        return files


def make_index(path: Path, keys: Keys) -> None:
    """The client tests' index: registry.toml and root v1 -> v3 (alice: alpha*, bob: beta)."""
    IndexTree.create(path, keys, registry="client-tests", toml=REGISTRY_TOML, now=NOW)
