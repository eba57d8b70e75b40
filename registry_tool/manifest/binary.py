"""Read function signatures and initial sizes straight from a core module's bytes.

wasmtime-py aborts the whole process when asked for the kind of a ``v128`` (or typed reference)
value type, and it shows no types for what a module defines but does not export.  So validate
and the sandbox learn signatures and defined memory/table minimums from the binary, and touch
wasmtime's ``ValType`` objects never.  The module has been validated by wasmtime first.
"""

from __future__ import annotations

from dataclasses import dataclass

WASM_MAGIC = b"\0asm"
# Binary format "version" field: 1 for core modules, 0x0001000d (layer 1) for components.
_COMPONENT_LAYER = b"\x0d\x00\x01\x00"
#: The value types a core test passes and compares as numbers.
NUMERIC_TYPES = frozenset({"i32", "i64", "f32", "f64"})


def is_component(data: bytes) -> bool:
    """Is ``data`` a component (not a core module)? Read from the header alone."""
    return data[:4] == WASM_MAGIC and data[4:8] == _COMPONENT_LAYER


VALTYPE_NAMES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
# The shorthand reference types (funcref 0x70, externref 0x6F and the GC and exception
# proposals' abstract heap types): one byte each.
_ABSTRACT_HEAP_TYPES = frozenset(range(0x69, 0x75))
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
        # A declared size past the end of the bytes stops at the end (a custom section's size
        # is not checked by anything before this reader).
        self.data, self.pos, self.end = data, pos, len(data) if end is None else min(end, len(data))

    def peek(self) -> int:
        """The next byte, not consumed (-1 at the end)."""
        return self.data[self.pos] if self.pos < self.end else -1

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("unexpected end of section")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uleb(self) -> int:
        # Inlined reads (no ``byte()`` call per byte): most of a module's bytes parsed here are LEBs.
        data, pos, end = self.data, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end:
                raise ValueError("unexpected end of section")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos
                return result
            shift += 7
            if shift > 63:
                raise ValueError("LEB128 too long")

    def u32(self) -> int:
        """A u32 LEB128: at most 5 bytes, the value below 2**32 (wider is malformed, not truncated)."""
        start = self.pos
        value = self.uleb()
        if self.pos - start > 5 or value >= 1 << 32:
            raise ValueError("a u32 LEB128 is too long or too large")
        return value

    def name(self) -> str:
        length = self.u32()
        if self.pos + length > self.end:
            raise ValueError("a name runs past the end of its section")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8")  # a name that is not UTF-8 makes the module malformed

    def valtype(self) -> str:
        code = self.byte()
        if code in (0x63, 0x64):  # (ref null? heaptype): typed references
            self.heaptype()
            return "ref"
        if code not in VALTYPE_NAMES and code not in _ABSTRACT_HEAP_TYPES:
            raise ValueError(f"unknown value type 0x{code:02x}")
        return VALTYPE_NAMES.get(code, f"0x{code:02x}")

    def heaptype(self) -> None:
        """A heap type (s33): one of the abstract heap type bytes, or a type index."""
        first = self.data[self.pos] if self.pos < self.end else -1
        if 0x40 <= first <= 0x7F:  # a negative s33 in one byte: an abstract heap type, or nothing
            if first not in _ABSTRACT_HEAP_TYPES:
                raise ValueError(f"unknown heap type 0x{first:02x}")
            self.pos += 1
            return
        self.u32()  # a type index (non-negative s33)

    def reftype(self) -> str:
        code = self.data[self.pos] if self.pos < self.end else -1
        if code not in (0x63, 0x64) and code not in _ABSTRACT_HEAP_TYPES:
            raise ValueError("a table's element type is no reference type")
        return self.valtype()


# The order the known sections must come in (custom sections, id 0, may come anywhere): a
# module with a section out of order, twice, or of an unknown id is malformed, as wasmtime says.
_SECTION_ORDER = {section: rank for rank, section in enumerate((1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11))}


