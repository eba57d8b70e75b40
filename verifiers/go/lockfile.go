package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// Lockfile version 2 (<plugin dir>/registry-tool.lock.json), shared by the Python, Go and Rust
// clients: the same bytes for the same install.
const (
	LockfileName    = "registry-tool.lock.json"
	LockfileVersion = 2
	maxLockfile     = 64 * 1024 * 1024
	// DependencyOnly is the requested of an entry installed only because other plugins need it
	// (conformance/README.md, decision 14). Not a range, so never a requirement anyone typed.
	DependencyOnly = "(dependency)"
)

// LockEntry is one installed plugin.
type LockEntry struct {
	Version        string            `json:"version"`
	Registry       string            `json:"registry"`
	Requested      string            `json:"requested"`
	RequiredBy     []string          `json:"required_by"`
	Dependencies   map[string]string `json:"dependencies"`
	ABI            string            `json:"abi"`
	Manifest       string            `json:"manifest"`
	ManifestSHA256 string            `json:"manifest_sha256"`
	ManifestSize   int64             `json:"manifest_size"`
	Wasm           string            `json:"wasm"`
	WasmSHA256     string            `json:"wasm_sha256"`
	WasmSize       int64             `json:"wasm_size"`
	Signatures     []string          `json:"signatures"`
	Signers        []string          `json:"signers"`
	Permissions    []string          `json:"permissions"`
	PublishedAt    string            `json:"published_at"`
}

// Lockfile is the whole file.
type Lockfile struct {
	Plugins map[string]*LockEntry
}

func lockErr(where, format string, args ...any) *Error {
	return &Error{Class: ClassLockfile, Where: where, What: "lockfile: " + fmt.Sprintf(format, args...),
		Fix: "the lockfile was edited or damaged; reinstall the plugins (registry-tool client install --locked)"}
}

var lockFields = []string{"version", "registry", "requested", "required_by", "dependencies", "abi", "manifest",
	"manifest_sha256", "manifest_size", "wasm", "wasm_sha256", "wasm_size", "signatures", "signers", "permissions", "published_at"}

// ParseLockfile reads a lockfile strictly: unknown version, unknown member or a wrong type is
// refused (class lockfile), never a crash.
func ParseLockfile(data []byte, where string) (*Lockfile, error) {
	v, err := ParseStrictJSON(data)
	if err != nil {
		return nil, lockErr(where, "%v", err)
	}
	d := &doc{class: ClassLockfile, where: where}
	top := d.object(v, "", []string{"lockfile_version", "plugins"}, nil)
	if d.err == nil {
		if n, ok := top["lockfile_version"].(json.Number); !ok || string(n) != "2" {
			return nil, lockErr(where, "lockfile_version %v is not %d", top["lockfile_version"], LockfileVersion)
		}
	}
	lf := &Lockfile{Plugins: map[string]*LockEntry{}}
	plugins := d.anyObject(top["plugins"], "plugins")
	for _, name := range sortedKeys(plugins) {
		p := "plugins." + name
		if !pluginNameRE.MatchString(name) {
			d.fail(p, "not a plugin name")
		}
		m := d.object(plugins[name], p, lockFields, nil)
		e := &LockEntry{Dependencies: map[string]string{}}
		e.Version = d.str(m["version"], p+".version")
		if _, ok := ParseVersion(e.Version); d.err == nil && !ok {
			d.fail(p+".version", "not a version")
		}
		e.Registry = d.str(m["registry"], p+".registry")
		e.Requested = d.str(m["requested"], p+".requested")
		e.RequiredBy = d.strings(m["required_by"], p+".required_by", pluginNameRE, true)
		deps := d.anyObject(m["dependencies"], p+".dependencies")
		for _, k := range sortedKeys(deps) {
			e.Dependencies[k] = d.str(deps[k], p+".dependencies."+k)
		}
		e.ABI = d.str(m["abi"], p+".abi")
		e.Manifest = d.str(m["manifest"], p+".manifest")
		e.ManifestSHA256 = d.match(m["manifest_sha256"], sha256RE, p+".manifest_sha256")
		e.ManifestSize = d.integer(m["manifest_size"], p+".manifest_size", 0)
		e.Wasm = d.str(m["wasm"], p+".wasm")
		e.WasmSHA256 = d.match(m["wasm_sha256"], sha256RE, p+".wasm_sha256")
		e.WasmSize = d.integer(m["wasm_size"], p+".wasm_size", 0)
		e.Signatures = d.strings(m["signatures"], p+".signatures", nil, true)
		e.Signers = d.strings(m["signers"], p+".signers", keyIDRE, true)
		e.Permissions = d.strings(m["permissions"], p+".permissions", permissionRE, true)
		e.PublishedAt = d.match(m["published_at"], timeRE, p+".published_at")
		if d.err != nil {
			return nil, d.err
		}
		for _, rel := range append([]string{e.Manifest, e.Wasm}, e.Signatures...) {
			if !releaseFilePath(rel, name, e.Version) {
				return nil, lockErr(where, "%s: path %q is not %s/%s/<file name>", p, rel, name, e.Version)
			}
		}
		lf.Plugins[name] = e
	}
	if d.err != nil {
		return nil, d.err
	}
	return lf, nil
}

func releaseFilePath(rel, name, version string) bool {
	prefix := name + "/" + version + "/"
	if !strings.HasPrefix(rel, prefix) {
		return false
	}
	f := rel[len(prefix):]
	return fileNameRE.MatchString(f) && f != "." && f != ".."
}

// Marshal writes the lockfile exactly as Python's json.dumps(doc, indent=2, sort_keys=True) + "\n".
func (lf *Lockfile) Marshal() []byte {
	plugins := map[string]any{}
	for name, e := range lf.Plugins {
		nz := func(s []string) []string {
			if s == nil {
				return []string{}
			}
			return s
		}
		deps := e.Dependencies
		if deps == nil {
			deps = map[string]string{}
		}
		plugins[name] = map[string]any{
			"version": e.Version, "registry": e.Registry, "requested": e.Requested, "required_by": nz(e.RequiredBy),
			"dependencies": deps, "abi": e.ABI, "manifest": e.Manifest, "manifest_sha256": e.ManifestSHA256,
			"manifest_size": e.ManifestSize, "wasm": e.Wasm, "wasm_sha256": e.WasmSHA256, "wasm_size": e.WasmSize,
			"signatures": nz(e.Signatures), "signers": nz(e.Signers), "permissions": nz(e.Permissions), "published_at": e.PublishedAt,
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"lockfile_version": LockfileVersion, "plugins": plugins}); err != nil {
		panic(err) // only strings, ints, maps and slices: cannot fail
	}
	return asciiEscape(buf.Bytes())
}

// asciiEscape escapes every non-ASCII character as \uXXXX (UTF-16, surrogate pairs), as Python's
// json.dumps does by default; in JSON text such characters only occur inside strings.
func asciiEscape(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r > 0x7f }) {
		return b
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		if r <= 0x7f {
			out.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, "\\u%04x\\u%04x", r1, r2)
		} else {
			fmt.Fprintf(&out, "\\u%04x", r)
		}
	}
	return out.Bytes()
}

// readLockfile reads the lockfile of the directory (nil when there is none).
func readLockfile(root *dirFD) (*Lockfile, error) {
	b, err := root.readFile(LockfileName, maxLockfile)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseLockfile(b, LockfileName)
}

func sortedUnique(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	out := sortedKeys(m)
	sort.Strings(out)
	return out
}
