"""Arguments a shell passes that the tool cannot use: a usage error (exit 2) with a fix, never exit 3.

Bytes that are not UTF-8 reach Python as lone surrogates and crashed wherever a name is written
as text (a trusted comment, a URL); an empty key name crashed pathlib.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INDEX_KEY = REPO / "samples" / "keys" / "index.key"


def _run(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "registry_tool", *args], cwd=cwd, capture_output=True, check=False, timeout=120
    )


def test_signing_a_file_whose_name_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/f\xfe.txt"
    with open(name, "wb") as fh:
        fh.write(b"hello\n")
    done = _run("sign", name, "--key", str(INDEX_KEY), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert b"not UTF-8" in done.stderr and b"Fix:" in done.stderr


def test_a_build_of_an_index_path_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    done = _run(
        "build", os.fsencode(tmp_path) + b"/bad\xff", "--out", "o", "--key", str(INDEX_KEY), cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr


def test_a_key_without_a_name_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("key", "generate", "", "--unencrypted", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert b"names no file" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "-f", "json"),  # a missing argument
        ("validate", "index", "--format=json", "--bogus"),  # an unknown option
        ("build", "index", "-fjson", "--jobs", "0"),  # a value out of range
        ("client", "install", "x", "-f", "json", "--host-version", "1", "--deadline", "0"),
    ],
)
def test_a_command_line_click_refuses_still_writes_the_json_report(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The README promises a report on stdout with --format json; click's usage errors wrote none."""
    done = _run(*args, cwd=REPO)
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["error"]["rule"] == "usage"
    assert report["command"] == " ".join(args[:2] if args[0] == "client" else args[:1])


@pytest.mark.parametrize("key", ["--root", "--pubkey"])
def test_a_publication_time_that_is_no_time_or_has_no_root_is_a_usage_error(key: str) -> None:
    """It exited 1 (as if the release were bad) under --root, and was ignored under --pubkey."""
    release = REPO / "index" / "plugins" / "validate_email" / "1.0.0"
    pub = REPO / "samples" / "keys" / "index.pub"
    target, value = (release, REPO / "index" / "root") if key == "--root" else (release / "plugin.toml", pub)
    done = _run("verify", str(target), key, str(value), "--published-at", "garbage", cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert b"--published-at" in done.stderr


def test_smoke_of_a_folder_without_a_release_is_a_usage_error_as_in_validate(tmp_path: Path) -> None:
    for command in ("smoke", "validate"):
        done = _run(command, str(tmp_path), cwd=REPO)
        assert done.returncode == 2, (command, done.stderr)


@pytest.mark.parametrize("version", ["0", "-1", "99999999999999999999999"])
def test_a_registry_version_outside_registry_json_integers_is_a_usage_error(
    tmp_path: Path, version: str
) -> None:
    """A huge one was reported as a broken registry.json ("rebuild the registry"), exit 1."""
    done = _run(
        "build", str(REPO / "index"), "--out", str(tmp_path / "o"), "--key", str(INDEX_KEY),
        "--no-smoke", "--registry-version", version, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert b"--registry-version" in done.stderr


def test_root_version_zero_is_no_version_not_the_latest(tmp_path: Path) -> None:
    """`root sign --version 0` signed the newest version without a word."""
    import shutil

    from registry_tool.errors import UsageError
    from registry_tool.trust.editing import review_root_version

    shutil.copytree(REPO / "index" / "root", tmp_path / "root")
    with pytest.raises(UsageError, match="no root version 0"):
        review_root_version(tmp_path / "root", version=0)
    done = _run("root", "sign", "--dir", str(tmp_path / "root"), "--key", "x", "--version", "0", cwd=tmp_path)
    assert done.returncode == 2


@pytest.mark.parametrize("target", ["/dev/null", "folder"])
def test_a_file_argument_that_is_no_regular_file_says_what_it_is(tmp_path: Path, target: str) -> None:
    """ "does not exist" was said of a device and a folder that exist."""
    path = target if target.startswith("/") else str(tmp_path)
    pub = str(REPO / "samples" / "keys" / "index.pub")
    for args in (("sign", path, "--key", str(INDEX_KEY)), ("verify", path, "--pubkey", pub)):
        done = _run(*args, cwd=tmp_path)
        assert done.returncode == 2 and b"does not exist" not in done.stderr, done.stderr
        said = (b"a device", b"a directory", b"no plugin.toml")  # sign takes a folder as a release
        assert any(words in done.stderr for words in said), done.stderr


def test_an_empty_secret_key_file_is_named_and_called_empty(tmp_path: Path) -> None:
    """It said "has 1 lines, expected exactly 2" without naming the file."""
    (tmp_path / "empty.key").write_bytes(b"")
    (tmp_path / "f.txt").write_text("hello\n")
    done = _run("sign", "f.txt", "--key", "empty.key", cwd=tmp_path)
    assert done.returncode == 1 and b"empty.key" in done.stderr and b"is empty" in done.stderr, done.stderr
