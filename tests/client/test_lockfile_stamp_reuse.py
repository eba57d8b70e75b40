"""Reusing a host's lockfile parse without reading the file: each test tries to break the rule.

A writer session (and a reader) of a process that holds a parse stamped with exactly what an
``fstat`` of the lockfile shows now (``st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns``)
reads nothing, but only on a file system probed to give every change made after an fstat a new
ctime (``plugin_fs.changed_ctime_is_new``).  Here another process changes the file behind that
parse every way it can: rewritten in place with the same size and the same mtime, a new base
renamed into place with the same size, truncated, swapped by rename, replaced by a link or a
FIFO, rewritten while the writers' lock is held, and the same on a file system whose clock is
coarse.  After each, this process must see exactly what a fresh process reads.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from registry_tool._files import UnreadableFileError
from registry_tool.client import install as client_install
from registry_tool.client.errors import UnsafePathError
from registry_tool.client.install import LOCKFILE, plugin_dir_lock, read_lockfile
from registry_tool.client.plugin_fs import changed_ctime_is_new, ctime_verdict
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


def seen(folder: Path) -> dict[str, str]:
    """What this process reads: name -> requested (through a writer session, as install does)."""
    with plugin_dir_lock(folder) as session:
        return {n: e.requested for n, e in session.lock.plugins.items()}


def fresh(folder: Path) -> dict[str, str]:
    """What a fresh process reads."""
    client_install.forget_parsed()
    return {n: e.requested for n, e in read_lockfile(folder).plugins.items()}


def commit_requested(folder: Path, name: str, requested: str) -> None:
    with plugin_dir_lock(folder) as session:
        client_install._commit(
            session, {name: dataclasses.replace(session.lock.plugins[name], requested=requested)}
        )


def rewrite_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Another process's in-place edit keeping the size and the mtime (``utime`` cannot keep the ctime)."""
    assert len(old) == len(new)
    info = path.stat()
    data = path.read_bytes()
    assert data.count(old) == 1
    with path.open("r+b") as f:
        f.seek(data.index(old))
        f.write(new)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (info.st_ino, info.st_size, info.st_mtime_ns)


@pytest.fixture(autouse=True)
def _fresh_process() -> Any:
    client_install.forget_parsed()
    yield
    client_install.forget_parsed()


@pytest.fixture
def stamped(tmp_path: Path) -> Path:
    """A folder whose lockfile this process has just appended to (its parse stamped, if the fs allows)."""
    doc = {"lockfile_version": 3, "plugins": {"alpha": entry("alpha"), "beta": entry("beta")}}
    (tmp_path / LOCKFILE).write_bytes(line(doc))
    assert seen(tmp_path) == {"alpha": "", "beta": ""}
    fd = os.open(tmp_path / client_install.LOCK, os.O_RDWR)
    try:  # a probe preempted by the load cannot tell: asked again, as each writer session would
        for _ in range(100):
            client_install._probe_file_system(fd)
            if os.fstat(fd).st_dev in client_install._NEW_CTIME:
                break
    finally:
        os.close(fd)
    commit_requested(tmp_path, "alpha", "^1.0")
    assert seen(tmp_path) == {"alpha": "^1.0", "beta": ""}
    return tmp_path


