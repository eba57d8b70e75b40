"""A plugin document's release entries are read by a fast path: it must accept nothing the checker refuses.

``PluginDocument.parse`` tries ``_release_fast`` (no field path built per check) and falls back to
``_release`` (the checker that names what is wrong) whenever the fast path is in doubt.  For a
well-formed entry and for every hostile variant of each field below, the fast path either defers
(None) or returns exactly what the checker returns; it never accepts an entry the checker refuses.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from registry_tool.format import DocumentError, FileRef, Limits, PluginDocument, Release, SmokeFigure
from registry_tool.format.documents import _Checker, _release, _release_fast

SHA = "ab" * 32
NAME, VERSION = "alpha", "1.0.0"


def good() -> dict[str, Any]:
    return Release(
        name=NAME,
        version=VERSION,
        description="adds",
        license="MIT",
        abi="core",
        host=">=0.2.0",
        exports=("add",),
        permissions=("net",),
        limits=Limits(1, 2, 3),
        manifest=FileRef(f"plugins/{NAME}/{VERSION}/plugin.toml", SHA, 10),
        wasm=FileRef(f"plugins/{NAME}/{VERSION}/{NAME}.wasm", SHA, 20),
        signers=("0123456789ABCDEF",),
        published_at="2026-11-21T12:00:00Z",
        yanked="broken",
        smoke=(SmokeFigure("add", 10, None),),
        authors=("a",),
        keywords=("k",),
        homepage="https://example.org",
        repository=None,
        dependencies={"beta": "^1.0"},
    ).to_json()


ODD: list[Any] = [
    None, True, False, 0, 1, -1, 2**53, 2**53 - 1, 1.0, "", "x", "x" * 65, "x" * 257, "x" * 513,
    "x" * 65537, [], ["x"], [1], [None], ["net"], ["NET"], ["0123456789ABCDEF"], ["0123456789abcdef"],
    {}, {"reason": "r"}, {"reason": 1}, {"reason": "r", "x": 1}, "2026-11-21T12:00:00Z",
    "2026-11-21T12:00:00", "2026-1-5T1:2:3Z", "^1.0", "not a range", SHA, SHA.upper(),
    f"plugins/{NAME}/{VERSION}/plugin.toml", f"plugins/{NAME}/{VERSION}/x.wasm",
    f"plugins/{NAME}/{VERSION}/../x.wasm", f"plugins/{NAME}/{VERSION}/..", f"plugins/{NAME}/{VERSION}/",
    f"plugins/other/{VERSION}/plugin.toml", {"beta": "^1.0"}, {"Beta": "^1.0"}, {"beta": 1},
    {"beta": "nope nope"}, {"fuel": 1, "memory": 2, "wall_time_ms": 3},
    [{"name": "a", "fuel": None, "peak_memory": 3}],
    [{"name": "a", "fuel": True, "peak_memory": 3}], [{"name": 1, "fuel": None, "peak_memory": None}],
    [{"name": "a", "fuel": None}],
    {"path": f"plugins/{NAME}/{VERSION}/plugin.toml", "sha256": SHA, "size": 1},
    {"path": f"plugins/{NAME}/{VERSION}/plugin.toml", "sha256": SHA, "size": 0},
    {"path": f"plugins/{NAME}/{VERSION}/x.wasm", "sha256": SHA, "size": 5},
]  # fmt: skip

NESTED = ("limits", "manifest", "wasm", "yanked", "dependencies")


def variants() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("good", good())]
    base = good()
    for key in base:
        missing = good()
        del missing[key]
        out.append((f"without {key}", missing))
        for i, value in enumerate(ODD):
            v = good()
            v[key] = copy.deepcopy(value)
            out.append((f"{key}={i}", v))
    for key in NESTED:
        for member in list(base[key]):
            for i, value in enumerate(ODD):
                v = good()
                v[key][member] = copy.deepcopy(value)
                out.append((f"{key}.{member}={i}", v))
            v = good()
            del v[key][member]
            out.append((f"{key} without {member}", v))
        extra = good()
        extra[key]["extra"] = 1
        out.append((f"{key} with an unknown member", extra))
    for member in ("name", "fuel", "peak_memory"):
        for i, value in enumerate(ODD):
            v = good()
            v["smoke"][0][member] = copy.deepcopy(value)
            out.append((f"smoke[0].{member}={i}", v))
    extra = good()
    extra["unknown"] = None
    out.append(("an unknown member", extra))
    return out


def checked(raw: Any) -> Release | None:
    try:
        return _release(_Checker("doc"), NAME, VERSION, raw, f"versions.{VERSION}")
    except DocumentError:
        return None


@pytest.mark.parametrize(("label", "raw"), variants(), ids=[label for label, _ in variants()])
def test_fast_path_never_accepts_what_the_checker_refuses(label: str, raw: dict[str, Any]) -> None:
    fast = _release_fast(NAME, VERSION, copy.deepcopy(raw))
    if fast is not None:
        assert fast == checked(copy.deepcopy(raw)), label


def test_fast_path_reads_well_formed_entries() -> None:
    # Not vacuous: the variants the checker accepts are read by the fast path, with equal results.
    accepted = [(label, raw) for label, raw in variants() if checked(copy.deepcopy(raw)) is not None]
    assert len(accepted) > 40
    for label, raw in accepted:
        assert _release_fast(NAME, VERSION, raw) == checked(raw), label


def test_a_refused_entry_still_names_its_field() -> None:
    raw = good()
    raw["limits"]["fuel"] = True
    doc = {"_type": "registry-plugin", "format_version": 2, "name": NAME, "versions": {VERSION: raw}}
    import json

    with pytest.raises(DocumentError, match=r"versions\.1\.0\.0\.limits\.fuel"):
        PluginDocument.parse(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "versions",
    [
        ["1.10.0", "1.9.0", "10.0.0", "2.0.0", "1.0.10", "1.0.9", "0.0.1"],
        ["1.0.0", "1.0.0-rc.1", "1.0.0-alpha", "0.9.0", "1.0.0-alpha.10", "1.0.0-alpha.9"],
    ],
)
def test_releases_are_in_semver_precedence(versions: list[str]) -> None:
    from semantic_version import Version

    entries = {}
    for v in versions:
        raw = good()
        raw["manifest"]["path"] = f"plugins/{NAME}/{v}/plugin.toml"
        raw["wasm"]["path"] = f"plugins/{NAME}/{v}/{NAME}.wasm"
        entries[v] = raw
    doc = {"_type": "registry-plugin", "format_version": 2, "name": NAME, "versions": entries}
    import json

    parsed = PluginDocument.parse(json.dumps(doc).encode())
    assert [r.version for r in parsed.releases()] == sorted(versions, key=Version)
