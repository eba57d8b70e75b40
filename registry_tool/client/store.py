"""Persisting the trust state: one small JSON file per registry URL, written atomically.

The trusted root is stored as its exact text (roots are UTF-8 JSON), so the bytes that were
verified are the bytes re-verified next time.  Saving merges with what is on disk under a
file lock: a concurrent client can never lower the highest-seen version or the root version.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import uuid
from pathlib import Path

from filelock import FileLock

from registry_tool.client.errors import RootNotPinnedError
from registry_tool.client.trust_state import TrustState
from registry_tool.errors import UsageError

STATE_VERSION = 1


def normalise_url(url: str) -> str:
    """One spelling per registry: lower-case scheme and host, the folder with a trailing slash, no query."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "file"):
        raise UsageError(
            f"registry URL {url!r} is not an http://, https:// or file:// URL",
            fix="pass the URL of the folder holding registry.json, e.g. https://example.org/plugins/",
        )
    path = parts.path.removesuffix("registry.json")  # people paste the file's URL too
    path = path if path.endswith("/") else path + "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(normalise_url(url).encode("utf-8")).hexdigest()[:24]
        return self.directory / f"{digest}.json"

    def load(self, url: str) -> TrustState | None:
        path = self.path_for(url)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("state_version") != STATE_VERSION or raw.get("url") != normalise_url(url):
                raise ValueError("unexpected state file")
            return TrustState(
                url=raw["url"],
                root_bytes=raw["root"].encode("utf-8"),
                highest_version=int(raw["highest_version"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UsageError(
                f"the client's trust state for {url} is unreadable ({err})",
                where=str(path),
                fix="re-pin the root: registry-tool client trust URL --root ROOT_FILE --replace",
            ) from None

    def require(self, url: str) -> TrustState:
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
            current = None if replace else self.load(state.url)
            if current is not None:
                if current.root_version > state.root_version:
                    return current
                if current.root_version == state.root_version:
                    state = TrustState(
                        state.url, state.root_bytes, max(state.highest_version, current.highest_version)
                    )
            body = {
                "state_version": STATE_VERSION,
                "url": normalise_url(state.url),
                "root_version": state.root_version,
                "highest_version": state.highest_version,
                "root": state.root_bytes.decode("utf-8"),
            }
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(body, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        return state
