package verifier

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The import check (conformance feature "import-check"): a module may import a permission-gated
// host function only when its signed manifest declares that permission. The gated imports are the
// registry vocabulary the conformance suite fixes (registry.toml [permissions.*] imports,
// conformance/README.md decision 11.7): every import of these modules,
var gatedImports = map[string]string{
	"ferrite:keys":     "keys",
	"ferrite:net":      "network",
	"extism:host/user": "extism_user",
}

// and the Extism host's own HTTP functions (http_request, http_status_code, http_headers: every
// name starting "http_" of module extism:host/env), which reach the network as ferrite:net does.
// Every other extism:host/env import is ungated.
const (
	extismEnv        = "extism:host/env"
	extismHTTPPrefix = "http_"
)

// gatedPermission is the permission an import of module.name needs, if any.
func gatedPermission(module, name string) (string, bool) {
	if perm, ok := gatedImports[module]; ok {
		return perm, true
	}
	if module == extismEnv && strings.HasPrefix(name, extismHTTPPrefix) {
		return "network", true
	}
	return "", false
}

var (
	wasmMagic       = []byte("\x00asm")
	coreWasmVersion = []byte{1, 0, 0, 0}
)

type wasmReader struct {
	b   []byte
	pos int
}

var errWasmTruncated = errors.New("truncated module")

func (r *wasmReader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errWasmTruncated
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

// leb reads an unsigned LEB128 integer of at most bits bits (32 or 64), as the wasm spec bounds
// it: at most ceil(bits/7) bytes, and the unused high bits of the last byte zero. A longer
// encoding or a value that does not fit is malformed, never truncated.
func (r *wasmReader) leb(bits uint) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift+7 > bits && (c&0x80 != 0 || c>>(bits-shift) != 0) {
			return 0, fmt.Errorf("LEB128 integer too long for u%d", bits)
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *wasmReader) u32() (uint32, error) {
	v, err := r.leb(32)
	return uint32(v), err
}

func (r *wasmReader) bytes(n uint32) ([]byte, error) {
	if uint64(r.pos)+uint64(n) > uint64(len(r.b)) {
		return nil, errWasmTruncated
	}
	out := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return out, nil
}

func (r *wasmReader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(n)
	if err == nil && !utf8.Valid(b) {
		err = errors.New("an import name is not UTF-8")
	}
	return string(b), err
}

// limits reads a limits record as the Python client reads it (registry_tool/manifest/binary.py,
// _limits): flags 0x00-0x0f (0x01 a maximum follows, 0x02 shared, 0x04 64-bit: the minimum and
// maximum are u64, 0x08 custom-page-sizes: a page size's log2 follows, at most 16, for a memory
// only: a table has no pages).
func (r *wasmReader) limits(memory bool) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags&^0x0f != 0 {
		return fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	bits := uint(32)
	if flags&0x04 != 0 {
		bits = 64
	}
	if _, err := r.leb(bits); err != nil {
		return err
	}
	if flags&0x01 != 0 {
		if _, err := r.leb(bits); err != nil {
			return err
		}
	}
	if flags&0x08 != 0 {
		if !memory {
			return errors.New("a table's limits have no page size")
		}
		log2, err := r.u32()
		if err != nil {
			return err
		}
		if log2 > 16 {
			return fmt.Errorf("unknown page size 2^%d", log2)
		}
	}
	return nil
}

// heapType reads a heap type: an abstract heap type (one byte, 0x69-0x74: exn, array, struct,
// i31, eq, any, extern, func, none, noextern, nofunc, noexn) or a type index (a non-negative s33).
func (r *wasmReader) heapType() error {
	if r.pos < len(r.b) && r.b[r.pos] >= 0x69 && r.b[r.pos] <= 0x74 {
		r.pos++
		return nil
	}
	// s33: at most 5 bytes; a type index is non-negative, so the sign bit (bit 32) is clear and
	// the last byte's unused bits (sign extension) are zero.
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			if (i < 4 && c&0x40 != 0) || (i == 4 && c&0x70 != 0) {
				return errors.New("heap type is neither abstract nor a type index")
			}
			return nil
		}
		if i == 4 {
			break
		}
	}
	return errors.New("heap type LEB128 too long")
}

// refType reads a reference type: an abstract heap type's shorthand or 0x63/0x64 (ref null?)
// followed by a heap type.
func (r *wasmReader) refType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case c == 0x63 || c == 0x64:
		return r.heapType()
	case c >= 0x69 && c <= 0x74:
		return nil
	}
	return fmt.Errorf("unknown reference type 0x%02x", c)
}

// valType reads a value type: i32, i64, f32, f64, v128 or a reference type.
func (r *wasmReader) valType() error {
	if r.pos < len(r.b) && r.b[r.pos] >= 0x7b && r.b[r.pos] <= 0x7f {
		r.pos++
		return nil
	}
	return r.refType()
}

