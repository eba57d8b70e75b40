"""The TOML parser of the verifying paths, with its nesting bound.

It is ``registry_tool._toml``, kept outside this package so a plain ``validate`` does not import
the format documents at start.
"""

from __future__ import annotations

from registry_tool._toml import MAX_NESTING, TOMLDecodeError, loads, nesting_depth, nesting_problem

__all__ = ["MAX_NESTING", "TOMLDecodeError", "loads", "nesting_depth", "nesting_problem"]
