package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// Lockfile version 3 (<plugin dir>/registry-tool.lock.json), shared by the Python, Go and Rust
// clients (the same bytes for the same commits): JSON Lines, a base line holding the whole state,
// then one change line per commit holding only what changed, so a commit costs what it changes,
// not what is installed. Version 2 (one JSON document) is still read.
const (
	LockfileName    = "registry-tool.lock.json"
	LockfileVersion = 3
	maxLockfile     = 64 * 1024 * 1024
	// minCompaction is the least number of change lines after which a commit writes a new base
	// instead of appending (the bound is max(minCompaction, entries)).
	minCompaction = 64
	// minCompactionBytes is the least number of change-line bytes the file may hold after a commit
	// (the bound is max(minCompactionBytes, bytes of the base line)): a commit touching most
	// entries writes a line as large as a base, so counting lines alone would let the file grow to
	// entries x the base and past maxLockfile.
	minCompactionBytes = 65536
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

// Lockfile is the folded state of the file and where it was read from. Entries are never mutated
// once in Plugins (a change replaces the pointer), so a copy of the map is a snapshot to diff.
type Lockfile struct {
	Plugins map[string]*LockEntry
	// Version is the format read: 2 or 3, 0 when there was no file.
	Version int
	// ChangeLines counts the change lines after the base (version 3).
	ChangeLines int
	// baseLen is the length of the base line with its "\n" (version 3): committed - baseLen are
	// the bytes of the change lines.
	baseLen int64
	// committed is the length up to the last "\n": what follows is the uncommitted tail of a
	// write that did not finish, which the next append cuts.
	committed int64
}

const lockfileFix = "the lockfile was edited or damaged; reinstall the plugins (registry-tool client install --locked)"

func lockErr(where, format string, args ...any) *Error {
	return &Error{Class: ClassLockfile, Where: where, What: "lockfile: " + fmt.Sprintf(format, args...), Fix: lockfileFix}
}

var lockFields = []string{"version", "registry", "requested", "required_by", "dependencies", "abi", "manifest",
	"manifest_sha256", "manifest_size", "wasm", "wasm_sha256", "wasm_size", "signatures", "signers", "permissions", "published_at"}

// ParseLockfile reads a lockfile strictly and folds it into its state. Version 3: every complete
// line (ending in "\n") is one strict JSON object, the base then change lines; bytes after the last
// "\n" are a write that did not finish and are ignored. Version 2: the whole file is one document.
// Any other version, an unknown or missing member, a wrong type, a duplicate member, a removal of
// a name not installed, or no complete line is refused (class lockfile), never a crash.
func ParseLockfile(data []byte, where string) (*Lockfile, error) {
	lf, err := parseLockfile(data, where)
	if err != nil {
		e := AsError(err)
		e.Fix = lockfileFix
		return nil, e
	}
	return lf, nil
}

func parseLockfile(data []byte, where string) (*Lockfile, error) {
	if len(data) > maxLockfile {
		return nil, lockErr(where, "larger than %d bytes", maxLockfile)
	}
	if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
		if first, err := parseStrictJSON(data[:nl]); err == nil {
			if top, ok := first.(map[string]any); !ok || !isNumber(top["lockfile_version"], "2") {
				return parseLines(data, first, where)
			}
			// A version 2 document written on one line: the rest must be nothing but whitespace.
		}
	}
	// Not JSON Lines: one JSON document, which must be version 2.
	v, err := parseStrictJSON(data)
	if err != nil {
		if bytes.IndexByte(data, '\n') < 0 {
			return nil, lockErr(where, "the file holds no complete line (%v)", err)
		}
		return nil, lockErr(where, "%v", err)
	}
	d := &doc{class: ClassLockfile, where: where}
	top := d.object(v, "", []string{"lockfile_version", "plugins"}, nil)
	if d.err != nil {
		return nil, d.err
	}
	if !isNumber(top["lockfile_version"], "2") {
		if isNumber(top["lockfile_version"], "3") {
			return nil, lockErr(where, "lockfile_version 3 is written one JSON object per line, ending in a newline")
		}
		return nil, lockErr(where, "lockfile_version %v is not supported (this verifier reads 2 and 3)", top["lockfile_version"])
	}
	lf := &Lockfile{Plugins: map[string]*LockEntry{}, Version: 2, committed: int64(len(data))}
	if !d.entries(top["plugins"], "plugins", lf.Plugins, false) {
		return nil, d.err
	}
	return lf, nil
}

