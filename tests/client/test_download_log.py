"""`-vv` logs every download with its URL and size (README): the signature files and the probes too.

Only the documents were logged: `registry.json.minisig`, the keyed signature names and the probe for
the next root version were fetched without a line.
"""

from __future__ import annotations

import logging

import pytest

from .client_world import World


def test_every_request_the_server_saw_is_in_the_debug_log(
    http_trusted: World, caplog: pytest.LogCaptureFixture
) -> None:
    server = http_trusted.server
    server.requests.clear()
    with caplog.at_level(logging.DEBUG, logger="registry_tool"):
        http_trusted.open().install("alpha@1.0.0", http_trusted.plugins)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert server.requests, "nothing was fetched"
    missing = [path for path in server.requests if path.lstrip("/") not in logged]
    assert missing == [], logged
