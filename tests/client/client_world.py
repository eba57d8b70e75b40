"""Test support for the client tests: a subvertible static server and a signed registry world.

A static file server on 127.0.0.1 whose responses tests can subvert, path by path.

Hooks model what a hostile mirror or a broken CDN does: an endless body, a body that
trickles one byte every ``delay`` seconds, redirects, error statuses.  Every request path
is logged so tests can assert what the client did (and did not) download.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import wasmtime

from registry_tool.client import Registry, TrustState, trust
from registry_tool.client.store import StateStore
from registry_tool.format import Pin, PluginDocument, build_metadata, dump_canonical
from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.registry.document import Publication as RegistryDocument
from registry_tool.registry.document import read_site_dir
from registry_tool.signing import SecretKey, sign_bytes, sign_release, sign_yank
from registry_tool.trust.editing import add_maintainer, edit_root_dir, init_root_dir, new_root, sign_root_dir

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


# --------------------------------------------------------------------------- a signed registry


NOW = datetime.now(UTC).replace(microsecond=0)

REGISTRY_TOML = """\
[registry]
name = "client-tests"
description = "Registry used by the client tests"
base_url = "http://127.0.0.1/"

[host]
name = "ferrite"
versions = ">=0.2.0, <1.0.0"

[abis]
allowed = ["core"]

[permissions.keys]
description = "Read and write the host's key-value store"
imports = [{ module = "ferrite:keys", name = "*" }]

[permissions.network]
description = "Outbound HTTP through the host"
imports = [{ module = "ferrite:net", name = "*" }]

[limits.default]
fuel = 50_000_000
memory = "16MiB"
wall_time = "2s"

[limits.max]
fuel = 1_000_000_000
memory = "256MiB"
wall_time = "10s"
module_size = "32MiB"
table_elements = 100_000
instances = 10
stack = "1MiB"

[features]
simd = true
bulk_memory = true
reference_types = true
multi_value = true
threads = false
multi_memory = false
memory64 = false
tail_call = false
exceptions = false

