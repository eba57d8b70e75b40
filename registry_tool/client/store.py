"""Persisting the trust state: one small JSON file per registry URL, written atomically.

The trusted root is stored as its exact text (roots are UTF-8 JSON), so the bytes that were
verified are the bytes re-verified next time.  Saving merges with what is on disk under a
file lock: a concurrent client can never lower the highest-seen version or the root version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
import uuid
from pathlib import Path

from filelock import FileLock

from registry_tool._files import MiB, read_bounded_if_exists
from registry_tool.client.errors import RootNotPinnedError, StateFileError
from registry_tool.client.trust_state import TrustState
from registry_tool.errors import RegistryToolError, UsageError

STATE_VERSION = 1
MAX_STATE_SIZE = 4 * MiB  # the root (capped at 1 MiB when fetched) as JSON text, plus a few numbers
_TMP_SUFFIX = ".tmp"


# Why a registry URL with a user name or password is refused (decision 15).
USERINFO_PROBLEM = (
    "holds a user name or password, which would be written into the lockfile, the trust state and messages"
)
# How a refused URL is shown (conformance decision 15, the same rule in the Go and Rust verifiers):
# first everything from the first "//" to the last "@" after it (a password may hold "/", "?" or
# "#": base64 tokens do); then, in each run of characters other than whitespace, quotes, "/", "[",
# "]" and "@" ("https:/user:token@host", a netloc a parse error echoes), the part before an "@"
# that ends the run or before the run's last "%40" becomes "***".  Over-redacting costs nothing.
_USERINFO = re.compile(r"(?<=//).*@", re.DOTALL)
_AT_RUN = re.compile(r"(?<![^\s'\"/\[\]@])[^\s'\"/\[\]@]+(?=@|%40)")


def redacted(text: str) -> str:
    """``text`` (a refused URL; tabs, CR and LF removed) with what looks like credentials as ``***``."""
    return _AT_RUN.sub("***", _USERINFO.sub("***@", re.sub(r"[\t\r\n]", "", text), count=1))


def normalise_url(url: str) -> str:
    """One spelling per registry: lower-case scheme and host, the folder with a trailing slash, no query.

    A URL with a user name or password is refused: the registry URL is written into the lockfile,
    the trust state and messages (CI logs), so credentials in it would leak (conformance
    decision 15).  A refused URL is shown with any such part replaced by ``***@``.
    """
    fix = "pass the URL of the folder holding registry.json, e.g. https://example.org/plugins/"
    shown = redacted(url)
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError as err:
        # Its text echoes a piece of the netloc: with an "@" anywhere, that may be a password's
        # ("https://ci:ab/cd@host/" has the port "ab"), so it is left out.
        said = "" if "@" in url or "%40" in url.lower() else f" ({redacted(str(err))})"
        raise UsageError(f"registry URL {shown!r} cannot be parsed{said}"[:300], fix=fix) from None
    if parts.scheme not in ("http", "https", "file"):
        raise UsageError(f"registry URL {shown!r} is not an http://, https:// or file:// URL"[:300], fix=fix)
    if "@" in parts.netloc:
        raise UsageError(
            f"registry URL {shown!r} {USERINFO_PROBLEM}"[:300],
            fix="pass the URL without `user:password@`; a client that needs credentials gives them to "
            "its HTTP layer (the Python client reads ~/.netrc)",
        )
    if parts.scheme != "file" and not parts.hostname:
        raise UsageError(f"registry URL {shown!r} names no host"[:300], fix=fix)
    path = parts.path.removesuffix("registry.json")  # people paste the file's URL too
    path = path if path.endswith("/") else path + "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


class StateStore:
    """The client's trust state files, one per registry URL, under one directory."""

    def __init__(self, directory: Path) -> None:
        """Keep the state files in ``directory``."""
        self.directory = directory

    def path_for(self, url: str) -> Path:
        """The state file of ``url`` (named by the sha256 of its normalised spelling)."""
        digest = hashlib.sha256(normalise_url(url).encode("utf-8")).hexdigest()[:24]
        return self.directory / f"{digest}.json"

    def load(self, url: str) -> TrustState | None:
        """The stored state of ``url``, None when none; an unreadable file is ``StateFileError``."""
        path = self.path_for(url)
        data = read_bounded_if_exists(path, MAX_STATE_SIZE, "trust state file")
        if data is None:
            return None
        try:
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if raw.get("state_version") != STATE_VERSION or raw.get("url") != normalise_url(url):
                raise ValueError("unexpected state file")
            root, highest = raw["root"], raw["highest_version"]
            if not isinstance(root, str) or not isinstance(highest, int) or isinstance(highest, bool):
                raise TypeError("root must be a string and highest_version an integer")
            return TrustState(url=raw["url"], root_bytes=root.encode("utf-8"), highest_version=highest)
        except RecursionError:
            raise self._unreadable(url, path, "nested too deeply") from None
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError) as err:
            raise self._unreadable(url, path, str(err)) from None

    def trusted_urls(self) -> list[str]:
        """The registry URLs this directory holds a trust state for (unreadable files are skipped)."""
        urls = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                data = read_bounded_if_exists(path, MAX_STATE_SIZE, "trust state file")
                url = json.loads(data.decode("utf-8")).get("url") if data else None
                if isinstance(url, str) and path == self.path_for(url):
                    urls.append(url)
            except (OSError, RegistryToolError, ValueError, UnicodeError, RecursionError, AttributeError):
                continue
        return urls

    @staticmethod
    def _unreadable(url: str, path: Path, detail: str) -> StateFileError:
        return StateFileError(
            f"the client's trust state for {url} is unreadable ({detail})"[:400],
            where=str(path),
            fix="re-pin the root: registry-tool client trust URL --root ROOT_FILE --replace",
        )

    def leftovers(self) -> list[Path]:
        """Temporary files of a writer killed before its rename (the next save removes them)."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f".*{_TMP_SUFFIX}"))

    def require(self, url: str) -> TrustState:
        """The stored state of ``url``; ``RootNotPinnedError`` when no root was pinned yet."""
        state = self.load(url)
        if state is None:
            raise RootNotPinnedError(
                f"no trusted root for {normalise_url(url)} yet",
                fix="pin its root first: registry-tool client trust URL --root ROOT_FILE "
                "(or --root-fingerprint SHA256)",
            )
        return state

    def save(self, state: TrustState, *, replace: bool = False) -> TrustState:
        """Persist ``state`` unless what is on disk is further along; return what is now stored."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(state.url)
        with FileLock(str(path) + ".lck", timeout=60):
            # A writer killed between write and rename left its temp file; this lock is ours now.
            for stale in self.directory.glob(f".{path.name}.*{_TMP_SUFFIX}"):
                stale.unlink(missing_ok=True)
            current = None if replace else self.load(state.url)
            if current is not None:
                # The same root bytes are the same version: no parse (each parse validates the root
                # against its schema), so saving after every install costs no root parse.
                same = current.root_bytes == state.root_bytes
                if not same and current.root_version > state.root_version:
                    return current
                if same or current.root_version == state.root_version:
                    state = state.with_highest(max(state.highest_version, current.highest_version))
            body = {
                "state_version": STATE_VERSION,
                "url": normalise_url(state.url),
                "root_version": state.root_version,
                "highest_version": state.highest_version,
                "root": state.root_bytes.decode("utf-8"),
            }
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}")
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(body, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        return state
