"""Package exports imported on first use (PEP 562).

A package's ``__init__`` names its public API but imports a submodule only when one of its names
is first read: the smoke worker, the validate fast path and a host embedding the client import a
package for one name and must not pay for the rest (wasmtime, jsonschema, the builder).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``package.<where[name]>`` for ``name``.

    Args:
        package: the package's ``__name__``.
        where: public name -> the submodule (relative to ``package``) that defines it.

    Returns:
        The function to bind as the package's module-level ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{where[name]}")
        value = getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
