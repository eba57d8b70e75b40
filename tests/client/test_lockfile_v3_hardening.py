"""Lockfile version 3 under attack and at scale: each test fails without the rule it names.

A FIFO planted as the lockfile never blocks a writer holding the writers' lock; the file stays
within about twice a fresh base however large each commit is; a host whose reader thread folds
a line some other writer appended during a commit does not keep a stale parse.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import install as client_install
from registry_tool.client.errors import UnsafePathError
from registry_tool.client.install import LOCKFILE, MIN_CHANGE_BYTES, plugin_dir_lock, read_lockfile
from registry_tool.client.plugin_fs import PluginDir
from registry_tool.errors import UsageError
from tests.world.lockfile import line


def entry(name: str, version: str = "1.0.0", requested: str = "") -> dict[str, Any]:
    return {
        "abi": "core",
        "dependencies": {},
        "manifest": f"{name}/{version}/plugin.toml",
        "manifest_sha256": "a" * 64,
        "manifest_size": 1,
        "permissions": [],
        "published_at": "2026-11-21T12:00:00Z",
        "registry": "https://example.org/plugins/",
        "requested": requested,
        "required_by": [],
        "signatures": [],
        "signers": [],
        "version": version,
        "wasm": f"{name}/{version}/m.wasm",
        "wasm_sha256": "b" * 64,
        "wasm_size": 1,
    }


def fresh(folder: Path) -> dict[str, str]:
    client_install.forget_parsed()
    return {n: e.version for n, e in read_lockfile(folder).plugins.items()}


def test_a_fifo_planted_as_the_lockfile_does_not_block_the_append(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / LOCKFILE)
    outcome: list[BaseException | None] = []

    def append() -> None:
        try:
            with PluginDir(tmp_path) as pdir:
                pdir.append_durable(LOCKFILE, b'{"plugins":{}}\n', keep=0)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    worker = threading.Thread(target=append, daemon=True)
    worker.start()
    worker.join(60)  # generous: without O_NONBLOCK the open blocks until a reader comes, forever
    if worker.is_alive():  # unblock the thread (open a reader) so the suite can go on, then fail
        fd = os.open(tmp_path / LOCKFILE, os.O_RDONLY | os.O_NONBLOCK)
        worker.join(10)
        os.close(fd)
        pytest.fail("appending to a FIFO planted as the lockfile blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], (UsageError, UnsafePathError))


def test_commits_touching_every_entry_keep_the_file_near_one_base(tmp_path: Path) -> None:
    names = [f"p{i:03d}" for i in range(300)]
    (tmp_path / LOCKFILE).write_bytes(line({"lockfile_version": 3, "plugins": {n: entry(n) for n in names}}))
    base = (tmp_path / LOCKFILE).stat().st_size
    assert base > MIN_CHANGE_BYTES  # each full commit's line is about a base: the byte rule decides
    for round_ in range(8):  # every commit changes every entry (an update of everything)
        with plugin_dir_lock(tmp_path) as session:
            delta = {
                n: dataclasses.replace(e, requested=f"^1.{round_}") for n, e in session.lock.plugins.items()
            }
            client_install._commit(session, delta)
        size = (tmp_path / LOCKFILE).stat().st_size
        assert size <= 2 * base + MIN_CHANGE_BYTES, (round_, size, base)
    client_install.forget_parsed()
    assert {e.requested for e in read_lockfile(tmp_path).plugins.values()} == {"^1.7"}


def test_a_line_folded_by_a_reader_during_a_commit_leaves_no_stale_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / LOCKFILE
    path.write_bytes(
        line({"lockfile_version": 3, "plugins": {"victim": entry("victim"), "other": entry("other")}})
    )
    read_lockfile(tmp_path)
    real = PluginDir.append_durable

    def racing(self: PluginDir, rel: str, data: bytes, *, keep: int) -> bool:
        # Inside the commit, before its line lands: a writer that ignores the lock appends a
        # line, and a reader thread of this host folds it into the shared parse.
        with path.open("ab") as f:
            f.write(line({"plugins": {"other": entry("other", "1.0.1")}}))
        read_lockfile(tmp_path)
        return real(self, rel, data, keep=keep)

    monkeypatch.setattr(PluginDir, "append_durable", racing)
    with plugin_dir_lock(tmp_path) as session:
        client_install._commit(session, {"victim": None})
    monkeypatch.setattr(PluginDir, "append_durable", real)
    seen = {n: e.version for n, e in read_lockfile(tmp_path).plugins.items()}  # this process
    assert seen == fresh(tmp_path)  # what the file holds
    assert "victim" not in seen
    assert json.loads(path.read_bytes().splitlines()[-1]) == {"plugins": {"victim": None}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signatures", ["aa/1.0.0/plugin.toml.minisig"] * 2),
        ("signers", ["0123456789ABCDEF"] * 2),
        ("permissions", ["keys", "keys"]),
        ("required_by", ["bb", "bb"]),
    ],
)
def test_a_string_listed_twice_is_refused(tmp_path: Path, field: str, value: list[str]) -> None:
    # Each listed signature was read and checked again: 100,000 copies of one path took 25 s.
    bad = {**entry("aa"), field: value}
    (tmp_path / LOCKFILE).write_bytes(line({"lockfile_version": 3, "plugins": {"aa": bad}}))
    with pytest.raises(UsageError, match="twice"):
        fresh(tmp_path)
    ok = {**entry("aa"), field: value[:1]}
    (tmp_path / LOCKFILE).write_bytes(line({"lockfile_version": 3, "plugins": {"aa": ok}}))
    assert fresh(tmp_path) == {"aa": "1.0.0"}


@pytest.mark.parametrize(
    "when", ["2026-02-30T12:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T12:00:60Z", "0000-01-01T00:00:00Z"]
)
def test_a_publication_time_no_calendar_has_is_a_malformed_lockfile(tmp_path: Path, when: str) -> None:
    """Decision 7: times exactly, years 1 or later; the Rust verifier refused these, Python took them."""
    from registry_tool.client.errors import LockfileError

    (tmp_path / LOCKFILE).write_bytes(
        line({"lockfile_version": 3, "plugins": {"alpha": entry("alpha") | {"published_at": when}}})
    )
    client_install.forget_parsed()
    with pytest.raises(LockfileError, match="published_at"):
        read_lockfile(tmp_path)


@pytest.mark.parametrize("requested", ["@@bad", "^", ">=1.0.0,,"])
def test_a_requested_range_outside_the_grammar_is_a_malformed_lockfile(
    tmp_path: Path, requested: str
) -> None:
    """verify and install --locked took it; update then said "version range '@@bad' is not valid",
    naming neither the lockfile nor the entry."""
    from registry_tool.client.errors import LockfileError

    (tmp_path / LOCKFILE).write_bytes(
        line({"lockfile_version": 3, "plugins": {"alpha": entry("alpha", requested=requested)}})
    )
    client_install.forget_parsed()
    with pytest.raises(LockfileError, match="requested"):
        read_lockfile(tmp_path)
    for good in ("", "(dependency)", "^1.0", "1.0.0", ">=1.0.0, <2.0.0"):
        (tmp_path / LOCKFILE).write_bytes(
            line({"lockfile_version": 3, "plugins": {"alpha": entry("alpha", requested=good)}})
        )
        assert fresh(tmp_path) == {"alpha": "1.0.0"}


def test_a_lockfile_that_is_no_json_says_so_once(tmp_path: Path) -> None:
    from registry_tool.client.errors import LockfileError

    (tmp_path / LOCKFILE).write_bytes(b"\n\n\n")
    client_install.forget_parsed()
    with pytest.raises(LockfileError) as err:
        read_lockfile(tmp_path)
    assert str(err.value.what).count("not valid JSON") == 1, err.value.what


def test_a_lockfile_with_another_hard_link_is_replaced_not_appended_to(tmp_path: Path) -> None:
    """A file outside the plugin directory linked in as the lockfile: an append wrote into it."""
    outside = tmp_path / "outside.json"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    outside.write_bytes(line({"lockfile_version": 3, "plugins": {"victim": entry("victim")}}))
    os.link(outside, plugins / LOCKFILE)
    before = outside.read_bytes()
    read_lockfile(plugins)
    with plugin_dir_lock(plugins) as session:
        client_install._commit(session, {"victim": None})
    assert outside.read_bytes() == before  # untouched
    assert (plugins / LOCKFILE).stat().st_nlink == 1
    assert "victim" not in fresh(plugins)
