"""A host's own ``Fetcher`` may ignore ``max_size``; the client still enforces every cap.

The caps are the client's promise (fixed caps for roots, signatures and registry.json; signed
sizes for manifests and modules), so they are checked on what the fetcher returns too.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from registry_tool.client.errors import DownloadTooLargeError
from registry_tool.client.fetch import MAX_REGISTRY_SIZE, MAX_SIGNATURE_SIZE
from registry_tool.signing.minisign import MAX_SIGNATURE_FILE

from .client_world import World


class PaddingFetcher:
    """Serves the site from disk, padding the files whose name ends with ``suffix``; ignores caps."""

    def __init__(self, site: Path, suffix: str, pad: int) -> None:
        self.site, self.suffix, self.pad = site, suffix, pad
        self.asked: list[tuple[str, int]] = []

    def fetch(self, url: str, *, max_size: int) -> bytes:
        self.asked.append((url, max_size))
        path = self.site / urllib.request.url2pathname(url.split("/", 3)[3])
        from registry_tool.client.errors import NotFoundError

        if not path.is_file():
            raise NotFoundError(f"{url} not found", fix="")
        data = path.read_bytes()
        return data + b" " * self.pad if url.endswith(self.suffix) else data


def test_registry_cap_holds_with_a_host_fetcher(trusted: World) -> None:
    fetcher = PaddingFetcher(trusted.site, "registry.json", MAX_REGISTRY_SIZE)
    with pytest.raises(DownloadTooLargeError, match="endless data attack"):
        trusted.open(fetcher=fetcher)


def test_signature_cap_admits_every_valid_signature_file() -> None:
    """The transport cap for signatures is the format's own limit (a trusted comment may be 8174
    bytes, so a valid file can exceed 8 KiB); oversize ones are refused by both."""
    assert MAX_SIGNATURE_SIZE == MAX_SIGNATURE_FILE


def test_wasm_cap_is_the_signed_size_with_a_host_fetcher(trusted: World) -> None:
    fetcher = PaddingFetcher(trusted.site, ".wasm", 10)
    reg = trusted.open(fetcher=fetcher)
    with pytest.raises(DownloadTooLargeError):
        reg.install("alpha@1.0.0", trusted.plugins)
    assert not (trusted.plugins / "alpha").exists()
