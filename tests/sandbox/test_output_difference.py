"""A wrong output says where it first differs from the expected one, with the bytes there.

Only both heads (200 characters) were shown: a 1000-byte output differing at byte 500 showed two
identical heads, and bytes that are no UTF-8 were shown as U+FFFD, beyond recovery.
"""

from __future__ import annotations

import base64
import gzip

import pytest

from registry_tool.sandbox.worker import output_difference


def test_a_late_difference_is_located_and_shown() -> None:
    want = b"".join(f"line {i:03d} of the report\n".encode() for i in range(40))
    actual = want[:500] + b"X" + want[501:]
    detail = output_difference(actual, want)
    assert "first difference at byte 500 (line 22, column 18)" in detail, detail  # 23-byte lines
    assert "X" in detail.split("first difference")[1]
    assert f"{len(actual)} bytes, expected {len(want)}" in detail


def test_a_short_output_reaches_its_end_first() -> None:
    detail = output_difference(b"hello", b"hello world")
    assert "first difference at byte 5 (line 1, column 6)" in detail
    assert '"hello" where "hello world" was expected; 5 bytes, expected 11' in detail


def test_binary_output_is_shown_as_hex_and_base64() -> None:
    actual = gzip.compress(b"payload", mtime=0)
    detail = output_difference(actual, b"")
    assert "hex 1f 8b 08" in detail, detail
    assert base64.b64encode(actual).decode() in detail  # what to paste into expect_base64


@pytest.mark.parametrize(
    ("actual", "want", "at"),
    [
        (b"x" * 65536 + b"a", b"x" * 65536 + b"b", 65536),  # the first byte of the second chunk
        (b"x" * 65535 + b"a", b"x" * 65535 + b"b", 65535),  # the last byte of the first chunk
        (b"x" * 70000, b"x" * 70001, 70000),  # a prefix ending inside a chunk
        (b"x" * 131072, b"x" * 131072 + b"y", 131072),  # a prefix ending on a chunk boundary
    ],
)
def test_the_first_difference_across_chunks(actual: bytes, want: bytes, at: int) -> None:
    assert f"first difference at byte {at} " in output_difference(actual, want)


def test_the_output_is_shown_as_a_toml_string_that_pastes_back() -> None:
    """Python's repr doubled backslashes: '{"out":"\\\\u003e"}' pasted as expect failed again."""
    import tomllib

    actual = '{"out":"\\u003eAB"}\tend \x1b[31m \x7f \x85 \u202e \U000e0041'.encode()
    detail = output_difference(actual, b"other")
    shown = detail.split("output ", 1)[1].split(", expected ", 1)[0]
    assert tomllib.loads(f"expect = {shown}")["expect"].encode() == actual, shown
