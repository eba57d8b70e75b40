"""Interrupted builds, resign, the previous registry over HTTP, and the CLI."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from registry_tool._cli import _register_areas, app
from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format import TopDocument
from registry_tool.registry import publish as publish_mod
from registry_tool.registry import resign_site
from registry_tool.registry import site as site_io
from registry_tool.registry.build import BuildOptions, build_site

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
Index = Any
MINISIGN = shutil.which("minisign")


def build(index: Index, out: Path, **kw: Any) -> Any:
    opts: dict[str, Any] = {"now": NOW, "verify_now": NOW, "smoke": False, "keys": [index.keys.index]}
    opts.update(kw)
    return build_site(BuildOptions(index=index.path, out=out, **opts))


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- interruption


def test_exception_mid_staging_leaves_previous_site_intact(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    build(index, site)
    before = tree(site)
    index.add_release("alpha", "1.2.0", variant=4)
    real_write = publish_mod._write
    calls = {"n": 0}

    def failing_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(publish_mod, "_write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        build(index, site, previous=str(site), now=LATER)
    assert tree(site) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")) == [".site.lock"]


def test_failure_during_swap_leaves_previous_site_intact(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    build(index, site)
    before = tree(site)
    # New bytes at a published path (allowed without --previous): only a whole-site swap is atomic.
    for f in index.release_dir("alpha", "1.0.0").iterdir():
        f.unlink()
    index.add_release("alpha", "1.0.0", variant=9)

    def broken_swap(staged: Path, target: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(site_io, "swap_into_place", broken_swap)
    with pytest.raises(KeyboardInterrupt):
        build(index, site, now=LATER)
    assert tree(site) == before


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time, pickle
    from pathlib import Path
    from registry_tool.registry import build as b, publish as p
    real = p._write
    def slow(path, data):
        real(path, data)
        if str(path).endswith(".wasm"):
            print("staging", flush=True)
            time.sleep(60)
    p._write = slow
    opts = pickle.loads(Path(sys.argv[1]).read_bytes())
    b.build_site(opts)
    """
)


def test_killed_build_leaves_previous_site_intact_and_next_build_recovers(
    index: Index, tmp_path: Path
) -> None:
    import pickle

    site = tmp_path / "site"
    build(index, site)
    before = tree(site)
    index.add_release("alpha", "1.2.0", variant=4)
    opts = BuildOptions(
        index=index.path, out=site, keys=[index.keys.index], now=LATER, verify_now=NOW, smoke=False
    )
    (tmp_path / "opts.pickle").write_bytes(pickle.dumps(opts))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(tmp_path / "opts.pickle")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "staging"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert tree(site) == before
    assert list(tmp_path.glob(".site.build-*")), "the killed build should have been mid-staging"
    result = build(index, site, now=LATER)
    assert not list(tmp_path.glob(".site.build-*"))
    assert "1.2.0" in result.document.plugins["alpha"]


def test_concurrent_builds_of_one_site_are_serialised(index: Index, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    site = tmp_path / "site"
    build(index, site)
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(build, index, site, registry_version=v)
            for v in (90_000_000_000_000, 90_000_000_000_001)
        ]
        versions = sorted(r.result().document.version for r in runs)
    assert versions == [90_000_000_000_000, 90_000_000_000_001]
    assert TopDocument.parse((site / "registry.json").read_bytes()).version in versions
    assert not list(tmp_path.glob(".site.build-*"))