def _sections(data: bytes) -> dict[int, tuple[int, int]]:
    if data[:4] != b"\0asm" or data[4:8] != b"\x01\0\0\0":
        raise ValueError("not a core module")
    reader, found = _Reader(data, 8), dict[int, tuple[int, int]]()
    last = -1
    while reader.pos < len(data):
        section = reader.byte()
        size = reader.u32()
        if reader.pos + size > len(data):
            raise ValueError(f"section {section} runs past the end of the module")
        if section != 0:
            rank = _SECTION_ORDER.get(section)
            if rank is None:
                raise ValueError(f"unknown section id {section}")
            if rank <= last:
                raise ValueError(f"section {section} is out of order or repeated")
            last = rank
            found[section] = (reader.pos, reader.pos + size)
        reader.pos += size
    return found


#: Why a shared memory is refused, by validate and by smoke alike (here: the smoke worker reads it
#: without importing validate's modules).
SHARED_MEMORY_REFUSED = (
    "the module declares a shared memory (threads), whose growth the sandbox cannot bound "
    "(wasmtime's store limits do not apply to shared memories)"
)


def has_shared_memory(data: bytes, depth: int = 0) -> bool:
    """Does the core module, or a core module the component embeds at any depth, share a memory?

    Raises ``ValueError`` on bytes it cannot walk.
    """
    if data[4:8] == b"\x01\0\0\0":
        sections = _sections(data)
        imported = _imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
        return _defined_minimums(data, sections)[2] or any(i.shared for i in imported)
    if depth > 16:
        raise ValueError("components nested too deeply")
    reader = _Reader(data, 8)
    while reader.pos < len(data):
        section, size = reader.byte(), reader.uleb()
        end = reader.pos + size
        # 1: a core module, 4: a nested component (each a whole binary of its own)
        if section in (1, 4) and has_shared_memory(data[reader.pos : end], depth + 1):
            return True
        reader.pos = end
    return False


def custom_section_names(data: bytes) -> list[str]:
    """The names of a core module's custom sections, in order ([] for bytes it cannot walk)."""
    if data[:4] != b"\0asm":
        return []
    reader, names = _Reader(data, 8), []
    try:
        while reader.pos < len(data):
            section, size = reader.byte(), reader.uleb()
            end = reader.pos + size
            if section == 0:
                names.append(_Reader(data, reader.pos, end).name())
            reader.pos = end
    except ValueError:
        pass
    return names


def _types(
    data: bytes, span: tuple[int, int], needed: int | None = None
) -> list[tuple[list[str], list[str]]]:
    """Every type index's function type; a struct or array type (GC proposal) holds ([], []).

    ``needed``: stop once that many type indices are read (the imports' types come first to
    mind: a valid module of many large types need not be read past the last one they use).
    """
    reader = _Reader(data, *span)
    types: list[tuple[list[str], list[str]]] = []
    for _ in range(reader.uleb()):
        if needed is not None and len(types) >= needed:
            break
        # A recursion group (0x4E) defines one type index per subtype; anything else is one.
        group = 1
        if reader.peek() == 0x4E:
            reader.byte()
            group = reader.uleb()
        for _ in range(group):
            types.append(_subtype(reader))
    return types


def _subtype(reader: _Reader) -> tuple[list[str], list[str]]:
    """One subtype: a function type's (params, results), or ([], []) for a struct or array.

    GC proposal: ``sub``/``sub final`` with its supertypes, or a bare composite type.
    """
    code = reader.byte()
    if code in (0x50, 0x4F):  # sub, sub final: the supertype indices, then the composite type
        for _ in range(reader.uleb()):
            reader.u32()
        code = reader.byte()
    if code == 0x60:
        params = [reader.valtype() for _ in range(reader.uleb())]
        results = [reader.valtype() for _ in range(reader.uleb())]
        return params, results
    if code == 0x5F:  # struct: its fields
        for _ in range(reader.uleb()):
            _fieldtype(reader)
    elif code == 0x5E:  # array: one field
        _fieldtype(reader)
    else:
        raise ValueError(f"unknown type form 0x{code:02x}")
    return [], []


