"""Logging for the command line: the ``registry_tool`` logger on stderr.

Library modules log through ``logging.getLogger(__name__)`` (fetches, mirror fallbacks, root-chain
steps, cache hits) and never configure anything; a host embedding the library routes the
``registry_tool`` logger where it likes.  The CLI calls ``configure`` once: ``-v`` shows info,
``-vv`` debug, and ``REGISTRY_TOOL_LOG=debug|info|warning|error`` sets the level by name.  Records
go to stderr only, so ``--format json`` output on stdout stays one document.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

LOGGER = "registry_tool"
ENV_LEVEL = "REGISTRY_TOOL_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _OneLine(logging.Formatter):
    """Each record on one line, controls escaped, no CI workflow command (servers' and PRs' text)."""

    def format(self, record: logging.LogRecord) -> str:
        from registry_tool.errors import printable
        from registry_tool.report import inert_log_text

        return inert_log_text(printable(super().format(record)))


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def level_for(verbosity: int, environ: Mapping[str, str] = os.environ) -> int:
    """The level ``-v`` given ``verbosity`` times and ``REGISTRY_TOOL_LOG`` ask for (the more verbose wins).

    Raises:
        ValueError: ``REGISTRY_TOOL_LOG`` names no level.
    """
    by_flag = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    name = environ.get(ENV_LEVEL, "").strip().lower()
    if not name:
        return by_flag
    if name not in _LEVELS:
        raise ValueError(f"{ENV_LEVEL}={name!r} is not one of {', '.join(_LEVELS)}")
    return min(by_flag, _LEVELS[name])


def configure(level: int) -> None:
    """Send the ``registry_tool`` logger's records at ``level`` and above to stderr (idempotent)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    logger.propagate = False
    for handler in logger.handlers:
        if isinstance(handler, _Stderr):
            handler.setLevel(level)
            return
    handler = _Stderr()
    handler.setFormatter(_OneLine("registry-tool: %(levelname)s: %(message)s"))
    handler.setLevel(level)
    logger.addHandler(handler)
