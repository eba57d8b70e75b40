"""Lockfile version 3 (docs/client.md, "The plugin directory and the lockfile"): one rule per test.

Each test fails without the rule it is named after: the uncommitted tail, null for an absent
name, version 2 read and converted, the compaction rule, one change line per commit holding the
required_by changes, the parse reused by byte prefix, readers during a write, a writer killed
mid-append.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from registry_tool.client import install as client_install
from registry_tool.client import load_plugin_bytes, remove, verify_installed
from registry_tool.client.errors import LockfileError
from registry_tool.client.install import LOCKFILE, MIN_CHANGE_LINES, read_lockfile
from tests.world.lockfile import line, lines, read_lock

from .client_world import World

pytestmark = pytest.mark.simulated


def fresh_read(folder: Path) -> dict[str, str]:
    """What a fresh process reads: name -> version (nothing reused from this process's parse)."""
    client_install._PARSED.clear()
    return {n: e.version for n, e in read_lockfile(folder).plugins.items()}


@pytest.fixture
def one(trusted: World) -> World:
    trusted.open().install("alpha@1.0.0", trusted.plugins)
    return trusted


def test_uncommitted_tail_is_ignored_by_readers_and_cut_by_the_next_writer(one: World) -> None:
    path = one.plugins / LOCKFILE
    with path.open("ab") as f:  # a write that did not finish: it would remove alpha
        f.write(b'{"plugins":{"alpha":null}}')
    assert fresh_read(one.plugins) == {"alpha": "1.0.0"}
    assert read_lockfile(one.plugins).plugins["alpha"].version == "1.0.0"  # the reused parse too
    one.open().install("beta", one.plugins)
    assert path.read_bytes().endswith(b"}\n")
    assert all(each == line(json.loads(each)) for each in lines(one.plugins))  # nothing glued to the tail
    assert len(lines(one.plugins)) == 2
    assert fresh_read(one.plugins) == {"alpha": "1.0.0", "beta": "2.0.0"}


def test_a_file_without_a_complete_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOCKFILE).write_bytes(b'{"lockfile_version":3,"plugins":{}}')
    with pytest.raises(LockfileError, match="no complete line"):
        read_lockfile(tmp_path)


def test_null_for_a_name_not_in_the_state_is_refused(one: World) -> None:
    with (one.plugins / LOCKFILE).open("ab") as f:
        f.write(b'{"plugins":{"beta":null}}\n')
    with pytest.raises(LockfileError, match="removes 'beta', which it does not hold") as err:
        fresh_read(one.plugins)
    assert err.value.where is not None and "2" in str(err.value.where)  # the line is named


def test_null_removes_a_name_in_the_state(one: World) -> None:
    with (one.plugins / LOCKFILE).open("ab") as f:
        f.write(b'{"plugins":{"alpha":null}}\n')
    assert fresh_read(one.plugins) == {}


@pytest.mark.parametrize(
    "change",
    [
        b'{"plugins":{}}\n',  # empty: a commit that changed nothing writes nothing
        b'{"plugins":[]}\n',
        b'{"plugins":{"alpha":"x"}}\n',
        b'{"plugins":{"alpha":{"version":"1.0.0"}}}\n',  # missing members
        b'{"lockfile_version":3,"plugins":{"alpha":null}}\n',  # only the base has the version
        b'{"plugins":{"alpha":null,"alpha":null}}\n',  # duplicate member
        b'{"plugins":{"alpha":NaN}}\n',
        b"[]\n",
        b"\n",
        b'{"plugins":{"../x":null}}\n',
    ],
)
def test_every_change_line_is_parsed_as_strictly_as_version_2(one: World, change: bytes) -> None:
    with (one.plugins / LOCKFILE).open("ab") as f:
        f.write(change)
    with pytest.raises(LockfileError):
        fresh_read(one.plugins)


def test_a_change_line_entry_of_the_wrong_type_is_refused(one: World) -> None:
    entry = read_lock(one.plugins)["plugins"]["alpha"]
    with (one.plugins / LOCKFILE).open("ab") as f:
        f.write(line({"plugins": {"alpha": {**entry, "wasm_size": "8"}}}))
    with pytest.raises(LockfileError, match="wasm_size must be a non-negative integer"):
        fresh_read(one.plugins)