def _fieldtype(reader: _Reader) -> None:
    """A storage type (a value type, or the packed i8 0x78 / i16 0x77) and its mutability."""
    if reader.peek() in (0x78, 0x77):
        reader.byte()
    else:
        reader.valtype()
    if reader.byte() not in (0x00, 0x01):
        raise ValueError("a field's mutability is neither 0 nor 1")


_EXTERN_KINDS = {0x00: "func", 0x01: "table", 0x02: "memory", 0x03: "global", 0x04: "tag"}


@dataclass(frozen=True)
class Import:
    """One entry of a core module's import section."""

    module: str
    name: str
    kind: str  # func | table | memory | global | tag
    type_index: int = -1  # func imports: index into the type section
    minimum: int = 0  # memory: initial bytes; table: initial elements
    shared: bool = False  # memory: a shared memory (threads)


def _imports(data: bytes, span: tuple[int, int]) -> list[Import]:
    reader, found, shared_memory = _Reader(data, *span), [], False
    for _ in range(reader.u32()):
        module, name = reader.name(), reader.name()
        code = reader.byte()
        kind = _EXTERN_KINDS.get(code)
        if kind is None:
            raise ValueError("unknown import kind")
        type_index = minimum = -1
        if code == 0x00:
            type_index = reader.u32()
        elif code == 0x01:  # table: reftype + limits
            reader.reftype()
            minimum = _limits(reader, memory=False)[0]
        elif code == 0x02:
            shared_memory = shared_memory or _shared(reader)
            pages, page = _limits(reader)
            minimum = pages * page
        elif code == 0x03:  # global: valtype + mutability (bit 1: shared-everything threads)
            reader.valtype()
            if reader.byte() > 0x03:
                raise ValueError("unknown global mutability")
        else:  # tag: attribute (0, an exception) + type index
            if reader.byte() != 0x00:
                raise ValueError("unknown tag attribute")
            type_index = reader.u32()
        found.append(Import(module, name, kind, type_index, max(minimum, 0), shared_memory))
        shared_memory = False
    if reader.pos != reader.end:
        raise ValueError("the import section has bytes after its imports")
    return found


def module_imports(data: bytes) -> list[Import]:
    """A core module's import section alone.

    The client checks imports against permissions and needs nothing else, so no other section's
    encoding can make it refuse a release.  Raises ``ValueError``/``IndexError`` on bytes it cannot read.
    """
    sections = _sections(data)
    return _imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []


@dataclass(frozen=True)
class Interface:
    """What a (validated) core module imports and exports, read from its bytes."""

    imports: list[tuple[Import, Signature | None]]  # signature for func imports
    exports: list[tuple[str, str, Signature | None]]  # (name, kind, signature for funcs) in export order
    memory_min_bytes: int  # largest initial memory, imported or defined
    table_min_elements: int  # largest initial table, imported or defined
    shared_memory: bool = False  # a memory, imported or defined, is shared (threads)


def module_interface(data: bytes) -> Interface:
    """Imports and exports with kinds and function signatures, and initial memory/table sizes.

    Raises ``ValueError``/``IndexError`` on bytes it cannot read (call it on validated modules).
    """
    sections = _sections(data)
    types = _types(data, sections[_SECTION_TYPE]) if _SECTION_TYPE in sections else []
    imports = _imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
    funcs = [i.type_index for i in imports if i.kind == "func"]
    if _SECTION_FUNCTION in sections:
        reader = _Reader(data, *sections[_SECTION_FUNCTION])
        funcs += [reader.uleb() for _ in range(reader.uleb())]
    exports: list[tuple[str, str, Signature | None]] = []
    if _SECTION_EXPORT in sections:
        reader = _Reader(data, *sections[_SECTION_EXPORT])
        for _ in range(reader.uleb()):
            name, code, index = reader.name(), reader.byte(), reader.uleb()
            kind = _EXTERN_KINDS.get(code)
            if kind is None:
                raise ValueError("unknown export kind")
            exports.append((name, kind, types[funcs[index]] if code == 0x00 else None))
    defined_memory, defined_table, defined_shared = _defined_minimums(data, sections)
    return Interface(
        imports=[(i, types[i.type_index] if i.kind == "func" else None) for i in imports],
        exports=exports,
        memory_min_bytes=max([defined_memory, *(i.minimum for i in imports if i.kind == "memory")]),
        table_min_elements=max([defined_table, *(i.minimum for i in imports if i.kind == "table")]),
        shared_memory=defined_shared or any(i.shared for i in imports),
    )


