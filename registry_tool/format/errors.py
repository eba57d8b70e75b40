"""Failures of format-2 documents.  ``code`` is the error class of the conformance protocol."""

from __future__ import annotations

from registry_tool.errors import CheckFailed


class DocumentError(CheckFailed):
    """A document breaks the format: bad JSON, schema, names, times (class ``malformed``)."""

    code = "malformed"


class UnsupportedFormatError(DocumentError):
    """``format_version`` is not the one this tool implements."""

    code = "unsupported-format"


class PathTraversalError(DocumentError):
    """A release file path is not ``plugins/<name>/<version>/<file>``."""

    code = "path-traversal"


class TreeMismatchError(DocumentError):
    """A tree node is not the one its position asks for (a document spliced in from elsewhere)."""

    code = "mix-and-match"


class WrongDocumentError(DocumentError):
    """A plugin document names another plugin than the one looked up."""

    code = "wrong-software"
