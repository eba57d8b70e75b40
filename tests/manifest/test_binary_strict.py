"""The import reader the client relies on reads a module exactly as wasm defines it.

The client runs no wasmtime: whatever it cannot read as the runtime would is malformed, never
"no imports" (a differential fuzz of the Python, Go and Rust readers found each of these).
"""

from __future__ import annotations

import pytest

from registry_tool.manifest.binary import module_imports

HEADER = b"\0asm\x01\0\0\0"


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + leb(len(body)) + body


def name(raw: bytes) -> bytes:
    return leb(len(raw)) + raw


TYPES = section(1, leb(1) + b"\x60\x00\x00")
KEYS_GET = leb(1) + name(b"ferrite:keys") + name(b"get") + b"\x00\x00"


def test_the_well_formed_module_reads() -> None:
    (imp,) = module_imports(HEADER + TYPES + section(2, KEYS_GET))
    assert (imp.module, imp.name) == ("ferrite:keys", "get")


def _then_keys_get(field: bytes, desc: bytes) -> bytes:
    """A module importing m.``field`` (described by ``desc``), then ferrite:keys.get."""
    return HEADER + TYPES + section(2, leb(2) + name(b"m") + name(field) + desc + KEYS_GET[1:])


@pytest.mark.parametrize(
    ("module", "why"),
    [
        (HEADER + TYPES + section(2, leb(0)) + section(2, KEYS_GET), "repeated"),  # an empty one first
        (HEADER + TYPES + b"\x00" + leb(1000) + name(b"x") + section(2, KEYS_GET), "past the end"),
        (HEADER + section(2, KEYS_GET) + TYPES, "out of order"),
        (HEADER + TYPES + section(2, KEYS_GET + b"\x00"), "bytes after its imports"),
        (HEADER + TYPES + section(14, b"") + section(2, KEYS_GET), "unknown section"),
        (HEADER + TYPES + section(2, leb(1) + name(b"\xff") + name(b"get") + b"\x00\x00"), "utf-8"),
        (b"\0asm\x02\0\0\0" + TYPES + section(2, KEYS_GET), "not a core module"),
        # Each import of another kind, malformed, then ferrite:keys.get: never read past.
        (
            _then_keys_get(b"g", b"\x03\x55\x00"),
            "value type",
        ),
        (
            _then_keys_get(b"g", b"\x03\x7f\x04"),
            "mutability",
        ),
        (
            _then_keys_get(b"t", b"\x01\x7f\x00\x01"),
            "reference",
        ),
        (
            _then_keys_get(b"t", b"\x01\x70\x08\x01\x00"),
            "page size",
        ),
        (
            _then_keys_get(b"e", b"\x04\x01\x00"),
            "tag attribute",
        ),
        (HEADER + TYPES + section(2, leb(1) + name(b"m") + name(b"f") + b"\x00\x80\x80\x80\x80\x10"), "u32"),
        (
            _then_keys_get(b"g", b"\x03\x63\x68\x00"),
            "heap type",
        ),
        (
            _then_keys_get(b"g", b"\x03\x63\x40\x00"),
            "heap type",
        ),
    ],
)
def test_what_the_runtime_refuses_is_never_read_as_no_imports(module: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=f"(?i){why}"):
        module_imports(module)


@pytest.mark.parametrize("heap", [b"\x70", b"\x6f", b"\x6e", b"\x69", b"\x74", b"\x00"])
def test_a_typed_reference_global_then_the_gated_import_reads(heap: bytes) -> None:
    """(ref null func), (ref null extern), any, exn, noexn, type 0: each one byte; the next import is read."""
    module = (
        HEADER
        + TYPES
        + section(2, leb(2) + name(b"m") + name(b"g") + b"\x03\x63" + heap + b"\x00" + KEYS_GET[1:])
    )
    assert [(i.module, i.name) for i in module_imports(module)][-1] == ("ferrite:keys", "get")


def test_the_imports_signatures_read_only_the_types_they_use() -> None:
    """After the compile the sandbox reads the imports' types from the bytes: a valid module may
    hold megabytes of other types (4 MB read in 1.6 s), so reading stops at the last one used.
    Shown with a type section whose second entry is no type at all: it is never reached."""
    from registry_tool.manifest.binary import import_signatures

    types = section(1, leb(2) + b"\x60" + leb(1) + b"\x7f" + b"\x00" + b"\xff")
    imports = section(2, leb(1) + name(b"env") + name(b"f") + b"\x00" + leb(0))
    [(imp, sig)] = import_signatures(HEADER + types + imports)
    assert (imp.module, imp.name, sig) == ("env", "f", (["i32"], []))
