"""The version/range subset decided without semantic_version agrees with semantic_version.

``semver_subset`` may only accept what ``versions`` (through semantic_version) accepts, and must
accept every input of its subset that it accepts; checked on generated and tricky inputs.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from semantic_version import Version

from registry_tool.manifest import semver_subset, versions

REPO = Path(__file__).resolve().parents[2]


def library_is_version(text: str) -> bool:
    try:
        versions.parse_version(text)
    except versions.VersionError:
        return False
    return True


def library_range(text: str) -> bool:
    try:
        versions.parse_range(text)
    except versions.RangeError:
        return False
    return True


def library_overlap(a: str, b: str) -> bool:
    spec_a, spec_b = versions.parse_range(a), versions.parse_range(b)
    return any(spec_a.match(v) and spec_b.match(v) for v in versions._probe_versions(a, b))


def _number(rng: random.Random) -> str:
    return rng.choice(["0", "1", "2", "9", "10", "01", "00", "123", "\u0661", "99999999999999999999"])


def _identifier(rng: random.Random) -> str:
    return rng.choice(["rc", "0", "01", "1", "alpha", "a-b", "-", "0a", "x.y", "", "é", "00", "build7", "--"])


def _version(rng: random.Random) -> str:
    text = ".".join(_number(rng) for _ in range(rng.choice([1, 2, 3, 3, 3, 4])))
    if rng.random() < 0.4:
        text += "-" + ".".join(_identifier(rng) for _ in range(rng.randrange(1, 3)))
    if rng.random() < 0.3:
        text += "+" + ".".join(_identifier(rng) for _ in range(rng.randrange(1, 3)))
    if rng.random() < 0.1:
        text = rng.choice(["v", " ", "=", ""]) + text + rng.choice(["\n", " ", "", "x"])
    return text


TRICKY_VERSIONS = [
    "1.0.0",
    "0.0.0",
    "1.2.3-rc.1",
    "1.2.3-rc.01",
    "1.2.3-0a",
    "1.2.3+001",
    "1.2.3-+b",
    "1.2.3-",
    "1.2.3+",
    "01.2.3",
    "1.02.3",
    "1.2",
    "v1.2.3",
    "1.2.3\n",
    " 1.2.3",
    "\u0661.2.3",
    "1.2.3-\u03b1",
    "1.2.3.4",
    "",
]


def test_versions_agree() -> None:
    rng = random.Random(17)
    accepted = 0
    for text in [*TRICKY_VERSIONS, *(_version(rng) for _ in range(5000))]:
        fast = semver_subset.is_version(text)
        assert fast in (True, None), text
        if fast:
            accepted += 1
            assert library_is_version(text), f"subset accepted {text!r}, semantic_version refuses"
        elif library_is_version(text):
            # semantic_version is looser than semver.org only where the subset defers.
            assert not text.isascii() or text.endswith("\n") or "+" in text or "-" in text, text
    assert accepted > 500


def test_every_strict_version_is_in_the_subset() -> None:
    rng = random.Random(18)
    for _ in range(3000):
        text = _version(rng)
        if library_is_version(text) and text.isascii() and not text.endswith("\n"):
            parts = Version(text)
            if all(p == "0" or not p.startswith("0") or not p.isdigit() for p in parts.prerelease):
                assert semver_subset.is_version(text), text


OPS = [">=", ">", "<=", "<", "==", "=", "!=", "^", "~", "~=", ""]


def _subset_range(rng: random.Random) -> str:
    clauses = [
        f"{rng.choice(OPS[:4])}{rng.randrange(3)}.{rng.randrange(4)}.{rng.randrange(4)}"
        for _ in range(rng.randrange(1, 3))
    ]
    return rng.choice([", ", ",", " "]).join(clauses)


def _range(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _subset_range(rng)
    clauses = []
    for _ in range(rng.randrange(1, 4)):
        version = rng.choice(
            [
                f"{rng.randrange(3)}.{rng.randrange(4)}.{rng.randrange(4)}",
                f"{rng.randrange(3)}.{rng.randrange(4)}",
                f"{rng.randrange(3)}",
                f"{rng.randrange(3)}.{rng.randrange(4)}.{rng.randrange(4)}-rc.1",
                "1.0.0+b",
                "x",
                "*",
                "01.0.0",
            ]
        )
        clauses.append(rng.choice(OPS) + rng.choice(["", "", "", " "]) + version)
    sep = rng.choice([", ", ",", " ", "  ", " , ", " || ", " - "])
    text = sep.join(clauses)
    return rng.choice(["", " "]) + text + rng.choice(["", " ", ","])


TRICKY_RANGES = [
    ">=0.2.0, <1.0.0",
    ">=0.2.0,<1.0.0",
    ">=0.2.0 <1.0.0",
    ">=0.2.0  <1.0.0",
    ">=0.2.0",
    " >=0.2.0 ",
    ">= 0.2.0",
    ">=0.2",
    "^0.2",
    "~0.2.1",
    ">=1.0.0, <0.5.0",
    ">1.0.0, <1.0.1",
    ">=1.0.0, <=1.0.0",
    "<0.0.0",
    ">=0.2.0,",
    ",>=0.2.0",
    ">=0.2.0, , <1.0.0",
    "=1.0.0",
    "==1.0.0",
    ">=01.0.0",
    ">=\u0661.0.0",
    "",
]


def test_ranges_and_overlaps_agree() -> None:
    rng = random.Random(19)
    texts = [*TRICKY_RANGES, *(_range(rng) for _ in range(1500))]
    valid = [t for t in texts if library_range(t)]
    accepted = 0
    for text in texts:
        fast = semver_subset.check_range(text)
        assert fast in (True, None), text
        if fast:
            accepted += 1
            assert library_range(text), f"subset accepted range {text!r}, semantic_version refuses"
    assert accepted > 100
    in_subset = [t for t in valid if semver_subset.check_range(t)]
    overlaps = 0
    for _ in range(4000):
        a, b = rng.choice(valid), rng.choice(valid)
        fast = semver_subset.ranges_overlap(a, b)
        assert fast in (True, None), (a, b)
        if fast:
            overlaps += 1
            assert library_overlap(a, b), f"subset says {a!r} and {b!r} overlap; semantic_version does not"
    for a in in_subset[:60]:
        for b in in_subset[:60]:
            assert bool(semver_subset.ranges_overlap(a, b)) == library_overlap(a, b), (a, b)
    assert overlaps > 100


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        (">=0.2.0, <1.0.0", ">=0.2.0, <0.9.0", True),
        (">=0.2.0, <1.0.0", ">=1.0.0", False),
        (">=0.2.0, <1.0.0", ">=0.9.9", True),
        (">1.0.0, <1.0.1", ">=0.0.0", False),  # no release between: semantic_version decides
        (">=1.0.0, <=1.0.0", ">=1.0.0 <2.0.0", True),
    ],
)
def test_overlap_examples(a: str, b: str, overlap: bool) -> None:
    assert versions.ranges_overlap(a, b) is overlap
    assert library_overlap(a, b) is overlap
    assert semver_subset.ranges_overlap(a, b) is (True if overlap else None)


def test_a_plain_release_needs_no_semantic_version() -> None:
    probe = (
        "import sys\n"
        "from registry_tool.manifest import versions\n"
        "assert versions.is_version('1.2.3-rc.1')\n"
        "versions.check_range('>=0.2.0, <1.0.0')\n"
        "assert versions.ranges_overlap('>=0.2.0, <1.0.0', '>=0.3.0')\n"
        "print(sorted(m for m in ('semantic_version', 'importlib.metadata') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