func isNumber(v any, literal string) bool {
	n, ok := v.(json.Number)
	return ok && string(n) == literal
}

// parseLines folds a version 3 file whose first line parsed as first.
func parseLines(data []byte, first any, where string) (*Lockfile, error) {
	end := bytes.LastIndexByte(data, '\n') + 1
	lf := &Lockfile{Plugins: map[string]*LockEntry{}, Version: 3, committed: int64(end), baseLen: int64(bytes.IndexByte(data, '\n') + 1)}
	d := &doc{class: ClassLockfile, where: where}
	top := d.object(first, "line 1", []string{"lockfile_version", "plugins"}, nil)
	if d.err != nil {
		return nil, d.err
	}
	if !isNumber(top["lockfile_version"], "3") {
		return nil, lockErr(where, "lockfile_version %v is not supported (this verifier reads 2 and 3)", top["lockfile_version"])
	}
	if !d.entries(top["plugins"], "line 1: plugins", lf.Plugins, false) {
		return nil, d.err
	}
	rest := data[bytes.IndexByte(data, '\n')+1 : end]
	for n := 2; len(rest) > 0; n++ {
		nl := bytes.IndexByte(rest, '\n')
		line := rest[:nl]
		rest = rest[nl+1:]
		v, err := parseStrictJSON(line)
		if err != nil {
			return nil, lockErr(where, "line %d: %v", n, err)
		}
		p := fmt.Sprintf("line %d: plugins", n)
		change := d.object(v, fmt.Sprintf("line %d", n), []string{"plugins"}, nil)
		if plugins := d.anyObject(change["plugins"], p); d.err == nil && len(plugins) == 0 {
			d.fail(p, "a change line changes at least one plugin")
		}
		if d.err != nil {
			return nil, d.err
		}
		if !d.entries(change["plugins"], p, lf.Plugins, true) {
			return nil, d.err
		}
		lf.ChangeLines++
	}
	return lf, nil
}

// entries applies the object name -> ENTRY (or null, a removal, when removals) at path to state;
// false when it breaks a rule (d.err says which).
func (d *doc) entries(v any, path string, state map[string]*LockEntry, removals bool) bool {
	plugins := d.anyObject(v, path)
	for _, name := range sortedKeys(plugins) {
		p := path + "." + name
		if !pluginNameRE.MatchString(name) {
			d.fail(p, "not a plugin name")
			return false
		}
		if plugins[name] == nil && removals {
			if _, ok := state[name]; !ok {
				d.fail(p, "removes a plugin that is not in the lockfile")
				return false
			}
			delete(state, name)
			continue
		}
		e := d.entry(plugins[name], p, name)
		if d.err != nil {
			return false
		}
		state[name] = e
	}
	return d.err == nil
}

