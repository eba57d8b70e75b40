package verifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Lockfile version 3: reading (folding, strictness per line, the uncommitted tail, version 2) and
// writing (one canonical change line per commit, a new base when due).

func testEntry(name, version string) *LockEntry {
	d := name + "/" + version + "/"
	return &LockEntry{Version: version, Registry: "https://plugins.example.org/", Requested: "", RequiredBy: []string{},
		Dependencies: map[string]string{}, ABI: "core", Manifest: d + "plugin.toml", ManifestSHA256: strings.Repeat("a", 64),
		ManifestSize: 313, Wasm: d + name + ".wasm", WasmSHA256: strings.Repeat("b", 64), WasmSize: 38,
		Signatures: []string{d + "plugin.toml.minisig"}, Signers: []string{"C9D35B059575BB3A"}, Permissions: []string{},
		PublishedAt: "2026-11-21T12:00:00Z"}
}

func entryJSON(e *LockEntry) string {
	return strings.TrimSuffix(string(canonicalLine(entryValue(e))), "\n")
}

func baseLine(entries ...*LockEntry) string {
	lf := &Lockfile{Plugins: map[string]*LockEntry{}}
	for _, e := range entries {
		lf.Plugins[e.Manifest[:strings.Index(e.Manifest, "/")]] = e
	}
	return string(lf.Marshal())
}

func lockLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LockfileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("the lockfile does not end with a newline:\n%s", b)
	}
	lines := strings.SplitAfter(string(b), "\n")
	return lines[:len(lines)-1] // each with its "\n"; the last element is the empty rest
}

func parseLock(t *testing.T, dir string) *Lockfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LockfileName))
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ParseLockfile(b, "lock")
	if err != nil {
		t.Fatal(err)
	}
	return lf
}