@pytest.mark.parametrize("version", [1, 2, 4, "3", True])
def test_another_version_on_the_base_line_is_refused_naming_it(one: World, version: Any) -> None:
    doc = read_lock(one.plugins)
    path = one.plugins / LOCKFILE
    path.write_bytes(line({**doc, "lockfile_version": version}) + line({"plugins": {"alpha": None}}))
    with pytest.raises(LockfileError, match=f"lockfile_version {version!r} is not supported"):
        fresh_read(one.plugins)


def test_version_2_is_read_and_the_next_commit_writes_a_version_3_base(one: World) -> None:
    doc = read_lock(one.plugins)
    v2 = json.dumps({**doc, "lockfile_version": 2}, indent=2, sort_keys=True) + "\n"
    (one.plugins / LOCKFILE).write_text(v2)
    assert fresh_read(one.plugins) == {"alpha": "1.0.0"}
    assert verify_installed(one.plugins).ok
    assert load_plugin_bytes(one.plugins, "alpha")
    one.open().install("beta", one.plugins)  # never appended to a version 2 file
    (base,) = lines(one.plugins)
    assert json.loads(base)["lockfile_version"] == 3 and base == line(json.loads(base))
    assert fresh_read(one.plugins) == {"alpha": "1.0.0", "beta": "2.0.0"}


def test_version_2_written_on_one_line_is_read_too(one: World) -> None:
    doc = read_lock(one.plugins)
    (one.plugins / LOCKFILE).write_bytes(line({**doc, "lockfile_version": 2}))
    assert fresh_read(one.plugins) == {"alpha": "1.0.0"}


