package verifier

import (
	"bytes"
	"reflect"
	"testing"
)

func wasmName(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func wasmSection(id byte, body []byte) []byte {
	return append([]byte{id, byte(len(body))}, body...)
}

func wasmImport(mod, field string, desc ...byte) []byte {
	return append(append(wasmName(mod), wasmName(field)...), desc...)
}

func wasmModule(sections ...[]byte) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Join(sections, nil)...)
}

// The import reader against the wasm spec's encoding: typed references, every limits flag the
// Python client reads, LEB128 bounds, the header, and the section layout.
func TestModuleImportsReadsTheSpecEncoding(t *testing.T) {
	types := wasmSection(1, []byte{1, 0x60, 0, 0})
	keys := wasmImport("ferrite:keys", "get", 0, 0)
	imports := func(entries ...[]byte) []byte {
		return wasmSection(2, append([]byte{byte(len(entries))}, bytes.Join(entries, nil)...))
	}
	withKeys := [][2]string{{"env", "x"}, {"ferrite:keys", "get"}}
	cases := []struct {
		name string
		wasm []byte
		want [][2]string // nil: an error
	}{
		{"global (ref null func)", wasmModule(types, imports(wasmImport("env", "x", 3, 0x63, 0x70, 0), keys)), withKeys},
		{"global (ref 0)", wasmModule(types, imports(wasmImport("env", "x", 3, 0x64, 0x00, 1), keys)), withKeys},
		{"global (ref 200)", wasmModule(types, imports(wasmImport("env", "x", 3, 0x63, 0xc8, 0x01, 0), keys)), withKeys},
		{"global v128", wasmModule(types, imports(wasmImport("env", "x", 3, 0x7b, 0), keys)), withKeys},
		{"global anyref", wasmModule(types, imports(wasmImport("env", "x", 3, 0x6e, 0), keys)), withKeys},
		{"global negative heap type", wasmModule(types, imports(wasmImport("env", "x", 3, 0x63, 0x40, 0), keys)), nil},
		{"global unknown type", wasmModule(types, imports(wasmImport("env", "x", 3, 0x00, 0), keys)), nil},
		{"global mutability 4", wasmModule(types, imports(wasmImport("env", "x", 3, 0x7f, 4), keys)), nil},
		{"table (ref func)", wasmModule(types, imports(wasmImport("env", "x", 1, 0x64, 0x70, 0, 1), keys)), withKeys},
		{"table i32", wasmModule(types, imports(wasmImport("env", "x", 1, 0x7f, 0, 1), keys)), nil},
		{"memory page size 1", wasmModule(types, imports(wasmImport("env", "x", 2, 0x08, 1, 0), keys)), withKeys},
		{"memory page size 64 KiB with max", wasmModule(types, imports(wasmImport("env", "x", 2, 0x09, 1, 2, 16), keys)), withKeys},
		{"memory page size 2^17", wasmModule(types, imports(wasmImport("env", "x", 2, 0x08, 1, 17), keys)), nil},
		{"table with a page size", wasmModule(types, imports(wasmImport("env", "t", 1, 0x70, 0x08, 1, 0), keys)), nil},
		{"memory limits flags 0x10", wasmModule(types, imports(wasmImport("env", "x", 2, 0x10, 1), keys)), nil},
		{"memory64 minimum 2^42", wasmModule(types, imports(wasmImport("env", "x", 2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), keys)), withKeys},
		{"memory32 minimum 2^35", wasmModule(types, imports(wasmImport("env", "x", 2, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), keys)), nil},
		{"memory64 11-byte minimum", wasmModule(types, imports(wasmImport("env", "x", 2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), keys)), nil},
		{"memory64 minimum 2^64", wasmModule(types, imports(wasmImport("env", "x", 2, 0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02), keys)), nil},
		{"tag", wasmModule(types, imports(wasmImport("env", "x", 4, 0, 0), keys)), withKeys},
		{"tag attribute 1", wasmModule(types, imports(wasmImport("env", "x", 4, 1, 0), keys)), nil},
		{"count 1 in 5 bytes", wasmModule(types, wasmSection(2, append([]byte{0x81, 0x80, 0x80, 0x80, 0x00}, keys...))), [][2]string{{"ferrite:keys", "get"}}},
		{"count 2^32+1", wasmModule(types, wasmSection(2, append([]byte{0x81, 0x80, 0x80, 0x80, 0x10}, keys...))), nil},
		{"count 1 in 6 bytes", wasmModule(types, wasmSection(2, append([]byte{0x81, 0x80, 0x80, 0x80, 0x80, 0x00}, keys...))), nil},
		{"bytes after the imports", wasmModule(types, wasmSection(2, append([]byte{1}, append(wasmImport("env", "x", 0, 0), keys...)...))), nil},
		{"two import sections", wasmModule(types, imports(wasmImport("env", "x", 0, 0)), imports(keys)), nil},
		{"import after function", wasmModule(types, wasmSection(3, []byte{0}), imports(keys)), nil},
		{"custom sections anywhere", wasmModule(wasmSection(0, wasmName("a")), types, wasmSection(0, wasmName("b")), imports(keys), wasmSection(13, []byte{0}), wasmSection(6, []byte{0})), [][2]string{{"ferrite:keys", "get"}}},
		{"unknown section", wasmModule(types, imports(keys), wasmSection(14, nil)), nil},
		{"section past the end", wasmModule(types, imports(keys), []byte{0, 5, 1, 'a'}), nil},
		{"version 2", append([]byte("\x00asm\x02\x00\x00\x00"), types...), nil},
		{"version 0x0d layer 0", []byte("\x00asm\x0d\x00\x00\x00"), nil},
		{"header only", wasmModule(), [][2]string{}},
		{"name not UTF-8", wasmModule(types, imports(wasmImport("env\xff", "x", 0, 0), keys)), nil},
		{"surrogate in a name", wasmModule(types, imports(wasmImport("ferrite:keys", "\xed\xa0\x80", 0, 0))), nil},
	}
	for _, c := range cases {
		got, err := ModuleImports(c.wasm)
		switch {
		case c.want == nil && err == nil:
			t.Errorf("%s: read %v, want an error", c.name, got)
		case c.want != nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && len(c.want)+len(got) > 0 && !reflect.DeepEqual(got, c.want):
			t.Errorf("%s: read %v, want %v", c.name, got, c.want)
		}
	}
	if got, err := ModuleImports([]byte("\x00asm\x0d\x00\x01\x00")); got != nil || err != nil {
		t.Errorf("a component: %v %v, want nothing to check", got, err)
	}
}