def import_signatures(data: bytes, max_entries: int | None = None) -> list[tuple[Import, Signature | None]]:
    """The imports with their function signatures: the type and import sections only.

    ``max_entries``: raise ``ValueError`` instead of reading a type or import section holding more
    entries (the caller then leaves the module to the compiler; reading a million types in Python
    takes seconds).
    """
    sections = _sections(data)
    if max_entries is not None:
        for section in (_SECTION_TYPE, _SECTION_IMPORT):
            if section in sections and _Reader(data, *sections[section]).uleb() > max_entries:
                raise ValueError(f"more than {max_entries} entries in section {section}")
        # A few types can hold millions of value types (one function of 30 million parameters
        # read for 20 s): the section's size bounds them, at 16 bytes an entry.
        if (
            _SECTION_TYPE in sections
            and sections[_SECTION_TYPE][1] - sections[_SECTION_TYPE][0] > 16 * max_entries
        ):
            raise ValueError(f"a type section of more than {16 * max_entries} bytes")
    imports = _imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
    # Only the types the imports use: a module may hold a few MB of other types.
    needed = max((i.type_index + 1 for i in imports if i.kind == "func"), default=0)
    types = _types(data, sections[_SECTION_TYPE], needed) if _SECTION_TYPE in sections and needed else []
    return [(i, types[i.type_index] if i.kind == "func" else None) for i in imports]


def function_signatures(data: bytes) -> tuple[list[Signature], dict[str, Signature]]:
    """(signatures of imported functions in import order, exported function name -> signature)."""
    sections = _sections(data)
    types = _types(data, sections[_SECTION_TYPE]) if _SECTION_TYPE in sections else []
    imported = [
        i.type_index
        for i in (_imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else [])
        if i.kind == "func"
    ]
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


def initial_memory_bytes(data: bytes) -> int:
    """The module's largest initial memory (imported or defined), without reading its functions.

    Raises ``ValueError``/``IndexError`` on bytes it cannot read.
    """
    sections = _sections(data)
    imports = _imports(data, sections[_SECTION_IMPORT]) if _SECTION_IMPORT in sections else []
    defined, _, _ = _defined_minimums(data, sections)
    return max([defined, *(i.minimum for i in imports if i.kind == "memory")])


def distinct_exports(data: bytes) -> tuple[list[str], list[str]]:
    """One export name per exported memory and per exported table (the first name of each index).

    A module may export one memory under 200,000 names: the sandbox measures each memory once.
    Raises ``ValueError``/``IndexError`` on bytes it cannot read.
    """
    sections = _sections(data)
    found: dict[tuple[int, int], str] = {}
    if _SECTION_EXPORT in sections:
        reader = _Reader(data, *sections[_SECTION_EXPORT])
        for _ in range(reader.uleb()):
            name, kind, index = reader.name(), reader.byte(), reader.uleb()
            if kind in (0x01, 0x02):
                found.setdefault((kind, index), name)
    memories = [n for (kind, _), n in found.items() if kind == 0x02]
    tables = [n for (kind, _), n in found.items() if kind == 0x01]
    return memories, tables


def export_signature(data: bytes, export: str) -> Signature | None:
    """(params, results) of exported function ``export`` as type names; None if absent or unreadable."""
    try:
        return function_signatures(data)[1].get(export)
    except (ValueError, IndexError, KeyError):
        return None


