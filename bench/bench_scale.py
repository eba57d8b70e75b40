"""Benchmark: what a client downloads and waits for as a registry grows (format 2 vs format 1).

For each size N (releases), in one run:

* a site is built from the bundled sample index (real, signed releases; `validate_email` is the
  plugin installed), then grown to N releases with synthetic metadata (plugins of 10 versions
  each, generated directly: nothing needs to sign or smoke a million modules), and the top
  document is signed with the sample index key;
* the site is served on 127.0.0.1 by a static server that counts the bytes of every response
  body (404s are sent without a body, as a CDN would);
* the client (in this process, the real `registry_tool.client`) measures:
  - **cold install**: open the registry (root walk, top document) and install `validate_email`
    with an empty metadata cache (root already pinned);
  - **update, nothing changed**: open + `update` of the installed plugin;
  - **search**: open + `search("email")`, cold metadata cache;
* **build (metadata)**: the metadata part of a full build for N releases (plugin documents,
  tree, catalog, written to an empty folder, top document signed), and of a one-change rebuild
  (one release added to one plugin, written into the published site in place): time and files
  written.
  Verifying and smoking releases is per changed release and measured by bench_build.py;
* site: metadata file count and bytes (release files are 3 per release, as in format 1).

Format 1 (`--format1 PATH`, a checkout of the last format-1 commit, e.g.
`git worktree add /tmp/f1 3326b2a`): the same measurements with that tree's own code on a
format-1 registry.json grown the same way, run in a subprocess with `PYTHONPATH=PATH`.  Above
its 32 MiB registry.json cap format 1 cannot install at all (reported as refused); sizes whose
registry.json would exceed 256 MiB are not generated.

Run: `.venv/bin/python bench/bench_scale.py [--sizes 100,10000,100000,1000000] [--format1 /tmp/f1]`.
From `--lean-from` releases on (default 1,000,000) format 2 is generated lean: the tree and the
catalog are exact (one pin per synthetic plugin), the synthetic plugin documents are not written
(no operation measured fetches them), and the one-change rebuild's file count is computed from
the recomputed tree; build times are not measured there.  A full (non-lean) 1,000,000-release
run materialises 100,000 plugin documents (~700 MiB) twice and takes tens of minutes of CPU.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)
VERSIONS_PER_PLUGIN = 10
TARGET = "validate_email"


# --------------------------------------------------------------------------- serving and measuring


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.bytes = self.requests = 0


@contextmanager
def serve(site: Path) -> Iterator[tuple[str, _Counter]]:
    counter = _Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with counter.lock:
                counter.requests += 1

        def copyfile(self, source: Any, outputfile: Any) -> None:
            data = source.read()
            with counter.lock:
                counter.requests += 1
            try:
                outputfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client refused it mid-way
                return
            with counter.lock:
                counter.bytes += len(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", counter
    finally:
        httpd.shutdown()
        httpd.server_close()


def measure_client(site: Path, work: Path) -> dict[str, Any]:
    """Cold install, update with nothing changed, cold search: bytes and seconds each.

    Uses only API that format 1 and format 2 share, so the same function measures both.
    """
    from registry_tool.client import Registry, trust
    from registry_tool.errors import RegistryToolError

    out: dict[str, Any] = {}
    root1 = (site / "root/1.root.json").read_bytes()
    with serve(site) as (url, counter):
        state, plugins = work / "state", work / "plugins"
        counter.reset()
        started = time.perf_counter()
        try:
            trust(url, root_bytes=root1, state_dir=state, clock=lambda: NOW + timedelta(minutes=1))
        except RegistryToolError as err:  # format 1 above its cap: nothing works
            seconds = round(time.perf_counter() - started, 4)
            refused = {"refused": err.code, "bytes": counter.bytes, "seconds": seconds}
            return {op: dict(refused) for op in ("install", "update", "search")}

        def timed(name: str, op: Callable[[], Any]) -> None:
            counter.reset()
            started = time.perf_counter()
            try:
                op()
                out[name] = {"bytes": counter.bytes, "requests": counter.requests}
            except RegistryToolError as err:
                out[name] = {"refused": err.code, "bytes": counter.bytes}
            out[name]["seconds"] = round(time.perf_counter() - started, 4)

        def clock() -> datetime:
            return NOW + timedelta(minutes=2)

        def drop_cache() -> None:
            shutil.rmtree(state / "cache", ignore_errors=True)

        drop_cache()
        timed("install", lambda: Registry.open(url, state_dir=state, clock=clock).install(TARGET, plugins))
        timed("update", lambda: Registry.open(url, state_dir=state, clock=clock).update(plugins))
        drop_cache()
        timed("search", lambda: Registry.open(url, state_dir=state, clock=clock).search("email"))
    return out


# --------------------------------------------------------------------------- the base site


def base_site(out: Path) -> tuple[Any, Any, Any]:
    """The sample index built (no smoke) into ``out``: (build result, index key, root chain)."""
    from registry_tool.registry.build import BuildOptions, build_site, load_root_chain
    from registry_tool.signing import SecretKey

    index = out.parent / "index"
    shutil.copytree(REPO / "index", index, ignore=shutil.ignore_patterns("src"))
    key = SecretKey.load((REPO / "samples/keys/index.key").read_bytes(), None)
    result = build_site(BuildOptions(index=index, out=out, keys=[key], now=NOW, smoke=False, jobs=1))
    return result, key, load_root_chain(index, NOW)


def _sha(i: int) -> str:
    return hashlib.sha256(i.to_bytes(8, "big")).hexdigest()


# --------------------------------------------------------------------------- format 2


def grow_format2(site: Path, releases: int, key: Any, chain: Any) -> dict[str, Any]:
    """Add synthetic plugins to a built format-2 site until it has ``releases`` releases."""
    from registry_tool.format import FileRef, PluginDocument, TopDocument
    from registry_tool.registry.build import sign_registry
    from registry_tool.registry.document import read_site_dir

    pub = read_site_dir(site)
    template = pub.plugins[TARGET]["1.0.0"]
    docs = {name: PluginDocument(name, versions) for name, versions in pub.plugins.items()}
    have = sum(len(v) for v in pub.plugins.values())
    count = max(0, releases - have)

    def synthetic(i: int) -> PluginDocument:
        name = f"p{i:07d}"
        versions = {}
        for j in range(VERSIONS_PER_PLUGIN):
            version = f"1.0.{j}"
            n = i * VERSIONS_PER_PLUGIN + j
            versions[version] = template.__class__(
                **{
                    **template.__dict__,
                    "name": name,
                    "version": version,
                    "description": f"synthetic plugin {i}",
                    "manifest": FileRef(f"plugins/{name}/{version}/plugin.toml", _sha(2 * n), 900),
                    "wasm": FileRef(f"plugins/{name}/{version}/{name}.wasm", _sha(2 * n + 1), 40000),
                }
            )
        return PluginDocument(name, versions)

    plugins = -(-count // VERSIONS_PER_PLUGIN)
    for i in range(plugins):
        doc = synthetic(i)
        docs[doc.name] = doc
    release_total = sum(len(d.versions) for d in docs.values())

    def publish(target: Path, in_place: bool, version: int) -> tuple[float, int, int, list[Path]]:
        """Write the metadata and the signed top document: into an empty folder, or (``in_place``)
        into the published site, writing only the documents it does not hold, as a build does."""
        from registry_tool.format import build_metadata

        started = time.perf_counter()
        meta = build_metadata(docs.values())
        top = TopDocument(
            version=version,
            generated_at=pub.top.generated_at,
            expires_at=pub.top.expires_at,
            root_version=pub.top.root_version,
            registry=pub.top.registry,
            tree=meta.tree,
            catalog=meta.catalog,
            plugin_count=len(docs),
            release_count=meta.releases,
        )
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        kept = 0
        for rel, data in sorted(meta.paths().items()):
            path = target / rel
            if in_place and path.exists():  # content-addressed: the same bytes (pins verified)
                kept += 1
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
        data = top.to_bytes()
        sigs = sign_registry(data, [key], chain.root, top.registry.name, version)
        for name, text in sigs.items():
            (target / f".{name}.new").write_text(text)
            (target / f".{name}.new").replace(target / name)
        (target / ".registry.json.new").write_bytes(data)
        (target / ".registry.json.new").replace(target / "registry.json")
        return time.perf_counter() - started, len(written) + 1 + len(sigs), kept, written

    # Full: every metadata document into an empty folder, then the release files and root of
    # the base site next to them (not timed: hard links in a real build).
    full = site.parent / "full"
    full_s, full_written, _, _ = publish(full, False, pub.top.version + 1)
    for sub in ("plugins", "root"):
        shutil.copytree(site / sub, full / sub)
    shutil.rmtree(site)
    full.rename(site)
    meta_files = list((site / "meta").rglob("*.json"))
    # One change: one release added to one plugin, written next to the previous site.
    doc = docs["p0000000"] if plugins else docs[TARGET]
    extra = dict(doc.versions)
    base = next(iter(doc.versions.values()))
    folder = f"plugins/{doc.name}/2.0.0"
    extra["2.0.0"] = base.__class__(
        **{
            **base.__dict__,
            "version": "2.0.0",
            "manifest": FileRef(f"{folder}/plugin.toml", _sha(2**62), 900),
            "wasm": FileRef(f"{folder}/{doc.name}.wasm", _sha(2**62 + 1), 40000),
        }
    )
    docs[doc.name] = PluginDocument(doc.name, extra)
    # In place, as a build with --previous SITE does; then the site is put back for the client runs.
    saved = {n: (site / n).read_bytes() for n in ("registry.json", "registry.json.minisig")}
    incr_s, incr_written, incr_kept, new_files = publish(site, True, pub.top.version + 2)
    for path in new_files:
        path.unlink()
    for name, data in saved.items():
        (site / name).write_bytes(data)
    docs[doc.name] = doc
    return {
        "releases": release_total,
        "plugins": len(docs),
        "build_s": round(full_s, 3),
        "build_files": full_written,
        "incr_s": round(incr_s, 3),
        "incr_files": incr_written,
        "incr_kept": incr_kept,
        "meta_files": len(meta_files),
        "meta_bytes": sum(p.stat().st_size for p in meta_files),
        "top_bytes": (site / "registry.json").stat().st_size,
    }


def grow_format2_lean(site: Path, releases: int, key: Any, chain: Any) -> dict[str, Any]:
    """Format 2 at sizes where materialising every plugin document takes too long on a shared
    machine: the tree and the catalog are exact for ``releases`` releases (every synthetic plugin
    has its own pin), but the synthetic plugin documents themselves are not written (the measured
    operations never fetch them: install walks to the real ``validate_email``).  Reports the files
    a one-change rebuild writes (exact: the tree is recomputed), not build times."""
    from registry_tool.format import (
        CatalogDocument,
        CatalogEntry,
        Pin,
        PluginDocument,
        TopDocument,
        build_tree,
    )
    from registry_tool.registry.build import sign_registry
    from registry_tool.registry.document import read_site_dir

    pub = read_site_dir(site)
    shutil.rmtree(site / "meta")
    pins: dict[str, Pin] = {}
    entries: dict[str, CatalogEntry] = {}
    files: dict[str, bytes] = {}
    for name, versions in pub.plugins.items():
        doc = PluginDocument(name, versions)
        data = doc.to_bytes()
        pins[name] = Pin.of(data)
        files[pins[name].sha256] = data
        entries[name] = CatalogEntry.of(doc, pins[name])
    have = sum(len(v) for v in pub.plugins.values())
    plugins = -(-max(0, releases - have) // VERSIONS_PER_PLUGIN)
    for i in range(plugins):
        name = f"p{i:07d}"
        pins[name] = Pin(_sha(i), 9000)
        entries[name] = CatalogEntry(
            description=f"synthetic plugin {i}", keywords=(), license="Apache-2.0", abi="core",
            latest=f"1.0.{VERSIONS_PER_PLUGIN - 1}", versions=VERSIONS_PER_PLUGIN, permissions=(),
            host=">=0.2.0, <1.0.0", authors=("bench",), document=pins[name],
        )  # fmt: skip
    tree, nodes = build_tree(pins)
    files.update(nodes)
    catalog = CatalogDocument(dict(sorted(entries.items()))).to_bytes()
    files[Pin.of(catalog).sha256] = catalog
    for sha, data in files.items():
        path = site / Pin(sha, len(data)).path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    top = TopDocument(
        version=pub.top.version + 1, generated_at=pub.top.generated_at, expires_at=pub.top.expires_at,
        root_version=pub.top.root_version, registry=pub.top.registry, tree=tree, catalog=Pin.of(catalog),
        plugin_count=len(pins), release_count=have + plugins * VERSIONS_PER_PLUGIN,
    )  # fmt: skip
    data = top.to_bytes()
    sigs = sign_registry(data, [key], chain.root, top.registry.name, top.version)
    (site / "registry.json").write_bytes(data)
    for name, text in sigs.items():
        (site / name).write_text(text)
    # One change: a new pin for one plugin; the nodes that change are the ones written.
    _, changed_nodes = build_tree({**pins, "p0000000": Pin(_sha(2**62), 9100)})
    new_nodes = len(set(changed_nodes) - set(nodes))
    return {
        "releases": top.release_count,
        "plugins": len(pins),
        "build_s": None,
        "build_files": len(nodes) + 2 + len(pins),
        "incr_s": None,
        "incr_files": new_nodes + 1 + 1 + 1 + len(sigs),  # nodes, plugin document, catalog, top, sigs
        "meta_files": len(nodes) + 1 + len(pins),
        "meta_bytes": None,
        "top_bytes": len(data),
    }


# --------------------------------------------------------------------------- format 1 (old tree)


def grow_format1(site: Path, releases: int, key: Any, chain: Any) -> dict[str, Any]:
    """Add synthetic releases to a built format-1 registry.json (the old tree's own signer)."""
    from registry_tool.registry.build import sign_registry

    raw = json.loads((site / "registry.json").read_bytes())
    template = raw["plugins"][TARGET]["versions"]["1.0.0"]
    have = sum(len(p["versions"]) for p in raw["plugins"].values())
    count = max(0, releases - have)
    for i in range(-(-count // VERSIONS_PER_PLUGIN)):
        name = f"p{i:07d}"
        versions = {}
        for j in range(VERSIONS_PER_PLUGIN):
            n = i * VERSIONS_PER_PLUGIN + j
            versions[f"1.0.{j}"] = {
                **template,
                "description": f"synthetic plugin {i}",
                "manifest": {
                    "path": f"plugins/{name}/1.0.{j}/plugin.toml",
                    "sha256": _sha(2 * n),
                    "size": 900,
                },
                "wasm": {
                    "path": f"plugins/{name}/1.0.{j}/{name}.wasm",
                    "sha256": _sha(2 * n + 1),
                    "size": 40000,
                },
            }
        raw["plugins"][name] = {"versions": versions}
    started = time.perf_counter()
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    data = text.encode()
    sigs = sign_registry(data, [key], chain.root, raw["registry"]["name"], raw["version"])
    (site / "registry.json").write_bytes(data)
    for name, sig in sigs.items():
        (site / name).write_text(sig)
    build_s = time.perf_counter() - started
    return {
        "releases": sum(len(p["versions"]) for p in raw["plugins"].values()),
        "plugins": len(raw["plugins"]),
        "build_s": round(build_s, 3),
        "build_files": 1 + len(sigs),
        "incr_s": round(build_s, 3),  # format 1 rewrites and re-signs the whole document
        "incr_files": 1 + len(sigs),
        "meta_files": 1,
        "meta_bytes": len(data),
        "top_bytes": len(data),
    }


REPEAT = 3  # client operations: the fastest of 3 (a shared, loaded machine adds only delays)


def one_run(releases: int, fmt: int, lean: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{fmt}-") as tmp:
        work = Path(tmp)
        site = work / "site"
        _, key, chain = base_site(site)
        grow = grow_format1 if fmt == 1 else grow_format2_lean if lean else grow_format2
        grown = grow(site, releases, key, chain)
        best: dict[str, Any] = {}
        for i in range(REPEAT):
            (work / f"client{i}").mkdir()
            for op, result in measure_client(site, work / f"client{i}").items():
                if op not in best or result["seconds"] < best[op]["seconds"]:
                    best[op] = result
        return {**grown, **best}


# --------------------------------------------------------------------------- report


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MiB"


def _build(seconds: float | None, files: int) -> str:
    return f"{files:,} files" if seconds is None else f"{seconds:.2f} s, {files:,} files"


def _cell(op: dict[str, Any]) -> str:
    if "refused" in op:
        return f"refused ({op['refused']})"
    return f"{_kb(op['bytes'])}, {op['seconds'] * 1000:,.0f} ms"


def table(rows: list[tuple[int, int, dict[str, Any]]]) -> str:
    head = (
        "| releases | format | cold install | update, nothing changed | search | build (metadata) "
        "| one-change rebuild | metadata files | metadata bytes | top document |\n"
        "|---:|---:|---|---|---|---|---|---:|---:|---:|"
    )
    lines = [head]
    for releases, fmt, r in rows:
        lines.append(
            f"| {r.get('releases', releases):,} | {fmt} | {_cell(r['install'])} | {_cell(r['update'])} "
            f"| {_cell(r['search'])} | {_build(r['build_s'], r['build_files'])} "
            f"| {_build(r['incr_s'], r['incr_files'])} | {r['meta_files']:,} "
            f"| {'-' if r['meta_bytes'] is None else _kb(r['meta_bytes'])} | {_kb(r['top_bytes'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,10000,100000", help="comma-separated release counts")
    parser.add_argument("--format1", type=Path, help="a checkout of the last format-1 commit")
    parser.add_argument("--formats", default="2,1", help="which formats to run (format 1 needs --format1)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    parser.add_argument("--fmt", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--lean-from", type=int, default=1_000_000,
        help="from this size on, format 2 writes the exact tree and catalog but not the synthetic "
        "plugin documents (no build times; see grow_format2_lean)",
    )  # fmt: skip
    parser.add_argument("--lean", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.fmt, args.lean)))
        return 0
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        wanted = {int(f) for f in args.formats.split(",")}
        runs = [f for f in (2, 1) if f in wanted and (f == 2 or args.format1)]
        for fmt in runs:
            if fmt == 1 and size * 1100 > 256 * 1024 * 1024:
                continue  # a registry.json this large cannot be installed from anyway
            env = dict(os.environ)
            if fmt == 1:
                env["PYTHONPATH"] = str(args.format1)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(size), "--fmt", str(fmt)]
            if fmt == 2 and size >= args.lean_from:
                cmd.append("--lean")
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(REPO))
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            rows.append((size, fmt, json.loads(done.stdout.strip().splitlines()[-1])))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