[index]
validity = "7d"
allow_backports = true
"""

PERMISSION_IMPORTS = {
    "keys": '(import "ferrite:keys" "get" (func (param i32) (result i32)))',
    "network": '(import "ferrite:net" "fetch" (func (param i32) (result i32)))',
}


def module_bytes(variant: int, permissions: tuple[str, ...] = ()) -> bytes:
    imports = "\n".join(PERMISSION_IMPORTS[p] for p in permissions)
    extra = " i32.const 0 i32.add" * variant
    wat = f"""(module {imports}
      (memory (export "memory") 1)
      (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add {extra}))"""
    return bytes(wasmtime.wat2wasm(wat))


def manifest_text(name: str, version: str, permissions: tuple[str, ...], host: str, description: str) -> str:
    perms = "".join(f"{p} = true\n" for p in permissions)
    return (
        f'[plugin]\nname = "{name}"\nversion = "{version}"\ndescription = "{description}"\n'
        f'authors = ["tests"]\nlicense = "Apache-2.0"\nabi = "core"\nkeywords = ["math"]\n\n'
        f'[compatibility]\nhost = "{host}"\n\n[artifact]\nfile = "{name}.wasm"\n\n'
        f'[exports]\nfunctions = ["add"]\n\n[permissions]\n{perms}\n'
        f'[[tests]]\nname = "one plus two"\ncall = "add"\nargs = [1, 2]\nexpect = [3]\n'
    )


def new_key() -> SecretKey:
    key = SecretKey.generate()
    # Keep the key-number bits the root schema's public_key pattern expects (see tests/registry).
    return SecretKey.from_seed(key.seed, bytes([key.keynum[0] & 0x3F]) + key.keynum[1:])


@dataclass
class Keys:
    root: SecretKey
    index: SecretKey
    alice: SecretKey  # maintainer of alpha*
    bob: SecretKey  # maintainer of beta
    index2: SecretKey  # replaces the index key on rotation
    mallory: SecretKey  # in no role at all


@dataclass
class World:
    """An index, the site built from it and served on 127.0.0.1, and a client's directories."""

    index: Path
    site: Path
    keys: Keys
    server: SiteServer
    state_dir: Path
    plugins: Path
    index_keys: list[SecretKey] = field(default_factory=list)
    variant: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    def add_release(
        self,
        name: str,
        version: str,
        *,
        permissions: tuple[str, ...] = (),
        host: str = ">=0.2.0, <0.4.0",
        signer: SecretKey | None = None,
        description: str = "adds two numbers",
    ) -> Path:
        folder = self.index / "plugins" / name / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.toml").write_text(manifest_text(name, version, permissions, host, description))
        self.variant += 1
        (folder / f"{name}.wasm").write_bytes(module_bytes(self.variant, permissions))
        key = signer or (self.keys.bob if name == "beta" else self.keys.alice)
        sign_release(folder, key, timestamp=int(NOW.timestamp()))
        return folder

    def yank(self, name: str, version: str, reason: str) -> None:
        folder = self.index / "plugins" / name / version
        (folder / "yank.toml").write_text(
            f'[yank]\nname = "{name}"\nversion = "{version}"\nreason = "{reason}"\n'
        )
        sign_yank(
            folder, self.keys.bob if name == "beta" else self.keys.alice, timestamp=int(NOW.timestamp())
        )

    def build(
        self, *, now: datetime | None = None, out: Path | None = None, previous: bool = True
    ) -> RegistryDocument:
        """Build the site; ``previous=False`` ignores the served registry.json (the owners' own
        history, when the served one was forged)."""
        previous_site = str(self.site) if previous and (self.site / "registry.json").exists() else None
        result = build_site(
            BuildOptions(
                index=self.index,
                out=out or self.site,
                keys=self.index_keys or [self.keys.index],
                now=now or NOW,
                previous=previous_site,
                smoke=False,
            )
        )
        return result.document

    def edit_root(self, edit: Callable[[dict[str, Any]], None]) -> None:
        root_dir = self.index / "root"
        edit_root_dir(root_dir, edit, now=NOW)
        sign_root_dir(root_dir, self.keys.root)

    def publish_root(self) -> None:
        """Copy the index's root chain into the served site (as the next build would)."""
        for path in (self.index / "root").iterdir():
            shutil.copy2(path, self.site / "root" / path.name)

    def forge_registry(self, mutate: Callable[[dict[str, Any]], None], key: SecretKey | None = None) -> bytes:
        """Rewrite the top document and sign it with the index key: what a stolen index key allows."""
        raw = json.loads((self.site / "registry.json").read_bytes())
        mutate(raw)
        data = (json.dumps(raw, sort_keys=True, indent=2) + "\n").encode()
        (self.site / "registry.json").write_bytes(data)
        signer = key or (self.index_keys or [self.keys.index])[0]
        (self.site / "registry.json.minisig").write_text(sign_bytes(signer, data, trusted_comment="forged"))
        return data

    def forge_plugin(
        self, name: str, mutate: Callable[[dict[str, Any]], None], key: SecretKey | None = None
    ) -> bytes:
        """Rewrite a plugin document, re-derive tree and catalog, re-sign the top document with the
        index key: what a stolen index key allows below the top.  Returns the forged document."""
        pub = read_site_dir(self.site)
        docs = [PluginDocument(n, versions) for n, versions in sorted(pub.plugins.items())]
        raw = PluginDocument(name, pub.plugins[name]).to_json()
        mutate(raw)
        forged = dump_canonical(raw)
        meta = build_metadata(docs, encoded={name: forged})
        self.write_meta(meta.files.values())
        self.forge_registry(
            lambda top: top.update(tree=meta.tree.to_json(), catalog=meta.catalog.to_json()), key
        )
        return forged

    def write_meta(self, documents: Any) -> list[Pin]:
        """Store documents at their content address in the served site; their pins."""
        pins = []
        for data in documents:
            pin = Pin.of(data)
            path = self.site / pin.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            pins.append(pin)
        return pins

    def trust(self, **kwargs: Any) -> TrustState:
        root1 = (self.site / "root" / "1.root.json").read_bytes()
        return trust(self.url, root_bytes=root1, state_dir=self.state_dir, **kwargs)

    def open(self, clock: Callable[[], datetime] | None = None, **kwargs: Any) -> Registry:
        return Registry.open(
            self.url, state_dir=self.state_dir, clock=clock or (lambda: NOW + timedelta(minutes=5)), **kwargs
        )

    def state(self) -> TrustState | None:
        return StateStore(self.state_dir).load(self.url)

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
    path.mkdir(parents=True)
    (path / "registry.toml").write_text(REGISTRY_TOML)
    root_dir = path / "root"
    data = new_root(
        "client-tests", [keys.root.public_key], [keys.index.public_key], expires=NOW + timedelta(days=365)
    )
    init_root_dir(root_dir, data)
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, add_maintainer("alice", [keys.alice.public_key], ["alpha*"]), now=NOW)
    sign_root_dir(root_dir, keys.root)
    edit_root_dir(root_dir, add_maintainer("bob", [keys.bob.public_key], ["beta"]), now=NOW)
    sign_root_dir(root_dir, keys.root)