def _renamed(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """``entry`` (alpha 1.0.0's) as the entry of another name (its paths under ``name/1.0.0/``)."""
    return {
        **entry,
        "manifest": f"{name}/1.0.0/plugin.toml",
        "wasm": f"{name}/1.0.0/alpha.wasm",
        "signatures": [],
    }


def _pad(folder: Path, count: int) -> None:
    """Append ``count`` change lines that replace alpha by itself (valid, state unchanged)."""
    entry = read_lock(folder)["plugins"]["alpha"]
    with (folder / LOCKFILE).open("ab") as f:
        f.write(line({"plugins": {"alpha": entry}}) * count)


def test_commits_append_until_the_file_holds_max_64_E_change_lines_then_write_a_new_base(one: World) -> None:
    assert MIN_CHANGE_LINES == 64
    _pad(one.plugins, MIN_CHANGE_LINES - 1)  # 1 base + 63 change lines
    reg = one.open()
    reg.install("beta", one.plugins)  # 63 < max(64, 2): appended
    assert len(lines(one.plugins)) == 1 + MIN_CHANGE_LINES
    remove(one.plugins, "beta")  # 64 change lines already: a new base
    (base,) = lines(one.plugins)
    assert json.loads(base) == {"lockfile_version": 3, "plugins": read_lock(one.plugins)["plugins"]}
    assert fresh_read(one.plugins) == {"alpha": "1.0.0"}
    reg.install("beta", one.plugins)  # and appending again after it
    assert len(lines(one.plugins)) == 2


def test_the_compaction_bound_grows_with_the_entries(one: World) -> None:
    """E > 64: the bound is E (so each commit stays O(changed) amortised over a whole base)."""
    path = one.plugins / LOCKFILE
    doc = read_lock(one.plugins)
    alpha = doc["plugins"]["alpha"]
    many = {f"p{i:03d}": _renamed(alpha, f"p{i:03d}") for i in range(99)}
    path.write_bytes(line({"lockfile_version": 3, "plugins": {**many, "alpha": alpha}}))
    _pad(one.plugins, 80)  # 80 >= 64 but < E = 101 after the next install
    one.open().install("beta", one.plugins)
    assert len(lines(one.plugins)) == 82


def test_one_commit_is_one_line_holding_the_required_by_changes(trusted: World) -> None:
    trusted.add_release("alphalib", "1.0.0")
    trusted.add_release("alphaapp", "1.0.0", dependencies='alphalib = "^1"')
    trusted.build()
    reg = trusted.open()
    reg.install("alphalib", trusted.plugins)
    reg.install("alpha@1.0.0", trusted.plugins)
    reg.install("alphaapp", trusted.plugins)
    changed = json.loads(lines(trusted.plugins)[-1])["plugins"]
    assert sorted(changed) == ["alphaapp", "alphalib"]  # alpha untouched: not written again
    assert changed["alphalib"]["required_by"] == ["alphaapp"]
    remove(trusted.plugins, "alphaapp")
    changed = json.loads(lines(trusted.plugins)[-1])["plugins"]
    assert changed["alphaapp"] is None and changed["alphalib"]["required_by"] == []
    assert sorted(changed) == ["alphaapp", "alphalib"]


def test_nothing_changed_nothing_written(one: World) -> None:
    before = (one.plugins / LOCKFILE).read_bytes()
    one.open().install("alpha@1.0.0", one.plugins)
    assert (one.plugins / LOCKFILE).read_bytes() == before


def test_the_parse_is_reused_by_byte_prefix_and_only_new_lines_are_parsed(
    one: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_lockfile(one.plugins).plugins["alpha"].version == "1.0.0"
    parsed: list[int] = []
    real = client_install._parse_entry

    def counting(name: str, raw: Any, dir_: Path) -> Any:
        parsed.append(1)
        return real(name, raw, dir_)

    monkeypatch.setattr(client_install, "_parse_entry", counting)
    entry = read_lock(one.plugins)["plugins"]["alpha"]
    with (one.plugins / LOCKFILE).open("ab") as f:  # another process's commit
        f.write(line({"plugins": {"zeta": _renamed(entry, "zeta")}}))
    assert sorted(read_lockfile(one.plugins).plugins) == ["alpha", "zeta"]
    assert len(parsed) == 1  # the new line only, not the base again
    path = one.plugins / LOCKFILE
    path.write_bytes(path.read_bytes().replace(b'"requested":"1.0.0"', b'"requested":"^1.0"', 1))
    assert read_lockfile(one.plugins).plugins["alpha"].requested == "^1.0"  # a changed prefix: parsed again
    assert len(parsed) == 3


def test_a_reader_during_an_append_sees_the_old_state_or_the_new(
    one: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line lands with one write(); a reader that sees it half written ignores the half."""
    seen: list[dict[str, str]] = []
    real_write = os.write
    lock_ino = os.stat(one.plugins / LOCKFILE).st_ino

    def halting_write(fd: int, data: bytes) -> int:
        if os.fstat(fd).st_ino != lock_ino:
            return real_write(fd, data)
        half = len(data) // 2
        real_write(fd, data[:half])
        seen.append({n: e.version for n, e in read_lockfile(one.plugins).plugins.items()})  # this process
        seen.append(fresh_read(one.plugins))  # another process
        return half + real_write(fd, data[half:])

    monkeypatch.setattr(os, "write", halting_write)
    one.open().install("beta", one.plugins)
    monkeypatch.undo()
    assert seen == [{"alpha": "1.0.0"}, {"alpha": "1.0.0"}]
    assert fresh_read(one.plugins) == {"alpha": "1.0.0", "beta": "2.0.0"}


def test_a_writer_killed_mid_append_leaves_the_old_state_and_the_next_writer_cleans_up(
    one: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    lock_ino = os.stat(one.plugins / LOCKFILE).st_ino

    def dying_write(fd: int, data: bytes) -> int:
        if os.fstat(fd).st_ino == lock_ino:
            real_write(fd, data[: len(data) // 2])
            raise KeyboardInterrupt("killed mid-append")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        one.open().install("beta", one.plugins)
    monkeypatch.undo()
    assert not (one.plugins / LOCKFILE).read_bytes().endswith(b"\n")  # the half line is there
    assert fresh_read(one.plugins) == {"alpha": "1.0.0"}
    assert verify_installed(one.plugins).ok
    one.open().install("beta", one.plugins)
    assert fresh_read(one.plugins) == {"alpha": "1.0.0", "beta": "2.0.0"}
    assert all(each == line(json.loads(each)) for each in lines(one.plugins))
    assert not [
        f for r in verify_installed(one.plugins).results for f in r.findings if f.rule != "no-trusted-root"
    ]