// The vectors are what Python's json.dumps(obj, sort_keys=True, separators=(",", ":"),
// ensure_ascii=True) writes (testdata/gen_lockfile_v3.py): base, change lines (additions,
// required_by changes, removals), strings with HTML characters, DEL, controls, U+2028, non-ASCII
// and non-BMP characters, the integer 2^53. Go must write the same bytes for the same commits.
func TestLockfileLinesAreThoseOfPythonsJSONDumps(t *testing.T) {
	data := readTestdata(t, "lockfile-v3-python.jsonl")
	var prev *Lockfile
	end := 0
	for n := 1; end < len(data); n++ {
		next := end + bytes.IndexByte(data[end:], '\n') + 1
		line := data[end:next]
		lf, err := ParseLockfile(data[:next], "vector")
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		got := lf.Marshal()
		if prev != nil {
			got = lf.changeLine(prev.Plugins)
		}
		if !bytes.Equal(got, line) {
			t.Fatalf("line %d:\n got %s\nwant %s", n, got, line)
		}
		prev, end = lf, next
	}
	if prev.ChangeLines != 4 || len(prev.Plugins) != 1 {
		t.Fatalf("folded %d change lines into %d entries, want 4 and 1", prev.ChangeLines, len(prev.Plugins))
	}
	if want := readTestdata(t, "lockfile-v3-python-base.jsonl"); !bytes.Equal(prev.Marshal(), want) {
		t.Fatalf("new base:\n got %s\nwant %s", prev.Marshal(), want)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEveryLineIsReadStrictly(t *testing.T) {
	a := testEntry("alpha", "1.0.0")
	base := baseLine(a)
	change := func(body string) string { return base + `{"plugins":` + body + "}\n" }
	big := strings.Replace(entryJSON(a), `"wasm_size":38`, `"wasm_size":9007199254740993`, 1)
	unknown := strings.Replace(entryJSON(a), `"abi":"core"`, `"abi":"core","extra":1`, 1)
	missing := strings.Replace(entryJSON(a), `"abi":"core",`, ``, 1)
	wrongType := strings.Replace(entryJSON(a), `"version":"1.0.0"`, `"version":1`, 1)
	outside := strings.Replace(entryJSON(a), `"wasm":"alpha/1.0.0/alpha.wasm"`, `"wasm":"beta/1.0.0/alpha.wasm"`, 1)
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	feb30 := strings.Replace(entryJSON(a), `"published_at":"2026-11-21T12:00:00Z"`, `"published_at":"2026-02-30T12:00:00Z"`, 1)
	for what, body := range map[string]string{
		"duplicate member in a change line":  base + `{"plugins":{"alpha":null},"plugins":{"alpha":null}}` + "\n",
		"duplicate name in a change line":    change(`{"alpha":null,"alpha":null}`),
		"NaN in a change line":               change(`{"alpha":NaN}`),
		"integer beyond 2^53":                change(`{"alpha":` + big + `}`),
		"unknown member of a change line":    base + `{"plugins":{"alpha":null},"lockfile_version":3}` + "\n",
		"change line without plugins":        base + "{}\n",
		"change line changing nothing":       change(`{}`),
		"change line that is not an object":  base + "[]\n",
		"unknown member of a changed entry":  change(`{"alpha":` + unknown + `}`),
		"missing member of a changed entry":  change(`{"alpha":` + missing + `}`),
		"wrong type in a changed entry":      change(`{"alpha":` + wrongType + `}`),
		"entry path outside its release":     change(`{"alpha":` + outside + `}`),
		"publication time not in a calendar": change(`{"alpha":` + feb30 + `}`),
		"changed entry of another type":      change(`{"alpha":[]}`),
		"not a plugin name":                  change(`{"Alpha":null}`),
		"nested too deep":                    change(`{"alpha":` + deep + `}`),
		"an empty line":                      base + "\n",
		"a damaged line before the last":     base + "{\"plugins\n" + change(`{"alpha":null}`)[len(base):],
		"base with an unknown member":        `{"lockfile_version":3,"plugins":{},"x":1}` + "\n",
		"base without lockfile_version":      `{"plugins":{}}` + "\n",
		"base version as a string":           `{"lockfile_version":"3","plugins":{}}` + "\n",
		"base plugins not an object":         `{"lockfile_version":3,"plugins":[]}` + "\n",
		"version 2 base with change lines":   strings.Replace(base, `"lockfile_version":3`, `"lockfile_version":2`, 1) + `{"plugins":{"alpha":null}}` + "\n",
		"version 3 as one indented document": "{\n  \"lockfile_version\": 3,\n  \"plugins\": {}\n}\n",
		"no complete line":                   strings.TrimSuffix(base, "\n"),
		"empty file":                         "",
		"byte order mark":                    "\ufeff" + base,
	} {
		_, err := ParseLockfile([]byte(body), "lock")
		if err == nil || AsError(err).Class != ClassLockfile {
			t.Errorf("%s: %v; want class lockfile", what, err)
		}
	}
	// The same file without the fault is read: the refusals above are about the fault.
	lf, err := ParseLockfile([]byte(change(`{"alpha":`+entryJSON(a)+`}`)+`{"plugins":{"alpha":null}}`+"\n"), "lock")
	if err != nil || len(lf.Plugins) != 0 || lf.ChangeLines != 2 {
		t.Fatalf("a valid file: %v %v", lf, err)
	}
}

func TestOtherVersionsAreRefusedByName(t *testing.T) {
	for _, body := range []string{
		`{"lockfile_version":4,"plugins":{}}` + "\n",
		"{\n  \"lockfile_version\": 4,\n  \"plugins\": {}\n}\n",
		`{"lockfile_version":1,"plugins":{}}`,
	} {
		_, err := ParseLockfile([]byte(body), "lock")
		if err == nil || AsError(err).Class != ClassLockfile || !strings.Contains(err.Error(), "lockfile_version 4") && !strings.Contains(err.Error(), "lockfile_version 1") {
			t.Errorf("%q: %v; want a lockfile error naming the version", body, err)
		}
	}
}

func TestRemovalOfANameNotInstalledIsRefused(t *testing.T) {
	base := baseLine(testEntry("alpha", "1.0.0"))
	for _, body := range []string{
		base + `{"plugins":{"beta":null}}` + "\n",
		base + `{"plugins":{"alpha":null}}` + "\n" + `{"plugins":{"alpha":null}}` + "\n", // removed twice
	} {
		_, err := ParseLockfile([]byte(body), "lock")
		wantClass(t, err, ClassLockfile)
	}
}

func TestOversizedLockfileIsRefused(t *testing.T) {
	base := baseLine(testEntry("alpha", "1.0.0"))
	data := make([]byte, maxLockfile+1)
	copy(data, base) // a base line, then a 64 MiB tail without a newline
	_, err := ParseLockfile(data, "lock")
	wantClass(t, err, ClassLockfile)
}

// A writer killed mid-append (or one racing a reader) leaves bytes after the last "\n": readers
// ignore them, whatever they hold, and the next writer cuts them off before it appends.
func TestUncommittedTailIsIgnoredAndCutByTheNextWriter(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(e.dir, LockfileName)
	committed, _ := os.ReadFile(lock)
	for _, tail := range []string{`{"plugins":{"validate_email":nu`, `{"plugins":{"validate_email":null}}`, "\x00\xff garbage"} {
		if err := os.WriteFile(lock, []byte(string(committed)+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyInstalled(e.dir, e.state, testNow)
		if err != nil || len(rep.Plugins) != 1 {
			t.Fatalf("tail %q: verify %v %v", tail, rep, err)
		}
	}
	if _, err := e.install("validate_email@1.1.0", "keys"); err != nil {
		t.Fatal(err)
	}
	lines := lockLines(t, e.dir)
	if len(lines) != 2 || lines[0] != string(committed) || !strings.HasPrefix(lines[1], `{"plugins":{"validate_email":{`) {
		t.Fatalf("the tail was not cut before the append:\n%q", lines)
	}
	if lf := parseLock(t, e.dir); lf.Plugins["validate_email"].Version != "1.1.0" || lf.ChangeLines != 1 {
		t.Fatalf("folded state %+v", lf.Plugins["validate_email"])
	}
}

// One commit is one line holding exactly what changed: the installed entries and every entry whose
// required_by changed; an install that changes nothing writes nothing.
func TestACommitAppendsOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.add(&testRelease{name: "uses_email", version: "2.0.0"})
	e.site.add(&testRelease{name: "other", version: "0.1.0"})
	e.site.build()
	changed := func() []string {
		lines := lockLines(t, e.dir)
		var v struct{ Plugins map[string]json.RawMessage }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
			t.Fatal(err)
		}
		return sortedKeys(v.Plugins)
	}
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.install("uses_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changed(), " "); got != "uses_email validate_email" {
		t.Fatalf("change line holds %s; want uses_email and validate_email (its required_by changed)", got)
	}
	// uses_email 2.0.0 needs nothing: validate_email is outside this install's graph, but its
	// required_by empties, so it is in the line too.
	if _, err := e.install("uses_email@2.0.0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changed(), " "); got != "uses_email validate_email" {
		t.Fatalf("change line holds %s; want uses_email and validate_email (its required_by emptied)", got)
	}
	if _, err := e.install("other"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changed(), " "); got != "other" {
		t.Fatalf("change line holds %s; want only other", got)
	}
	before, _ := os.ReadFile(filepath.Join(e.dir, LockfileName))
	if _, err := e.install("other"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(e.dir, LockfileName)); !bytes.Equal(before, after) {
		t.Fatalf("an install that changed nothing wrote:\n%s", after[len(before):])
	}
	lf := parseLock(t, e.dir)
	if lf.ChangeLines != 3 || len(lf.Plugins["validate_email"].RequiredBy) != 0 || lf.Plugins["uses_email"].Version != "2.0.0" {
		t.Fatalf("folded: %d change lines, validate_email %+v", lf.ChangeLines, lf.Plugins["validate_email"])
	}
}

func TestVersion2IsReadAndReplacedByAVersion3BaseOnTheNextCommit(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	// The same state as version 2 wrote it: json.dumps(doc, indent=2, sort_keys=True) + "\n".
	lf := parseLock(t, e.dir)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"lockfile_version": 2, "plugins": map[string]any{"validate_email": entryValue(lf.Plugins["validate_email"])}})
	v2 := buf.Bytes()
	lock := filepath.Join(e.dir, LockfileName)
	_ = os.WriteFile(lock, v2, 0o644)
	if rep, err := VerifyInstalled(e.dir, e.state, testNow); err != nil || len(rep.Plugins) != 1 {
		t.Fatalf("verify of a version 2 lockfile: %v %v", rep, err)
	}
	if got := parseLock(t, e.dir); got.Version != 2 || got.Plugins["validate_email"].WasmSHA256 != lf.Plugins["validate_email"].WasmSHA256 {
		t.Fatalf("read as version %d: %+v", got.Version, got.Plugins["validate_email"])
	}
	// Nothing changed: the version 2 file stays as it is.
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(lock); !bytes.Equal(b, v2) {
		t.Fatalf("an install that changed nothing rewrote the version 2 file:\n%s", b)
	}
	// A change is never appended to a version 2 file: the whole state becomes a version 3 base.
	if _, err := e.install("validate_email@1.1.0", "keys"); err != nil {
		t.Fatal(err)
	}
	lines := lockLines(t, e.dir)
	if got := parseLock(t, e.dir); len(lines) != 1 || got.Version != 3 || got.Plugins["validate_email"].Version != "1.1.0" || lines[0] != string(got.Marshal()) {
		t.Fatalf("after the commit:\n%q", lines)
	}
}