def _defined_minimums(data: bytes, sections: dict[int, tuple[int, int]]) -> tuple[int, int, bool]:
    """Initial sizes of the memories (bytes) and tables (elements) the module defines; any shared.

    Raises ``ValueError`` on an encoding it does not know: the sizes are checked against the
    registry's limits, so a module whose sizes cannot be read is refused, never passed as 0.
    """
    memory = table = 0
    shared = False
    if _SECTION_TABLE in sections:
        reader = _Reader(data, *sections[_SECTION_TABLE])
        for _ in range(reader.uleb()):
            # function-references: 0x40 0x00 reftype limits init-expr (a table with an initializer)
            initialized = reader.pos < reader.end and data[reader.pos] == 0x40
            if initialized and reader.byte() == 0x40 and reader.byte() != 0x00:
                raise ValueError("unknown table encoding")
            reader.valtype()
            table = max(table, _limits(reader, memory=False)[0])
            if initialized:
                _skip_const_expr(reader)
        if reader.pos != reader.end:
            raise ValueError("table section has bytes after its tables")
    if _SECTION_MEMORY in sections:
        reader = _Reader(data, *sections[_SECTION_MEMORY])
        for _ in range(reader.uleb()):
            shared = shared or _shared(reader)
            minimum, page = _limits(reader)
            memory = max(memory, minimum * page)
        if reader.pos != reader.end:
            raise ValueError("memory section has bytes after its memories")
    return memory, table, shared


def _shared(reader: _Reader) -> bool:
    """Is the memory limits record at the reader's position shared (flag 0x02)?  Reads nothing."""
    return reader.pos < reader.end and bool(reader.data[reader.pos] & 0x02)


def _limits(reader: _Reader, *, memory: bool = True) -> tuple[int, int]:
    """(minimum, page size) of a limits record; the page size matters for memories only."""
    flags = reader.byte()
    if flags & ~0x0F:
        raise ValueError(f"unknown limits flags 0x{flags:02x}")
    read = reader.uleb if flags & 0x04 else reader.u32  # memory64 limits are u64
    minimum = read()
    if flags & 0x01:
        read()
    if not flags & 0x08:
        return minimum, WASM_PAGE
    log2 = reader.uleb()  # custom-page-sizes: the page size's log2 follows (0 or 16 today)
    if not memory or log2 > 16:
        raise ValueError("unknown page size")
    return minimum, 1 << log2


# Immediates of the instructions a constant expression may hold (opcode -> how to skip them):
# the numeric constants, global.get, ref.null/ref.func and extended-const arithmetic.
_CONST_ULEB = {0x41, 0x42, 0x23, 0xD0, 0xD2}  # i32/i64.const (a signed LEB reads as long), global.get, ref.*
_CONST_FIXED = {0x43: 4, 0x44: 8}  # f32.const, f64.const
_CONST_BARE = {0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E}  # i32/i64 add, sub, mul (extended-const)
# GC (0xFB prefix, LEB sub-opcode): the constant ones and how many LEB immediates they take.
_CONST_GC = {
    0x00: 1,  # struct.new typeidx
    0x01: 1,  # struct.new_default typeidx
    0x06: 1,  # array.new typeidx
    0x07: 1,  # array.new_default typeidx
    0x08: 2,  # array.new_fixed typeidx n
    0x1A: 0,  # any.convert_extern
    0x1B: 0,  # extern.convert_any
    0x1C: 0,  # ref.i31
}
_MAX_CONST_EXPR = 4096  # instructions: a table's initializer is one or a few


def _skip_const_expr(reader: _Reader) -> None:
    """Move past a constant expression up to its ``end``; anything else is a ``ValueError``."""
    for _ in range(_MAX_CONST_EXPR):
        op = reader.byte()
        if op == 0x0B:
            return
        if op in _CONST_ULEB:
            reader.uleb()
        elif op in _CONST_FIXED or (op == 0xFD and reader.uleb() == 0x0C):  # 0xFD 0x0C: v128.const
            width = _CONST_FIXED.get(op, 16)
            if reader.pos + width > reader.end:
                raise ValueError("unexpected end of section")
            reader.pos += width
        elif op == 0xFB:
            sub = reader.uleb()
            if sub not in _CONST_GC:
                raise ValueError(f"unsupported instruction 0xfb {sub} in a table initializer")
            for _ in range(_CONST_GC[sub]):
                reader.uleb()
        elif op not in _CONST_BARE:
            raise ValueError(f"unsupported instruction 0x{op:02x} in a table initializer")
    raise ValueError("table initializer too long")
