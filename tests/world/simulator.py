"""An in-memory registry site behind the client's injected ``Fetcher`` interface.

Like python-tuf's RepositorySimulator: the trust-state and attack tests need a site whose
files they can tamper with, replace, withhold or stall, and a record of what the client
fetched, not a socket.  Serving from memory makes those tests fast and deterministic: a
stalled download is a counter (the first N requests of a file fail as a download that hit
its deadline would), never a sleep.  Transport behaviour (size caps on a real body, slow
bodies, redirects, encodings) stays with the real HTTP server on 127.0.0.1.

The simulator answers as ``HttpFetcher`` does: ``NotFoundError`` for a missing file,
``HttpStatusError`` for another status, the size error for a file above ``max_size``.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from registry_tool.client.errors import FetchError, HttpStatusError, NotFoundError, SlowRetrievalError
from registry_tool.client.fetch import _size_differs, _too_large

SIM_URL = "https://registry.test/"


def read_tree(site: Path) -> dict[str, bytes]:
    """Every file below ``site`` by its relative path (``/``-separated)."""
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


class SiteSimulator:
    """One origin's files in memory, with per-file faults and a log of requests.

    ``files`` is what the origin holds (edit it freely); faults are kept apart from the files,
    so reloading the site after a rebuild keeps them.  ``fetched`` lists the relative paths
    requested, in order, including refused ones.
    """

    def __init__(self, files: Mapping[str, bytes] | None = None, base_url: str = SIM_URL) -> None:
        """Serve a copy of ``files`` (relative path -> bytes) below ``base_url``."""
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.files: dict[str, bytes] = dict(files or {})
        self.fetched: list[str] = []
        self._withheld: dict[str, int] = {}
        self._stalls: Counter[str] = Counter()
        self._endless: set[str] = set()

    @classmethod
    def from_dir(cls, site: Path, base_url: str = SIM_URL) -> SiteSimulator:
        """A simulator serving a copy of the built site at ``site``."""
        return cls(read_tree(site), base_url)

    def load(self, site: Path) -> None:
        """Serve the current contents of ``site`` (after a rebuild); faults are kept."""
        self.files = read_tree(site)

    # ------------------------------------------------------------------ the Fetcher interface

    def fetch(self, url: str, *, max_size: int) -> bytes:
        """The file at ``url`` (below ``base_url``), or the error the real fetcher would raise."""
        if not url.startswith(self.base_url):
            raise FetchError(f"{url} is not served by the simulated origin {self.base_url}", fix="test setup")
        path = urllib.parse.unquote(url[len(self.base_url) :])
        self.fetched.append(path)
        if path in self._withheld:
            code = self._withheld[path]
            if code == 404:
                raise NotFoundError(f"{url} not found (404)", fix="check the registry URL")
            raise HttpStatusError(f"{url}: HTTP {code}", fix="retry later or use a mirror")
        if self._stalls[path] > 0:
            self._stalls[path] -= 1
            raise SlowRetrievalError(
                f"slow retrieval attack or dead server: {url} did not arrive within the deadline",
                fix="retry later or use a mirror",
            )
        if path in self._endless:
            raise _too_large(url, max_size, "the body did not end")
        data = self.files.get(path)
        if data is None:
            raise NotFoundError(f"{url} not found (404)", fix="check the registry URL")
        if len(data) > max_size:
            raise _size_differs(url, max_size, len(data))
        return data

    # ------------------------------------------------------------------ faults

    def tamper(self, path: str, change: Callable[[bytes], bytes]) -> bytes:
        """Replace a served file by ``change(its bytes)``; the new bytes."""
        self.files[path] = change(self.files[path])
        return self.files[path]

    def replace(self, path: str, data: bytes | str) -> None:
        """Serve ``data`` at ``path`` (adds the file if it was not there)."""
        self.files[path] = data.encode() if isinstance(data, str) else data

    def withhold(self, path: str, status: int = 404) -> None:
        """Answer every request of ``path`` with ``status`` (404: not found)."""
        self._withheld[path] = status

    def delay(self, path: str, fetches: int = 1) -> None:
        """The next ``fetches`` requests of ``path`` fail as a download that hit its deadline."""
        self._stalls[path] += fetches

    def endless(self, path: str) -> None:
        """Serve ``path`` as a body that never ends (refused at the size cap)."""
        self._endless.add(path)

    def heal(self, path: str) -> None:
        """Remove every fault of ``path``."""
        self._withheld.pop(path, None)
        self._stalls.pop(path, None)
        self._endless.discard(path)

    # ------------------------------------------------------------------ the record

    def count(self, path: str) -> int:
        """How many times ``path`` was requested."""
        return self.fetched.count(path)


class Network:
    """Several simulated origins behind one fetcher (a registry and its mirrors)."""

    def __init__(self, sites: Iterable[SiteSimulator]) -> None:
        """Route by each site's ``base_url``."""
        self.sites = list(sites)

    def fetch(self, url: str, *, max_size: int) -> bytes:
        """Route ``url`` to the origin serving it."""
        for site in self.sites:
            if url.startswith(site.base_url):
                return site.fetch(url, max_size=max_size)
        raise FetchError(f"no simulated origin serves {url}", fix="test setup")