// The file holds max(64, E) change lines at most: the commit that finds that many writes a new
// base (E = entries after the commit), so the file stays within about twice a fresh base.
func TestANewBaseIsWrittenAfterMax64AndEntriesChangeLines(t *testing.T) {
	for _, c := range []struct {
		entries, changeLines int
		wantBase             bool
	}{
		{1, 63, false}, {1, 64, true}, {70, 64, false}, {70, 69, false}, {70, 70, true},
	} {
		t.Run(fmt.Sprintf("%d entries %d lines", c.entries, c.changeLines), func(t *testing.T) {
			dir := t.TempDir()
			var entries []*LockEntry
			for i := 0; i < c.entries; i++ {
				entries = append(entries, testEntry(fmt.Sprintf("plugin%03d", i), "1.0.0"))
			}
			var file strings.Builder
			file.WriteString(baseLine(entries...))
			for i := 0; i < c.changeLines; i++ {
				x := *entries[0]
				x.Requested = fmt.Sprintf("^1.%d", i)
				file.WriteString(`{"plugins":{"plugin000":` + entryJSON(&x) + "}}\n")
			}
			_ = os.WriteFile(filepath.Join(dir, LockfileName), []byte(file.String()), 0o644)
			root, lf := openLockfile(t, dir)
			before := maps.Clone(lf.Plugins)
			changed := *lf.Plugins[changedName(c.entries-1)]
			changed.Requested = "=1.0.0"
			lf.Plugins[changedName(c.entries-1)] = &changed
			if err := lf.commit(root, before); err != nil {
				t.Fatal(err)
			}
			lines := lockLines(t, dir)
			got := parseLock(t, dir)
			if got.Plugins[changedName(c.entries-1)].Requested != "=1.0.0" || len(got.Plugins) != c.entries {
				t.Fatalf("the commit is not in the folded state")
			}
			if c.wantBase && (len(lines) != 1 || got.ChangeLines != 0) {
				t.Fatalf("%d lines; want one new base", len(lines))
			}
			if !c.wantBase && (len(lines) != c.changeLines+2 || !strings.HasPrefix(lines[len(lines)-1], `{"plugins":{"`+changedName(c.entries-1)+`":`)) {
				t.Fatalf("%d lines; want %d (one appended)", len(lines), c.changeLines+2)
			}
		})
	}
}

