"""The verifiers' TOML parser reads signed files exactly as the build's tomllib does (TOML 1.0)."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from registry_tool.format import toml

REPO = Path(__file__).resolve().parents[2]

# TOML 1.1 additions: a parser accepting them would verify manifests the build refuses.
TOML_1_1_ONLY = [
    "a = {b = 1,\n c = 2}",
    'a = "\\e"',
    'a = "\\x41"',
    "a = 1979-05-27T07:32Z",
    "a = {b = 1,}",
]


@pytest.mark.parametrize("doc", TOML_1_1_ONLY)
def test_toml_1_1_syntax_is_refused_like_tomllib(doc: str) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(doc)
    with pytest.raises(toml.TOMLDecodeError):
        toml.loads(doc)


def test_every_sample_manifest_parses_identically() -> None:
    files = sorted((REPO / "index").rglob("*.toml"))
    assert len(files) >= 6
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert toml.loads(text) == tomllib.loads(text), f


# --------------------------------------------------------------------------- the nesting bound

_DEEP = 65  # one past MAX_NESTING


@pytest.mark.parametrize(
    "doc",
    [
        "y = " + "[" * _DEEP + "]" * _DEEP,
        "y = " + "{a=" * _DEEP + "1" + "}" * _DEEP,
        "[" + ".".join(["a"] * (_DEEP + 1)) + "]",
        "y = " + "[" * 20000 + "]" * 20000,  # 40 KB: recursive parsers run out of stack
        "[" + ".".join(["a"] * 20000) + "]",
        "[" + ".".join(["1"] * 20000) + "]",  # a key of digits
        "[" + ".".join(["1"] * (_DEEP + 1)) + "]",
        "a" + ".0-0" * 20000 + " = 1",  # every dot between digits: counted all the same
        "x." + ".".join(["a"] * 100_000) + " = 1",  # tomli's cost on this is quadratic: never reached
        '# a comment [[[\ns = "\\\\"\ny = ' + "[" * _DEEP + "]" * _DEEP,  # "\\" ends the string
    ],
)
def test_nesting_past_the_bound_is_refused_before_parsing(doc: str) -> None:
    assert toml.nesting_problem(doc) is not None
    with pytest.raises(toml.TOMLDecodeError, match="at most 64 levels") as caught:
        toml.loads(doc)
    assert caught.value.lineno >= 1  # the position of the level past the bound


@pytest.mark.parametrize(
    "doc",
    [
        "y = " + "[" * 64 + "]" * 64,
        "[" + ".".join(["a"] * 65) + "]",  # 64 dots
        'y = "' + "[" * 100 + '"',  # inside strings and comments nothing counts
        "y = '" + "{" * 100 + "'",
        'y = """\n' + "[" * 100 + '\n"""',
        "y = '''\n" + "." * 100 + "\n'''",
        "# " + "[" * 100,
        'y = "a\\"' + "[" * 100 + '"',  # an escaped quote does not end the string
        "x = [" + ", ".join(["1.5"] * 100) + "]",  # dots between digits are numbers
        "t = [" + ", ".join(["1979-05-27T07:32:00.999Z"] * 100) + "]",
        "\n".join(f"a{i}.b.c = {i}" for i in range(100)),  # dots counted per key
        "x = [" + ", ".join(["{a.b = 0}"] * 100) + "]",  # many shallow keys on one line
        "h = {" + ", ".join(f"k{i}.v = 1" for i in range(100)) + "}",
        "v = [" + ", ".join(f"{i}.5" for i in range(100)) + "]",
        "[" + ".".join(["1"] * 65) + "]",  # 64 dots
    ],
)
def test_nesting_within_the_bound_parses_as_before(doc: str) -> None:
    assert toml.nesting_problem(doc) is None
    assert toml.loads(doc) == tomllib.loads(doc)


def _random_doc(rng: random.Random) -> str:
    """A parseable document nesting arrays, inline tables and dotted keys near the bound."""
    lines = []
    for t in range(rng.randint(1, 3)):
        header = ".".join(f"h{t}k{i}" if rng.random() < 0.7 else str(t) for i in range(rng.randint(1, 70)))
        lines.append(f"[{header}]")
        for k in range(rng.randint(1, 3)):
            depth = rng.randint(55, 70)
            inner = rng.choice(["1", "1.5", '"a.b"', "[]", "{}"])
            value = inner
            for _ in range(depth):
                value = f"[{value}]" if rng.random() < 0.5 else f"{{x = {value}}}"
            parts = range(rng.randint(1, 70))
            key = ".".join(f"k{k}p{i}" if rng.random() < 0.5 else str(k + 7) for i in parts)
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(200))
def test_loads_refuses_exactly_what_the_scan_refuses(seed: int) -> None:
    # The scan runs before tomli (as in Go and Rust): a refused document is never parsed.
    doc = _random_doc(random.Random(seed))
    tomllib.loads(doc)  # the generator makes valid TOML
    refused = toml.nesting_problem(doc) is not None
    try:
        toml.loads(doc)
        assert not refused
    except toml.TOMLDecodeError:
        assert refused


def test_an_escape_inside_a_string_never_hides_what_follows_it() -> None:
    # A scan over the text with "insignificant" characters deleted read "a\tb" as "a\b", whose
    # backslash then escaped the closing quote, and missed the 100 levels after it.
    doc = 'd = "a\\tb"\ny = ' + "[" * 100 + "]" * 100
    assert toml.nesting_problem(doc) is not None


@pytest.mark.parametrize(
    "text",
    [
        "a = 9223372036854775808",
        "a = -9223372036854775809",
        "a = 0xffffffffffffffff",
        "a = {b = [1, 99999999999999999999]}",
        "a = 1e400",
        "a = [-1.8e308]",
    ],
)
def test_numbers_toml_cannot_hold_are_refused(text: str) -> None:
    """TOML 1.0: integers are signed 64-bit and floats binary64; the Go and Rust parsers refuse more."""
    with pytest.raises(toml.TOMLDecodeError):
        toml.loads(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a = 9223372036854775807", 2**63 - 1),
        ("a = -9223372036854775808", -(2**63)),
        ("a = inf", float("inf")),
        ("a = -inf", float("-inf")),
        ("a = 1.7e308", 1.7e308),
        ("a = 1_000.5", 1000.5),
    ],
)
def test_numbers_at_the_limits_are_read(text: str, value: float) -> None:
    assert toml.loads(text)["a"] == value