// sectionOrder is the position of each known section id in a module (the wasm spec's order,
// tag (13) between memory and global, data count (12) between element and code); custom
// sections (0) may appear anywhere.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// ModuleImports lists (module, name) of a core wasm module's imports; a component (another
// binary layer) returns nil, as its imports are WASI interfaces the check does not gate. Bytes
// that are neither (another version or layer) are an error, as is a module whose sections
// overrun its end, repeat or come out of order, or whose import section has bytes after its
// imports.
//
// A refusal is a *Error of class malformed (keeping the rule's Code, if any).
func ModuleImports(wasm []byte) ([][2]string, error) {
	v, err := moduleImports(wasm)
	return v, classedInput(err, "")
}

// moduleImports is ModuleImports with the rule errors the package's own steps give their step's class.
func moduleImports(wasm []byte) ([][2]string, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return nil, errors.New("not a WebAssembly module")
	}
	if isComponent(wasm) {
		return nil, nil
	}
	if !bytes.Equal(wasm[4:8], coreWasmVersion) {
		return nil, fmt.Errorf("unknown WebAssembly version/layer % x", wasm[4:8])
	}
	r := &wasmReader{b: wasm, pos: 8}
	var out [][2]string
	last := 0
	for r.pos < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		body, err := r.bytes(size)
		if err != nil {
			return nil, fmt.Errorf("section %d runs past the end of the module", id)
		}
		if id == 0 {
			continue
		}
		order, known := sectionOrder[id]
		if !known {
			return nil, fmt.Errorf("unknown section id %d", id)
		}
		if order <= last {
			return nil, fmt.Errorf("section %d repeated or out of order", id)
		}
		last = order
		if id != 2 {
			continue
		}
		if out, err = readImports(body); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readImports reads an import section's contents, which must end exactly with its last import.
func readImports(body []byte) ([][2]string, error) {
	s := &wasmReader{b: body}
	count, err := s.u32()
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for i := uint32(0); i < count; i++ {
		mod, err := s.name()
		if err != nil {
			return nil, err
		}
		field, err := s.name()
		if err != nil {
			return nil, err
		}
		kind, err := s.byte()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0x00: // function: type index
			_, err = s.u32()
		case 0x01: // table: reference type, limits
			if err = s.refType(); err == nil {
				err = s.limits(false)
			}
		case 0x02: // memory: limits
			err = s.limits(true)
		case 0x03: // global: value type, mutability (bit 1: shared-everything-threads)
			if err = s.valType(); err == nil {
				var mut byte
				if mut, err = s.byte(); err == nil && mut&^0x03 != 0 {
					err = fmt.Errorf("unknown global mutability 0x%02x", mut)
				}
			}
		case 0x04: // tag: attribute (0: exception), type index
			var attr byte
			if attr, err = s.byte(); err == nil {
				if attr != 0 {
					err = fmt.Errorf("unknown tag attribute 0x%02x", attr)
				} else {
					_, err = s.u32()
				}
			}
		default:
			err = fmt.Errorf("unknown import kind 0x%02x", kind)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{mod, field})
	}
	if s.pos != len(body) {
		return nil, errors.New("the import section has bytes after its imports")
	}
	return out, nil
}

// checkImports refuses a module importing a gated host module whose permission its signed
// manifest does not declare.
func checkImports(wasm []byte, declared []string, where string) error {
	imports, err := moduleImports(wasm)
	if err != nil {
		return &Error{Class: ClassMalformed, Where: where, What: "the module's import section cannot be read: " + err.Error(),
			Fix: "the signed module is not valid WebAssembly; report it to the plugin's maintainers"}
	}
	have := map[string]bool{}
	for _, p := range declared {
		have[p] = true
	}
	for _, imp := range imports {
		if perm, gated := gatedPermission(imp[0], imp[1]); gated && !have[perm] {
			return &Error{Class: ClassUndeclaredImport, Where: where,
				What: fmt.Sprintf("the module imports %s.%s, which needs permission '%s' that its signed manifest does not declare", imp[0], imp[1], perm),
				Fix:  "the release is inconsistent; its maintainers must declare the permission (or drop the import) and re-sign"}
		}
	}
	return nil
}

// componentLayer is the version and layer of a WebAssembly component's header (bytes 4-8).
var componentLayer = []byte{0x0d, 0x00, 0x01, 0x00}

// isComponent: is wasm a component, not a core module? Read from the header alone, as the Python
// client's is_component reads it.
func isComponent(wasm []byte) bool {
	return len(wasm) >= 8 && bytes.Equal(wasm[:4], wasmMagic) && bytes.Equal(wasm[4:8], componentLayer)
}