func changedName(i int) string { return fmt.Sprintf("plugin%03d", i) }

// The append opens the lockfile with O_NOFOLLOW: a link swapped in after the read is refused, and
// the file it points to is not written.
func TestAppendNeverWritesThroughALink(t *testing.T) {
	dir := t.TempDir()
	base := baseLine(testEntry("alpha", "1.0.0"))
	_ = os.WriteFile(filepath.Join(dir, LockfileName), []byte(base), 0o644)
	root, lf := openLockfile(t, dir)
	before := maps.Clone(lf.Plugins)
	lf.Plugins["beta"] = testEntry("beta", "1.0.0")
	outside := filepath.Join(t.TempDir(), "elsewhere")
	_ = os.WriteFile(outside, []byte(base), 0o644)
	_ = os.Remove(filepath.Join(dir, LockfileName))
	if err := os.Symlink(outside, filepath.Join(dir, LockfileName)); err != nil {
		t.Fatal(err)
	}
	err := lf.commit(root, before)
	wantClass(t, err, ClassUnsafePath)
	if b, _ := os.ReadFile(outside); string(b) != base {
		t.Fatalf("written through the link:\n%s", b)
	}
}

// The cost of one commit at 1,000 installed plugins (docs/client-go.md, Measured):
// go test -run '^$' -bench Lockfile1000 .
func lockfile1000(b *testing.B) (*dirFD, *Lockfile) {
	dir := b.TempDir()
	lf := &Lockfile{Plugins: map[string]*LockEntry{}}
	for i := 0; i < 1000; i++ {
		lf.Plugins[changedName(i)] = testEntry(changedName(i), "1.0.0")
	}
	if err := os.WriteFile(filepath.Join(dir, LockfileName), lf.Marshal(), 0o644); err != nil {
		b.Fatal(err)
	}
	return openLockfile(b, dir)
}