// entry reads one ENTRY object of plugin name (the version 2 entry, unchanged in version 3).
func (d *doc) entry(v any, p, name string) *LockEntry {
	m := d.object(v, p, lockFields, nil)
	e := &LockEntry{Dependencies: map[string]string{}}
	e.Version = d.str(m["version"], p+".version")
	if _, ok := ParseVersion(e.Version); d.err == nil && !ok {
		d.fail(p+".version", "not a version")
	}
	e.Registry = d.str(m["registry"], p+".registry")
	// The trust state is looked up by the entry's registry URL: one the Python client's
	// normalise_url refuses makes the lockfile invalid, for every operation that reads it
	// (conformance decision 15; Python's install._registry).
	if why := lockedRegistryProblem(e.Registry); d.err == nil && why != "" {
		d.fail(p+".registry", "registry URL %q %s", redactedURL(e.Registry), why)
	}
	e.Requested = d.str(m["requested"], p+".requested")
	e.RequiredBy = d.strings(m["required_by"], p+".required_by", pluginNameRE, true)
	deps := d.anyObject(m["dependencies"], p+".dependencies")
	for _, k := range sortedKeys(deps) {
		// Names as the Python client reads them (install._entry): plugin names only, before
		// anything trusts the entry (conformance decision 17).
		if d.err == nil && !pluginNameRE.MatchString(k) {
			d.fail(p+".dependencies", "%q is not a plugin name", k)
		}
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
		return nil
	}
	if _, ok := ParseTime(e.PublishedAt); !ok { // 2026-02-30, T24:00:00, year 0000 (decision 7)
		d.fail(p+".published_at", "%q is no time in the calendar", e.PublishedAt)
		return nil
	}
	for _, rel := range append([]string{e.Manifest, e.Wasm}, e.Signatures...) {
		if !releaseFilePath(rel, name, e.Version) {
			d.fail(p, "path %q is not %s/%s/<file name>", rel, name, e.Version)
			return nil
		}
	}
	// Which file is which, as the Python client reads an entry (install._entry, decision 17).
	base := func(rel string) string { return rel[strings.LastIndex(rel, "/")+1:] }
	if base(e.Manifest) != "plugin.toml" {
		d.fail(p+".manifest", "%q must name plugin.toml", e.Manifest)
		return nil
	}
	if isReservedName(base(e.Wasm)) {
		d.fail(p+".wasm", "%q names the manifest or a signature file", e.Wasm)
		return nil
	}
	for _, sig := range e.Signatures {
		if !manifestSignatureRE.MatchString(base(sig)) {
			d.fail(p+".signatures", "%q: only plugin.toml[.KEYID].minisig files", sig)
			return nil
		}
	}
	return e
}

// manifestSignatureRE: the only files a lockfile entry's signatures may name.
var manifestSignatureRE = regexp.MustCompile(`^plugin\.toml(\.[0-9A-F]{16})?\.minisig$`)

// isReservedName: plugin.toml, yank.toml or a signature name of either, compared in lower case:
// a release's own metadata files, which no module may be named (format/rules.py is_reserved_name).
func isReservedName(name string) bool {
	if strings.Contains(name, "/") {
		return false
	}
	f := strings.ToLower(name)
	return f == "plugin.toml" || f == "yank.toml" ||
		(strings.HasSuffix(f, ".minisig") && (strings.HasPrefix(f, "plugin.toml.") || strings.HasPrefix(f, "yank.toml.")))
}

func releaseFilePath(rel, name, version string) bool {
	prefix := name + "/" + version + "/"
	if !strings.HasPrefix(rel, prefix) {
		return false
	}
	f := rel[len(prefix):]
	return fileNameRE.MatchString(f) && f != "." && f != ".."
}

// entryValue is the JSON value of an entry (every list present, never null).
func entryValue(e *LockEntry) map[string]any {
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
	return map[string]any{
		"version": e.Version, "registry": e.Registry, "requested": e.Requested, "required_by": nz(e.RequiredBy),
		"dependencies": deps, "abi": e.ABI, "manifest": e.Manifest, "manifest_sha256": e.ManifestSHA256,
		"manifest_size": e.ManifestSize, "wasm": e.Wasm, "wasm_sha256": e.WasmSHA256, "wasm_size": e.WasmSize,
		"signatures": nz(e.Signatures), "signers": nz(e.Signers), "permissions": nz(e.Permissions), "published_at": e.PublishedAt,
	}
}

// canonicalLine writes v exactly as Python's json.dumps(v, sort_keys=True, separators=(",", ":"),
// ensure_ascii=True) + "\n": encoding/json sorts map keys and writes no spaces; HTML escaping is
// off and asciiEscape does what ensure_ascii adds.
func canonicalLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only strings, ints, nil, maps and slices: cannot fail
	}
	return asciiEscape(buf.Bytes()) // Encode ends the value with "\n"
}

