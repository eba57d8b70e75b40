"""The SPDX fast path accepts exactly what license_expression accepts, within its grammar subset.

``spdx.accepts`` must never accept what license_expression refuses (that would pass a bad
license), and should accept every expression of its subset that license_expression accepts
(else it saves nothing).  Both are checked over every SPDX id license_expression ships and a
corpus of tricky expressions.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from license_expression import get_spdx_licensing

from registry_tool.manifest import spdx
from registry_tool.manifest.validate import spdx_errors

REPO = Path(__file__).resolve().parents[2]


@cache
def _licensing():  # type: ignore[no-untyped-def]
    return get_spdx_licensing()


def library_accepts(expr: str) -> bool:
    try:
        return not _licensing().validate(expr, strict=True).errors
    except Exception:  # license_expression raises on some malformed input
        return False


def _ids() -> tuple[list[str], list[str]]:
    """Every SPDX key and alias license_expression knows: (licenses, exceptions)."""
    import license_expression

    path = Path(license_expression.__file__).parent / spdx.INDEX_FILE
    licenses, exceptions = [], []
    for entry in json.loads(path.read_bytes()):
        if not entry.get("spdx_license_key"):
            continue
        names = [entry["spdx_license_key"], *entry.get("other_spdx_license_keys", [])]
        (exceptions if entry.get("is_exception") else licenses).extend(names)
    return licenses, exceptions


LICENSES, EXCEPTIONS = _ids()


def _in_subset_shape(expr: str) -> bool:
    """``ID (OP ID)*`` separated by single spaces, OP being AND, OR or WITH in any case."""
    words = expr.split(" ")
    ids, ops = words[0::2], words[1::2]
    return all(spdx._ID.fullmatch(w) and w.upper() not in OPS for w in ids) and all(
        w.upper() in OPS for w in ops
    )


OPS = frozenset({"AND", "OR", "WITH"})


def check(expr: str) -> bool | None:
    fast = spdx.accepts(expr)
    assert fast in (True, None), expr
    if fast:
        assert library_accepts(expr), f"fast path accepted {expr!r}, which license_expression refuses"
    return fast


def test_every_spdx_id_alone() -> None:
    assert len(LICENSES) > 2000 and len(EXCEPTIONS) > 100
    accepted = 0
    for name in [*LICENSES, *EXCEPTIONS]:
        fast = check(name)
        accepted += bool(fast)
        if name in LICENSES and spdx._ID.fullmatch(name):
            assert fast is True, name  # every plain license id is in the subset and accepted
        if name in EXCEPTIONS:
            assert fast is None, name  # a lone exception is refused by license_expression
    assert accepted > 2000


def test_every_id_in_other_cases() -> None:
    for name in [*LICENSES, *EXCEPTIONS]:
        for variant in (name.lower(), name.upper(), name.swapcase()):
            assert check(variant) == check(name), variant


def test_every_exception_with_a_license() -> None:
    for exception in EXCEPTIONS:
        for expr in (f"GPL-2.0-only WITH {exception}", f"mit with {exception.lower()}"):
            fast = check(expr)
            if spdx._ID.fullmatch(exception):
                assert fast is True, expr
        assert check(f"{exception} WITH {exception}") is None
        assert check(f"{exception} WITH GPL-2.0-only") is None


def test_random_compound_expressions_agree() -> None:
    rng = random.Random(17)
    pool = [*LICENSES, *EXCEPTIONS, "LicenseRef-foo", "MIT+", "NOASSERTION", "NONE", "AND", "or", "with"]
    operators = ["AND", "OR", "and", "Or", "WITH", "with"]
    for _ in range(1500):
        words = [rng.choice(pool)]
        for _ in range(rng.randrange(0, 4)):
            words += [rng.choice(operators), rng.choice(pool)]
        expr = " ".join(words)
        fast = check(expr)
        if _in_subset_shape(expr) and library_accepts(expr):
            assert fast is True, expr


TRICKY = [
    "MIT",
    "mit",
    "MIT OR Apache-2.0",
    "MIT or apache-2.0",
    "MIT AND Apache-2.0 OR BSD-3-Clause",
    "Apache-2.0 WITH LLVM-exception",
    "GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT",
    "GPL-2.0",  # deprecated SPDX ids
    "GPL-2.0+",
    "LGPL-2.1+",
    "MIT+",
    "GPL-2.0-only+",
    "eCos-2.0",
    "Nokia-Qt-exception-1.1",
    "wxWindows",
    "LicenseRef-scancode-public-domain",
    "LicenseRef-scancode-x11-xconsortium_veillard",
    "LicenseRef-foo",
    "LicenseRef-",
    "DocumentRef-x:LicenseRef-y",
    "(MIT)",
    "(MIT OR Apache-2.0)",
    "MIT OR (Apache-2.0 AND BSD-2-Clause)",
    "((MIT))",
    "MIT)",
    "(MIT",
    "",
    " ",
    " MIT",
    "MIT ",
    "MIT  OR Apache-2.0",
    "MIT\tOR Apache-2.0",
    "MIT\nOR Apache-2.0",
    "MIT\u00a0OR Apache-2.0",
    "MIT OR",
    "OR MIT",
    "MIT OR OR Apache-2.0",
    "MIT AND",
    "MIT MIT",
    "MIT WITH",
    "WITH MIT",
    "MIT WITH MIT",
    "MIT WITH Classpath-exception-2.0 WITH Classpath-exception-2.0",
    "MIT OR Classpath-exception-2.0",
    "Classpath-exception-2.0",
    "Classpath-exception-2.0 WITH Classpath-exception-2.0",
    "GPL 2.0",
    "GPL AND 2.0",
    "NOASSERTION",
    "NONE",
    "MIT/Apache-2.0",
    "MIT,Apache-2.0",
    "MIT OR Apache-2.0,",
    "\u212aiCAD-1.0",  # KELVIN SIGN lowercases to ASCII k
    "M\u0130T",
    "MIT-0",
    "MIT-",
    "-MIT",
    "MIT.",
    "0BSD",
    "Apache-2",
    "apache 2.0",
    "AND",
    "OR",
    "with",
]


@pytest.mark.parametrize("expr", TRICKY)
def test_tricky_expressions_agree(expr: str) -> None:
    fast = check(expr)
    if _in_subset_shape(expr) and library_accepts(expr):
        assert fast is True


@pytest.mark.parametrize("expr", TRICKY)
def test_spdx_errors_is_the_library_verdict(expr: str) -> None:
    """Whatever path decides, the verdict (and a refusal's explanation) is license_expression's."""
    spdx_errors.cache_clear()
    assert (spdx_errors(expr) == ()) == library_accepts(expr)


def test_the_fast_path_reads_only_the_index_file() -> None:
    """A common expression is accepted without importing license_expression."""
    probe = (
        "import sys\n"
        "from registry_tool.manifest.validate import spdx_errors\n"
        "assert spdx_errors('MIT OR Apache-2.0') == ()\n"
        "assert spdx_errors('GPL-2.0-only WITH Classpath-exception-2.0') == ()\n"
        "print('license_expression' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_unreadable_index_leaves_everything_to_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    spdx.is_exception.cache_clear()
    monkeypatch.setattr(spdx, "_index_bytes", lambda: None)
    try:
        assert spdx.accepts("MIT") is None
        spdx_errors.cache_clear()
        assert spdx_errors("MIT") == ()
    finally:
        spdx.is_exception.cache_clear()
        spdx_errors.cache_clear()


def test_an_index_in_another_shape_leaves_everything_to_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    nested = b'[{"spdx_license_key": "MIT", "x": {"is_exception": true}, "is_exception": false}]'
    spdx.is_exception.cache_clear()
    monkeypatch.setattr(spdx, "_index_bytes", lambda: (nested, nested.lower()))
    try:
        assert spdx.is_exception("MIT") is None
    finally:
        spdx.is_exception.cache_clear()