def test_an_unchanged_lockfile_is_not_read_again_by_a_writer_session(
    stamped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule itself: on a file system whose changes after an fstat get a new ctime, nothing is read."""
    if not client_install._NEW_CTIME.get(os.stat(stamped).st_dev):
        pytest.skip("this file system keeps the ctime of a change in the same clock tick: always read")
    reads: list[int] = []
    real = client_install._read_fd
    monkeypatch.setattr(client_install, "_read_fd", lambda fd, cap: reads.append(fd) or real(fd, cap))
    monkeypatch.setattr(client_install, "_read_lock_bytes", lambda *a: pytest.fail("read"))
    commit_requested(stamped, "beta", "^1.0")  # a session, then an append: the next one reads nothing
    assert seen(stamped) == {"alpha": "^1.0", "beta": "^1.0"}
    assert read_lockfile(stamped).plugins["beta"].requested == "^1.0"  # a reader neither
    assert reads == []
    assert fresh(stamped) == {"alpha": "^1.0", "beta": "^1.0"}


def test_a_rewrite_in_place_with_the_same_size_and_mtime_is_seen(stamped: Path) -> None:
    rewrite_in_place(stamped / LOCKFILE, b'"requested":"^1.0"', b'"requested":"~1.0"')
    assert seen(stamped) == fresh(stamped) == {"alpha": "~1.0", "beta": ""}


def test_a_rewrite_in_place_of_the_base_is_seen_by_a_reader(stamped: Path) -> None:
    old = b'"manifest":"beta/1.0.0/plugin.toml","manifest_sha256":"' + b"a" * 64 + b'","manifest_size":1'
    rewrite_in_place(stamped / LOCKFILE, old, old[:-1] + b"7")
    assert read_lockfile(stamped).plugins["beta"].manifest_size == 7
    client_install.forget_parsed()
    assert read_lockfile(stamped).plugins["beta"].manifest_size == 7


def test_a_new_base_of_the_same_size_renamed_into_place_is_seen(stamped: Path) -> None:
    path = stamped / LOCKFILE
    info = path.stat()
    # Another writer's compaction: one base line, padded to the old size with a requirement.
    state = {"alpha": entry("alpha", requested="^1.0"), "beta": entry("beta", requested="")}
    base = line({"lockfile_version": 3, "plugins": state})
    pad = info.st_size - len(base)
    assert pad > 0
    state["beta"]["requested"] = "x" * pad
    new = line({"lockfile_version": 3, "plugins": state})
    assert len(new) == info.st_size
    tmp = stamped / "another-writer.tmp"
    tmp.write_bytes(new)
    os.utime(tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.rename(tmp, path)
    assert seen(stamped) == fresh(stamped) == {"alpha": "^1.0", "beta": "x" * pad}


def test_a_truncated_lockfile_is_seen(stamped: Path) -> None:
    path = stamped / LOCKFILE
    data = path.read_bytes()
    os.truncate(path, data.index(b"\n") + 1)  # back to the base: the change line is gone
    assert seen(stamped) == fresh(stamped) == {"alpha": "", "beta": ""}


def test_a_file_swapped_by_rename_is_seen(stamped: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    doc = {"lockfile_version": 3, "plugins": {"alpha": entry("alpha"), "gamma": entry("gamma")}}
    (other / LOCKFILE).write_bytes(line(doc))
    os.rename(other / LOCKFILE, stamped / LOCKFILE)
    assert seen(stamped) == fresh(stamped) == {"alpha": "", "gamma": ""}


def test_a_link_swapped_in_for_the_lockfile_is_refused(stamped: Path) -> None:
    path = stamped / LOCKFILE
    target = stamped / "elsewhere.json"
    target.write_bytes(path.read_bytes())
    os.unlink(path)
    os.symlink(target, path)
    with pytest.raises(UnsafePathError):
        seen(stamped)
    with pytest.raises(UnsafePathError):
        read_lockfile(stamped)


def test_a_fifo_swapped_in_for_the_lockfile_is_refused_without_blocking(stamped: Path) -> None:
    path = stamped / LOCKFILE
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(UnreadableFileError, match="FIFO"):
        seen(stamped)


def test_an_append_by_another_writer_is_folded(stamped: Path) -> None:
    with (stamped / LOCKFILE).open("ab") as f:
        f.write(line({"plugins": {"gamma": entry("gamma", requested="^2")}}))
    assert seen(stamped) == fresh(stamped) == {"alpha": "^1.0", "beta": "", "gamma": "^2"}


def test_a_rewrite_while_the_writers_lock_is_held_is_not_stamped_over(stamped: Path) -> None:
    """A writer ignoring the lock edits the file between the session's read and its append.

    The append's own stamp would cover the edit: it is taken only when the file stood as stamped
    just before the append, so the next command reads the file and sees the edit.
    """
    path = stamped / LOCKFILE
    with plugin_dir_lock(stamped) as session:
        rewrite_in_place(path, b'"requested":"^1.0"', b'"requested":"~1.0"')
        client_install._commit(
            session, {"beta": dataclasses.replace(session.lock.plugins["beta"], requested="^3")}
        )
    assert seen(stamped) == fresh(stamped) == {"alpha": "~1.0", "beta": "^3"}


def test_a_line_appended_right_after_this_process_append_is_not_stamped_over(
    stamped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer ignoring the lock appends between this process's write() and its fstat."""
    path = stamped / LOCKFILE
    lock_ino = path.stat().st_ino
    real_write = os.write

    def write_then_foreign(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        if os.fstat(fd).st_ino == lock_ino:
            with path.open("ab") as f:
                f.write(line({"plugins": {"gamma": entry("gamma", requested="^2")}}))
        return written

    monkeypatch.setattr(os, "write", write_then_foreign)
    commit_requested(stamped, "beta", "^3")
    monkeypatch.undo()
    assert seen(stamped) == fresh(stamped) == {"alpha": "^1.0", "beta": "^3", "gamma": "^2"}


def test_on_a_coarse_clock_the_stamp_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a change in the same clock tick keeps the ctime, an equal stamp proves nothing: read."""
    monkeypatch.setattr(client_install, "_NEW_CTIME", {})
    monkeypatch.setattr(client_install, "changed_ctime_is_new", lambda fd: False)
    doc = {"lockfile_version": 3, "plugins": {"alpha": entry("alpha"), "beta": entry("beta")}}
    path = tmp_path / LOCKFILE
    path.write_bytes(line(doc))
    commit_requested(tmp_path, "alpha", "^1.0")
    rewrite_in_place(path, b'"requested":"^1.0"', b'"requested":"~1.0"')
    # What a coarse clock would show: the edit kept every field of the stamp.
    client_install._PARSED[str(tmp_path)].stamp = client_install._stamp(path.stat())
    assert seen(tmp_path) == fresh(tmp_path) == {"alpha": "~1.0", "beta": ""}


def test_with_the_probe_the_forged_stamp_would_be_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counterpart of the coarse-clock test: the stamp alone decides once the probe said yes."""
    monkeypatch.setattr(client_install, "_NEW_CTIME", {})
    monkeypatch.setattr(client_install, "changed_ctime_is_new", lambda fd: True)
    doc = {"lockfile_version": 3, "plugins": {"alpha": entry("alpha"), "beta": entry("beta")}}
    path = tmp_path / LOCKFILE
    path.write_bytes(line(doc))
    commit_requested(tmp_path, "alpha", "^1.0")
    rewrite_in_place(path, b'"requested":"^1.0"', b'"requested":"~1.0"')
    client_install._PARSED[str(tmp_path)].stamp = client_install._stamp(path.stat())
    assert seen(tmp_path) == {"alpha": "^1.0", "beta": ""}  # what the forged stamp vouched for


# --------------------------------------------------------------------------- the probe


def test_the_probe_says_no_when_a_change_keeps_the_ctime() -> None:
    t = 10**18
    assert ctime_verdict([t, t, t], 5_000) is False
    assert ctime_verdict([t, t + 1_000, t + 1_000], 5_000) is False


def test_the_probe_says_no_when_the_ctime_moves_by_a_clock_tick() -> None:
    t = 10**18  # a coarse clock that ticked during the probe: a step of 1 ms within 5 us
    assert ctime_verdict([t, t, t + 1_000_000], 5_000) is False
    assert ctime_verdict([t, t + 1_000_000, t + 1_000_000], 5_000) is False
    assert ctime_verdict([t - 4_000_000, t, t + 4_000_000], 5_000) is False  # HZ=250


def test_the_probe_says_yes_for_steps_finer_than_any_tick() -> None:
    t = 10**18  # multigrain: the first change may take the coarse clock, the next ones are fine
    assert ctime_verdict([t, t + 3_000, t + 4_500], 5_000) is True


def test_the_probe_cannot_tell_when_it_was_preempted() -> None:
    t = 10**18
    assert ctime_verdict([t, t + 3_000, t + 4_500], 2_000_000) is None


def test_the_probe_on_this_file_system_answers(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "probe", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        verdicts = {changed_ctime_is_new(fd) for _ in range(5)}
    finally:
        os.close(fd)
    assert verdicts <= {True, False, None} and len(verdicts - {None}) <= 1  # one file system, one answer
