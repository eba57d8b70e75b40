"""Read an exported function's signature straight from the module bytes.

wasmtime-py aborts the whole process when asked for the kind of a ``v128`` (or typed reference)
value type, so the adapters learn the signature of the export they call from the binary and
touch wasmtime's ``ValType`` objects only when every type is numeric.
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
_SECTION_TYPE, _SECTION_IMPORT, _SECTION_FUNCTION, _SECTION_EXPORT = 1, 2, 3, 7


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
            if shift > 35:
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
            _skip_limits(reader)
        elif kind == 0x02:
            _skip_limits(reader)
        elif kind == 0x03:
            reader.valtype()
            reader.byte()
        elif kind == 0x04:
            reader.byte()
            reader.uleb()
        else:
            raise ValueError("unknown import kind")
    return indices


def _skip_limits(reader: _Reader) -> None:
    flags = reader.byte()
    reader.uleb()
    if flags & 0x01:
        reader.uleb()


def export_signature(data: bytes, export: str) -> tuple[list[str], list[str]] | None:
    """(params, results) of exported function ``export`` as type names; None if absent or unreadable."""
    try:
        sections = _sections(data)
        types = _types(data, sections[_SECTION_TYPE]) if _SECTION_TYPE in sections else []
        funcs = (
            _imported_function_types(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
        )
        if _SECTION_FUNCTION in sections:
            reader = _Reader(data, *sections[_SECTION_FUNCTION])
            funcs += [reader.uleb() for _ in range(reader.uleb())]
        if _SECTION_EXPORT not in sections:
            return None
        reader = _Reader(data, *sections[_SECTION_EXPORT])
        for _ in range(reader.uleb()):
            name, kind, index = reader.name(), reader.byte(), reader.uleb()
            if name == export and kind == 0x00:
                return types[funcs[index]]
    except (ValueError, IndexError, KeyError):
        return None
    return None