func BenchmarkLockfile1000Read(b *testing.B) {
	root, _ := lockfile1000(b)
	for b.Loop() {
		if _, err := readLockfile(root); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCommit(b *testing.B, newBase bool) {
	root, lf := lockfile1000(b)
	i := 0
	for b.Loop() {
		before := maps.Clone(lf.Plugins)
		e := *lf.Plugins["plugin001"]
		e.Requested = fmt.Sprintf("^1.%d", i)
		i++
		lf.Plugins["plugin001"] = &e
		if newBase {
			lf.ChangeLines = len(lf.Plugins) // due for a new base
		}
		if err := lf.commit(root, before); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLockfile1000CommitAppend(b *testing.B)  { benchCommit(b, false) }
func BenchmarkLockfile1000CommitNewBase(b *testing.B) { benchCommit(b, true) }

// A lockfile with other hard links is never appended to: the append would write into every other
// name of the file (here one outside the plugin directory, linked in as the lockfile). The commit
// writes a new base instead (temporary file, rename), which leaves the other name as it was and
// the lockfile with one link.
func TestALockfileWithOtherHardLinksGetsANewFileNotAnAppend(t *testing.T) {
	dir := t.TempDir()
	content := baseLine(testEntry("alpha", "1.0.0"), testEntry("beta", "1.0.0")) +
		string(canonicalLine(map[string]any{"plugins": map[string]any{"gamma": entryValue(testEntry("gamma", "1.0.0"))}}))
	outside := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(outside, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(dir, LockfileName)); err != nil {
		t.Fatal(err)
	}
	root, lf := openLockfile(t, dir)
	if lf.Version != LockfileVersion || lf.ChangeLines != 1 || len(lf.Plugins) != 3 || lf.dueForBase(200) {
		t.Fatalf("the fixture is not a version 3 lockfile due for an append: %+v", lf)
	}
	before := maps.Clone(lf.Plugins)
	delete(lf.Plugins, "beta")
	if err := lf.commit(root, before); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != content {
		t.Fatalf("the file outside the plugin directory was written:\n%s", b)
	}
	st, err := os.Lstat(filepath.Join(dir, LockfileName))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Fatalf("the lockfile has %d links after the commit; want 1", n)
	}
	got := parseLock(t, dir)
	if got.ChangeLines != 0 || got.Plugins["beta"] != nil || got.Plugins["alpha"] == nil || got.Plugins["gamma"] == nil || len(got.Plugins) != 2 {
		t.Fatalf("the lockfile after removing beta: %d change lines, plugins %v", got.ChangeLines, sortedKeys(got.Plugins))
	}
	if lf.ChangeLines != 0 || lf.committed != int64(st.Size()) {
		t.Fatalf("the in-memory state does not match the new base: %d change lines, %d committed of %d bytes", lf.ChangeLines, lf.committed, st.Size())
	}
	// The next commit appends again (the lockfile has one link now).
	before = maps.Clone(lf.Plugins)
	lf.Plugins["delta"] = testEntry("delta", "1.0.0")
	if err := lf.commit(root, before); err != nil {
		t.Fatal(err)
	}
	if got := parseLock(t, dir); got.ChangeLines != 1 || got.Plugins["delta"] == nil {
		t.Fatalf("the next commit: %d change lines, plugins %v", got.ChangeLines, sortedKeys(got.Plugins))
	}
}

// openLockfile opens the plugin directory dir (closed when the test ends) and reads its lockfile.
func openLockfile(tb testing.TB, dir string) (*dirFD, *Lockfile) {
	tb.Helper()
	root, err := openRoot(dir, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(root.Close)
	lf, err := readLockfile(root)
	if err != nil {
		tb.Fatal(err)
	}
	return root, lf
}