// Decision 11.7: the Extism host's HTTP functions (extism:host/env http_*) need network; every
// other extism:host/env import is ungated; the gated modules need their permission whatever the name.
func TestExtismHTTPImportsNeedNetwork(t *testing.T) {
	types := wasmSection(1, []byte{1, 0x60, 0, 0})
	one := func(mod, field string) []byte {
		return wasmModule(types, wasmSection(2, append([]byte{1}, wasmImport(mod, field, 0, 0)...)))
	}
	cases := []struct {
		mod, field string
		declared   []string
		refused    bool
	}{
		{"extism:host/env", "http_request", nil, true},
		{"extism:host/env", "http_status_code", []string{"keys"}, true},
		{"extism:host/env", "http_headers", nil, true},
		{"extism:host/env", "http_", nil, true},
		{"extism:host/env", "http_request", []string{"network"}, false},
		{"extism:host/env", "config_get", nil, false},
		{"extism:host/env", "HTTP_request", nil, false},
		{"extism:host/env", "xhttp_request", nil, false},
		{"extism:host/user", "anything", nil, true},
		{"extism:host/user", "anything", []string{"extism_user"}, false},
		{"env", "http_request", nil, false},
		{"ferrite:net", "connect", nil, true},
	}
	for _, c := range cases {
		err := checkImports(one(c.mod, c.field), c.declared, "x")
		if c.refused {
			if err == nil || AsError(err).Class != ClassUndeclaredImport {
				t.Errorf("%s.%s with %v: %v, want undeclared-import", c.mod, c.field, c.declared, err)
			}
		} else if err != nil {
			t.Errorf("%s.%s with %v: %v", c.mod, c.field, c.declared, err)
		}
	}
}
