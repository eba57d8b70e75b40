"""What validate proved once, kept across runs so a later run need not import the prover.

Positive verdicts of pure checks whose library costs more to import than to run live in one
private directory under the platform cache directory: a module wasmtime validates under a
feature set, a feature set wasmtime accepts, an SPDX expression license_expression accepts, a
version, range or range overlap semantic_version accepts.  (The schema validators are not
cached: the package ships their generated code, ``_schemas/``.)

Verdicts are used only when a short-lived process asks for them (``use_verdicts``: the
``registry-tool validate`` launcher does): a long run that has imported the libraries anyway
(build, smoke, ci) decides every check itself and writes nothing.  Every key is a digest of the
exact input and of the installed library that decided, so a changed module, feature set,
expression, version or library is a miss and is decided again.  Only acceptances are kept: a
refusal is always decided (and explained) by the library.  Entries are written atomically, and
a directory another user (or group) can write to is never read, the trust rule of the
sandbox's compiled-module cache.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from registry_tool._files import private_dir

_verdicts = {"on": False}


def use_verdicts(on: bool = True) -> None:
    """Consult and record remembered verdicts in this process from now on (or stop)."""
    _verdicts["on"] = on


def verdicts_on() -> bool:
    """Does this process consult and record remembered verdicts?"""
    return _verdicts["on"]


def cache_dir() -> Path:
    """``platformdirs.user_cache_dir("registry-tool")/validate``."""
    from platformdirs import user_cache_dir  # lazy: only when something is looked up

    return Path(user_cache_dir("registry-tool")) / "validate"


def read(name: str) -> bytes | None:
    """The entry ``name``, or None when it is absent or the directory is not private."""
    directory = cache_dir()
    if not private_dir(directory):
        return None
    try:
        return (directory / name).read_bytes()
    except OSError:
        return None


def write(name: str, data: bytes) -> None:
    """Store an entry atomically; a cache that cannot be written only costs the next run time."""
    import tempfile  # lazy: only a miss writes

    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not private_dir(directory):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(directory / name)
    except OSError:
        pass


@cache
def library_version(module: str) -> str | None:
    """An identity of the installed library ``module``, or None (then nothing about it is cached).

    The path, size and modification time of its ``__init__`` file: installing another version
    rewrites it.  Read without importing the library or ``importlib.metadata`` (the imports a
    remembered verdict is there to save).
    """
    from importlib.util import find_spec

    try:
        spec = find_spec(module)
        origin = spec.origin if spec is not None else None
        info = Path(origin).stat() if origin else None
    except (ImportError, ValueError, OSError):
        return None
    return None if info is None else f"{origin}:{info.st_size}:{info.st_mtime_ns}"


def _verdict_name(kind: str, library: str, parts: tuple[bytes | str, ...]) -> str | None:
    lib_version = library_version(library)
    if lib_version is None:
        return None
    digest = hashlib.sha256(f"{kind}\0{library}\0{lib_version}".encode())
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big") + raw)  # length-prefixed: no two inputs collide
    return f"{kind}-{digest.hexdigest()}.ok"


def proved(kind: str, library: str, *parts: bytes | str) -> bool:
    """Did ``library`` (this version) accept exactly ``parts`` for ``kind`` in an earlier run?"""
    name = _verdict_name(kind, library, parts)
    return name is not None and read(name) == b""


def recall(kind: str, library: str, *parts: bytes | str) -> bytes | None:
    """What ``library`` (this version) answered for exactly ``parts`` in an earlier run, or None."""
    name = _verdict_name(kind, library, parts)
    return read(name + ".answer") if name is not None else None


def keep(kind: str, library: str, answer: bytes, *parts: bytes | str) -> None:
    """Record ``library``'s ``answer`` for ``parts`` (call only with what it answered)."""
    name = _verdict_name(kind, library, parts)
    if name is not None:
        write(name + ".answer", answer)


def remember(kind: str, library: str, *parts: bytes | str) -> None:
    """Record that ``library`` accepted ``parts`` for ``kind`` (call only after it did)."""
    name = _verdict_name(kind, library, parts)
    if name is not None:
        write(name, b"")
