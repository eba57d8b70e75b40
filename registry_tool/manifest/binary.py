"""Read function signatures and initial sizes straight from a core module's bytes.

wasmtime-py aborts the whole process when asked for the kind of a ``v128`` (or typed reference)
value type, and it shows no types for what a module defines but does not export.  So validate
and the sandbox learn signatures and defined memory/table minimums from the binary, and touch
wasmtime's ``ValType`` objects never.  The module has been validated by wasmtime first.
"""

from __future__ import annotations

VALTYPE_NAMES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
_SECTION_TYPE, _SECTION_IMPORT, _SECTION_FUNCTION, _SECTION_TABLE, _SECTION_MEMORY, _SECTION_EXPORT = (
    1,
    2,
    3,
    4,
    5,
    7,
)
WASM_PAGE = 65536
Signature = tuple[list[str], list[str]]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("unexpected end of section")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 63:
                raise ValueError("LEB128 too long")

    def name(self) -> str:
        length = self.uleb()
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")

    def valtype(self) -> str:
        code = self.byte()
        if code in (0x63, 0x64):  # (ref null? heaptype): typed references
            self.uleb()
            return "ref"
        return VALTYPE_NAMES.get(code, f"0x{code:02x}")


def _sections(data: bytes) -> dict[int, tuple[int, int]]:
    if data[:4] != b"\0asm" or data[4:8] != b"\x01\0\0\0":
        raise ValueError("not a core module")
    reader, found = _Reader(data, 8), dict[int, tuple[int, int]]()
    while reader.pos < len(data):
        section = reader.byte()
        size = reader.uleb()
        found.setdefault(section, (reader.pos, reader.pos + size))
        reader.pos += size
    return found


def _types(data: bytes, span: tuple[int, int]) -> list[tuple[list[str], list[str]]]:
    reader, types = _Reader(data, *span), []
    for _ in range(reader.uleb()):
        if reader.byte() != 0x60:  # rec groups / subtypes (GC proposal): not needed by any ABI here
            raise ValueError("non-function type")
        params = [reader.valtype() for _ in range(reader.uleb())]
        results = [reader.valtype() for _ in range(reader.uleb())]
        types.append((params, results))
    return types


def _imported_function_types(data: bytes, span: tuple[int, int]) -> list[int]:
    reader, indices = _Reader(data, *span), []
    for _ in range(reader.uleb()):
        reader.name()
        reader.name()
        kind = reader.byte()
        if kind == 0x00:
            indices.append(reader.uleb())
        elif kind == 0x01:  # table: reftype + limits
            reader.valtype()
            _limits(reader)
        elif kind == 0x02:
            _limits(reader)
        elif kind == 0x03:
            reader.valtype()
            reader.byte()
        elif kind == 0x04:
            reader.byte()
            reader.uleb()
        else:
            raise ValueError("unknown import kind")
    return indices


def function_signatures(data: bytes) -> tuple[list[Signature], dict[str, Signature]]:
    """(signatures of imported functions in import order, exported function name -> signature)."""
    sections = _sections(data)
    types = _types(data, sections[_SECTION_TYPE]) if _SECTION_TYPE in sections else []
    imported = (
        _imported_function_types(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
    )
    funcs = list(imported)
    if _SECTION_FUNCTION in sections:
        reader = _Reader(data, *sections[_SECTION_FUNCTION])
        funcs += [reader.uleb() for _ in range(reader.uleb())]
    exports: dict[str, Signature] = {}
    if _SECTION_EXPORT in sections:
        reader = _Reader(data, *sections[_SECTION_EXPORT])
        for _ in range(reader.uleb()):
            name, kind, index = reader.name(), reader.byte(), reader.uleb()
            if kind == 0x00:
                exports[name] = types[funcs[index]]
    return [types[i] for i in imported], exports


def export_signature(data: bytes, export: str) -> Signature | None:
    """(params, results) of exported function ``export`` as type names; None if absent or unreadable."""
    try:
        return function_signatures(data)[1].get(export)
    except (ValueError, IndexError, KeyError):
        return None


def defined_minimums(data: bytes) -> tuple[int, int]:
    """Initial sizes of the memories (bytes) and tables (elements) a module defines itself."""
    memory = table = 0
    try:
        sections = _sections(data)
        if _SECTION_TABLE in sections:
            reader = _Reader(data, *sections[_SECTION_TABLE])
            for _ in range(reader.uleb()):
                reader.valtype()
                table = max(table, _limits(reader)[0])
        if _SECTION_MEMORY in sections:
            reader = _Reader(data, *sections[_SECTION_MEMORY])
            for _ in range(reader.uleb()):
                minimum, page = _limits(reader)
                memory = max(memory, minimum * page)
    except (ValueError, IndexError):
        pass  # wasmtime accepted the module; a parse gap here only skips an extra check
    return memory, table


def _limits(reader: _Reader) -> tuple[int, int]:
    """(minimum, page size) of a limits record; the page size matters for memories only."""
    flags = reader.byte()
    minimum = reader.uleb()
    if flags & 0x01:
        reader.uleb()
    page = 1 << reader.uleb() if flags & 0x08 else WASM_PAGE  # custom-page-sizes: log2 follows
    return minimum, page
