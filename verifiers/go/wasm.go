package verifier

import (
	"bytes"
	"errors"
	"fmt"
)

// The import check (conformance feature "import-check"): a module may import a permission-gated
// host module only when its signed manifest declares that permission. The gated modules are the
// registry vocabulary the conformance suite fixes (registry.toml [permissions.*] imports).
var gatedImports = map[string]string{
	"ferrite:keys":     "keys",
	"ferrite:net":      "network",
	"extism:host/user": "extism_user",
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

func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 integer too long")
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
	return string(b), err
}

func (r *wasmReader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.u32()
	}
	return err
}

// ModuleImports lists (module, name) of a core wasm module's imports; a component (another
// binary layer) returns nil, as its imports are WASI interfaces the check does not gate.
func ModuleImports(wasm []byte) ([][2]string, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return nil, errors.New("not a WebAssembly module")
	}
	if !bytes.Equal(wasm[4:8], coreWasmVersion) {
		return nil, nil
	}
	r := &wasmReader{b: wasm, pos: 8}
	var out [][2]string
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
			return nil, err
		}
		if id != 2 {
			continue
		}
		s := &wasmReader{b: body}
		count, err := s.u32()
		if err != nil {
			return nil, err
		}
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
				if _, err = s.byte(); err == nil {
					err = s.limits()
				}
			case 0x02: // memory: limits
				err = s.limits()
			case 0x03: // global: value type, mutability
				if _, err = s.byte(); err == nil {
					_, err = s.byte()
				}
			case 0x04: // tag: attribute, type index
				if _, err = s.byte(); err == nil {
					_, err = s.u32()
				}
			default:
				err = fmt.Errorf("unknown import kind 0x%02x", kind)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, [2]string{mod, field})
		}
	}
	return out, nil
}

// checkImports refuses a module importing a gated host module whose permission its signed
// manifest does not declare.
func checkImports(wasm []byte, declared []string, where string) error {
	imports, err := ModuleImports(wasm)
	if err != nil {
		return &Error{Class: ClassMalformed, Where: where, What: "the module's import section cannot be read: " + err.Error(),
			Fix: "the signed module is not valid WebAssembly; report it to the plugin's maintainers"}
	}
	have := map[string]bool{}
	for _, p := range declared {
		have[p] = true
	}
	for _, imp := range imports {
		if perm, gated := gatedImports[imp[0]]; gated && !have[perm] {
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