// Marshal writes the whole state as one version 3 base line.
func (lf *Lockfile) Marshal() []byte {
	plugins := make(map[string]any, len(lf.Plugins))
	for name, e := range lf.Plugins {
		plugins[name] = entryValue(e)
	}
	return canonicalLine(map[string]any{"lockfile_version": LockfileVersion, "plugins": plugins})
}

// changeLine is the change line taking the state before to lf.Plugins: every entry added or
// replaced by one with other content, null for every entry removed; nil when nothing changed.
func (lf *Lockfile) changeLine(before map[string]*LockEntry) []byte {
	plugins := map[string]any{}
	for name, e := range lf.Plugins {
		old, ok := before[name]
		if ok && old == e {
			continue
		}
		v := entryValue(e)
		if ok && bytes.Equal(canonicalLine(entryValue(old)), canonicalLine(v)) {
			continue
		}
		plugins[name] = v
	}
	for name := range before {
		if _, ok := lf.Plugins[name]; !ok {
			plugins[name] = nil
		}
	}
	if len(plugins) == 0 {
		return nil
	}
	return canonicalLine(map[string]any{"plugins": plugins})
}

// commit writes the change from before (the state as read) to lf.Plugins; call it holding the
// writers' lock. The usual commit appends one change line (the fsync is the commit point); a new
// base replaces the file atomically when dueForBase says so, or when the lockfile has other hard
// links (the append would write into every other name of it, say a file outside the plugin
// directory linked in; the new file leaves them untouched). Nothing changed: nothing is written.
func (lf *Lockfile) commit(root *dirFD, before map[string]*LockEntry) error {
	line := lf.changeLine(before)
	if line == nil {
		return nil
	}
	if !lf.dueForBase(len(line)) {
		appended, err := root.appendLine(LockfileName, lf.committed, line)
		if err != nil {
			return err
		}
		if appended {
			lf.ChangeLines++
			lf.committed += int64(len(line))
			return nil
		}
	}
	base := lf.Marshal()
	if err := root.writeFile(LockfileName, base); err != nil {
		return err
	}
	lf.Version, lf.ChangeLines, lf.committed, lf.baseLen = LockfileVersion, 0, int64(len(base)), int64(len(base))
	return nil
}

// dueForBase reports whether a commit whose change line is lineLen bytes (with its "\n") writes a
// new base instead of appending: there is no lockfile yet; the file is version 2; it already holds
// max(64, entries after the commit) change lines; or the change lines' bytes with this one would
// exceed max(bytes of the base line, 65536). Lines and bytes both bounded keep the file within
// about twice a fresh base (plus 64 KiB) and each commit O(changed) amortised.
func (lf *Lockfile) dueForBase(lineLen int) bool {
	if lf.Version != LockfileVersion || lf.ChangeLines >= max(minCompaction, len(lf.Plugins)) {
		return true
	}
	return lf.committed-lf.baseLen+int64(lineLen) > max(lf.baseLen, minCompactionBytes)
}

// asciiEscape escapes every character outside space..~ that encoding/json leaves as it is (DEL
// and everything beyond ASCII) as \uXXXX (UTF-16, surrogate pairs), as Python's json.dumps does
// with ensure_ascii; in JSON text such characters only occur inside strings.
func asciiEscape(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x7f }) {
		return b
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		if r < 0x7f {
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
	lf, _, err := readLockfileRaw(root)
	return lf, err
}

// readLockfileRaw is readLockfile with the bytes it read (nil: no lockfile).
func readLockfileRaw(root *dirFD) (*Lockfile, []byte, error) {
	b, err := root.readFile(LockfileName, maxLockfile)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	lf, err := ParseLockfile(b, filepath.Join(root.path, LockfileName))
	return lf, b, err
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
