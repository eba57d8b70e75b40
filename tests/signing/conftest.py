from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from registry_tool.signing import SecretKey

# Low scrypt limits keep tests fast; the sensitive defaults are exercised once (session scope).
FAST = {"opslimit": 32768, "memlimit": 1 << 20}


def key(n: int) -> SecretKey:
    return SecretKey.from_seed(bytes([n]) * 32, bytes([n, 0xA0, 0, 0, 0, 0, 0, n]))


@pytest.fixture(scope="session")
def fast() -> dict[str, int]:
    return dict(FAST)


@pytest.fixture(scope="session")
def alice() -> SecretKey:
    return key(1)


@pytest.fixture(scope="session")
def bob() -> SecretKey:
    return key(2)


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture(scope="session")
def minisign_encrypted(tmp_path_factory: pytest.TempPathFactory, minisign: str) -> tuple[Path, Path, str]:
    """A key pair made by `minisign -G` with a password read from stdin (not a tty)."""
    d = tmp_path_factory.mktemp("mkey")
    password = "correct horse"
    out = run(
        minisign, "-G", "-p", str(d / "k.pub"), "-s", str(d / "k.key"), stdin=f"{password}\n{password}\n"
    )
    assert out.returncode == 0, out.stderr
    return d / "k.pub", d / "k.key", password