def test_recovery_after_a_crash_between_the_two_fallback_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "registry.json").write_text("{}")
    staged = site_io.staging_dir(site)
    (staged / "registry.json").write_text("new")
    monkeypatch.setattr(site_io, "_exchange", lambda a, b: False)
    real_rename = Path.rename

    def crash_on_second(self: Path, target: Any) -> Any:
        if self == staged:
            raise KeyboardInterrupt("killed between the renames")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        site_io.swap_into_place(staged, site)
    monkeypatch.undo()
    assert not site.exists()
    site_io.recover_interrupted(site)
    assert (site / "registry.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_swap_without_renameat2_still_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "registry.json").write_text("old")
    staged = site_io.staging_dir(site)
    (staged / "registry.json").write_text("new")
    monkeypatch.setattr(site_io, "_exchange", lambda a, b: False)
    site_io.swap_into_place(staged, site)
    assert (site / "registry.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


# --------------------------------------------------------------------------- resign


def test_resign_bumps_version_and_expiry_only(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build(index, site)
    files_before = tree(site)
    later = NOW + timedelta(days=6)
    result = resign_site(site, [index.keys.index], later)
    old, new = first.document.top.to_json(), result.document.to_json()
    assert new["version"] > old["version"]
    assert (new["generated_at"], new["expires_at"]) == ("2026-11-27T12:00:00Z", "2026-12-04T12:00:00Z")
    for k in ("version", "generated_at", "expires_at"):
        del old[k], new[k]
    assert old == new
    after = tree(site)
    changed = {k for k in after if after[k] != files_before.get(k)} | (set(files_before) - set(after))
    assert changed == {"registry.json", "registry.json.minisig"}
    assert TopDocument.parse(after["registry.json"]) == result.document
    # Resigning again keeps the window (7 days), not a growing one.
    again = resign_site(site, [index.keys.index], later + timedelta(days=1))
    assert again.document.expires_at == "2026-12-05T12:00:00Z"


def test_resign_refuses_a_tampered_registry(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    doc = site / "registry.json"
    doc.write_bytes(doc.read_bytes().replace(b"Registry used by the build tests", b"Registry!", 1))
    before = tree(site)
    with pytest.raises(CheckFailed):
        resign_site(site, [index.keys.index], LATER)
    assert tree(site) == before


def test_resign_with_a_non_index_key_is_refused(index: Index, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build(index, site)
    with pytest.raises(UsageError, match="not an index key"):
        resign_site(site, [index.keys.alice], LATER)


# --------------------------------------------------------------------------- previous over HTTP


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_previous_registry_from_a_url(index: Index, tmp_path: Path, serve: Any) -> None:
    published = tmp_path / "published"
    first = build(index, published)
    url = serve(published)
    index.add_release("alpha", "1.2.0", variant=4)
    result = build(index, tmp_path / "site", previous=url, registry_version=first.document.version + 1)
    assert result.previous_version == first.document.version
    assert result.document.version == first.document.version + 1
    # A mirror serving a tampered registry.json is refused.
    doc = published / "registry.json"
    doc.write_bytes(doc.read_bytes().replace(b"Registry used by the build tests", b"Registry!", 1))
    with pytest.raises(CheckFailed):
        build(index, tmp_path / "site2", previous=url)
    with pytest.raises(CheckFailed, match="HTTP 404"):
        build(index, tmp_path / "site3", previous=url + "missing/")


def test_previous_registry_from_a_file_url(index: Index, tmp_path: Path) -> None:
    published = tmp_path / "published"
    first = build(index, published)
    result = build(index, tmp_path / "site", previous=published.as_uri(), now=LATER)
    assert result.previous_version == first.document.version


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    """A hostile mirror: a valid head, then one body byte every 0.2 s (no socket timeout ever fires)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "65536")
        self.end_headers()
        try:
            for _ in range(65536):
                self.wfile.write(b"{")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_previous_site_that_trickles_is_cut_at_the_deadline(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte every few seconds held the build for days: each read had its timeout, their sum none."""
    from registry_tool.registry import site as site_mod

    monkeypatch.setattr(site_mod, "_PREVIOUS_DEADLINE_S", 1.5)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        started = time.monotonic()
        with pytest.raises(CheckFailed, match="previous site"):
            build(index, tmp_path / "site", previous=url)
        assert time.monotonic() - started < 60  # the deadline, not the 3.6 hours the body would take
    finally:
        server.shutdown()
        server.server_close()


def test_a_fifo_in_a_previous_folder_is_refused_not_waited_on(index: Index, tmp_path: Path) -> None:
    """A metadata file of a --previous folder replaced by a FIFO: open() blocked the build forever."""
    published = tmp_path / "published"
    build(index, published)
    # A plugin document: the build reads every one of them by its pin (the catalog it does not read).
    node = next(p for p in sorted(published.rglob("*.json")) if b'"registry-plugin"' in p.read_bytes())
    node.unlink()
    os.mkfifo(node)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            build(index, tmp_path / "site", previous=str(published), now=LATER)
            outcome.append(None)
        except BaseException as err:  # reported below
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader, then fail
        with open(os.open(node, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("the build waits on the FIFO")
    assert isinstance(outcome[0], CheckFailed) and "not a regular file" in str(outcome[0])


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_areas()
    return CliRunner()


def write_key(index: Index, folder: Path) -> Path:
    path = folder / "index.key"
    path.write_bytes(index.keys.index.dump(None))
    return path


def test_cli_build_json_summary_and_resign(index: Index, tmp_path: Path, runner: CliRunner) -> None:
    key = write_key(index, tmp_path)
    site = tmp_path / "site"
    env = {"SOURCE_DATE_EPOCH": str(int(NOW.timestamp()))}
    args = ["build", str(index.path), "--out", str(site), "--key", str(key), "--no-smoke", "--no-cache"]
    res = runner.invoke(app, [*args, "--format", "json"], env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and data["command"] == "build"
    summary = data["results"][0]["data"]
    assert summary["registry_version"] == 20261121120000 and summary["releases"] == 4
    # A second build (same epoch) with --previous must bump the version: previous + 1.
    res = runner.invoke(app, [*args, "--previous", str(site)], env=env)
    assert res.exit_code == 0, res.output
    assert TopDocument.parse((site / "registry.json").read_bytes()).version == 20261121120001
    res = runner.invoke(app, ["resign", str(site), "--key", str(key), "--format", "json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["data"]["registry_version"] == 20261121120002


def test_cli_refusal_exit_code_and_report(index: Index, tmp_path: Path, runner: CliRunner) -> None:
    key = write_key(index, tmp_path)
    (index.release_dir("alpha", "1.1.0") / "plugin.toml.minisig").unlink()
    res = runner.invoke(
        app,
        [
            "build",
            str(index.path),
            "--out",
            str(tmp_path / "s"),
            "--key",
            str(key),
            "--no-smoke",
            "--no-cache",
        ],
        env={"SOURCE_DATE_EPOCH": str(int(NOW.timestamp()))},
    )
    assert res.exit_code == 1
    assert "alpha 1.1.0" in res.stdout and "FAIL" in res.stdout
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("extra_env", "key_name", "message"),
    [
        ({}, "missing.key", "secret key file"),
        ({"SOURCE_DATE_EPOCH": "yesterday"}, "index.key", "SOURCE_DATE_EPOCH"),
    ],
)
def test_cli_usage_errors_exit_2(
    index: Index, tmp_path: Path, runner: CliRunner, extra_env: dict[str, str], key_name: str, message: str
) -> None:
    write_key(index, tmp_path)
    res = runner.invoke(
        app,
        ["build", str(index.path), "--out", str(tmp_path / "s"), "--key", str(tmp_path / key_name)],
        env=extra_env,
    )
    assert res.exit_code == 2
    assert message in res.output


def test_cli_encrypted_key_from_environment(index: Index, tmp_path: Path, runner: CliRunner) -> None:
    key = tmp_path / "enc.key"
    key.write_bytes(index.keys.index.dump(b"s3cret", opslimit=1 << 10, memlimit=1 << 20))
    base = [
        "build",
        str(index.path),
        "--out",
        str(tmp_path / "s"),
        "--key",
        str(key),
        "--no-smoke",
        "--no-cache",
    ]
    res = runner.invoke(app, [*base, "--passphrase-env", "IDX_PASS"], env={"IDX_PASS": "s3cret"})
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--passphrase-env", "IDX_PASS"], env={"IDX_PASS": "wrong"})
    assert res.exit_code == 2 and "passphrase" in res.output


@pytest.mark.skipif(MINISIGN is None, reason="minisign binary not installed")
def test_cli_site_is_served_and_verifies(index: Index, tmp_path: Path, runner: CliRunner, serve: Any) -> None:
    """The site is usable as is from a plain static server: fetch and verify with minisign."""
    import requests

    key = write_key(index, tmp_path)
    site = tmp_path / "site"
    res = runner.invoke(
        app, ["build", str(index.path), "--out", str(site), "--key", str(key), "--no-smoke", "--no-cache"]
    )
    assert res.exit_code == 0, res.output
    url = serve(site)
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    for name in ("registry.json", "registry.json.minisig"):
        (fetched / name).write_bytes(requests.get(url + name, timeout=10).content)
    pub = tmp_path / "index.pub"
    pub.write_text(index.keys.index.public_key.to_text())
    ok = subprocess.run(
        [MINISIGN, "-Vm", str(fetched / "registry.json"), "-p", str(pub)], capture_output=True
    )
    assert ok.returncode == 0
    # Down the pins: top -> tree -> plugin document -> release file, each checked by digest.
    from registry_tool.format import NodeDocument, Pin, PluginDocument

    def pinned(pin: Pin) -> bytes:
        data = requests.get(url + pin.path, timeout=10).content
        assert pin.matches(data)
        return data

    top = TopDocument.parse((fetched / "registry.json").read_bytes())
    step = NodeDocument.parse(pinned(top.tree), expected_prefix="").step("beta")
    assert step is not None and step[0] == "plugin"  # a small registry's tree is one leaf
    doc = PluginDocument.parse(pinned(step[1]), expected_name="beta")
    wasm = requests.get(url + doc.versions["2.0.0"].wasm.path, timeout=10).content
    import hashlib

    assert hashlib.sha256(wasm).hexdigest() == doc.versions["2.0.0"].wasm.sha256


def test_symlinked_site_keeps_its_link(index: Index, tmp_path: Path) -> None:
    real = tmp_path / "releases" / "site"
    real.parent.mkdir()
    link = tmp_path / "www"
    build(index, real)
    link.symlink_to(real)
    result = build(index, link, now=LATER)
    assert link.is_symlink() and link.resolve() == real
    assert TopDocument.parse((link / "registry.json").read_bytes()).version == result.document.version
    resign_site(link, [index.keys.index], LATER + timedelta(hours=1))
    assert link.is_symlink() and not list(tmp_path.rglob(".site.build-*"))


def test_a_previous_url_that_does_not_parse_is_a_usage_error() -> None:
    """``--previous 'http://[x/'`` crashed the build (exit 3) in urlsplit."""
    from registry_tool.errors import UsageError
    from registry_tool.registry.site import read_site

    for bad in ("http://[x/", "http://127.0.0.1:99999/"):
        with pytest.raises(UsageError, match="not a valid URL"):
            read_site(bad, [])
