package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type env struct {
	site  *testSite
	state string
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{site: newTestSite(t), state: t.TempDir(), dir: filepath.Join(t.TempDir(), "plugins")}
	root := e.site.get("root/1.root.json")
	sig := e.site.get("root/1.root.json." + e.site.rootA.id() + ".minisig")
	if _, err := PinRoot(e.state, e.site.url(), root, [][]byte{sig}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) refresh(opts ...func(*Options)) (*Session, error) {
	o := Options{Now: testNow, Deadline: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	return Refresh(context.Background(), e.state, e.site.url(), o)
}

func (e *env) install(spec string, allow ...string) ([]Installed, error) {
	s, err := e.refresh()
	if err != nil {
		return nil, err
	}
	return s.Install(spec, e.dir, InstallOptions{Allow: allow})
}

func wantClass(t *testing.T, err error, class Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %s", class)
	}
	if got := AsError(err).Class; got != class {
		t.Fatalf("class %s, want %s (%v)", got, class, err)
	}
}

func TestInstallAndVerify(t *testing.T) {
	e := newEnv(t)
	inst, err := e.install("validate_email@^1.0", "keys")
	if err != nil {
		t.Fatal(err)
	}
	if inst[0].Version != "1.1.0" {
		t.Fatalf("installed %s, want 1.1.0 (highest non-yanked in ^1.0)", inst[0].Version)
	}
	lock, err := os.ReadFile(filepath.Join(e.dir, LockfileName))
	if err != nil {
		t.Fatal(err)
	}
	var lf map[string]any
	if err := json.Unmarshal(lock, &lf); err != nil {
		t.Fatal(err)
	}
	entry := lf["plugins"].(map[string]any)["validate_email"].(map[string]any)
	if entry["requested"] != "^1.0" || entry["wasm"] != "validate_email/1.1.0/validate_email.wasm" ||
		entry["signatures"].([]any)[0] != "validate_email/1.1.0/plugin.toml.minisig" {
		t.Fatalf("lockfile entry %v", entry)
	}
	if !strings.HasPrefix(string(lock), `{"lockfile_version":3,"plugins":{"validate_email":{"abi":`) || strings.Count(string(lock), "\n") != 1 ||
		!strings.HasSuffix(string(lock), "}}}\n") {
		t.Fatalf("lockfile is not one version 3 base line in Python's compact sort_keys layout:\n%s", lock)
	}
	rep, err := VerifyInstalled(e.dir, e.state, testNow)
	if err != nil || len(rep.Plugins) != 1 {
		t.Fatalf("verify: %v %v", rep, err)
	}
	// Downgrade to an exact pin of 1.0.0: the previous version's files are removed.
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "validate_email/1.1.0")); !os.IsNotExist(err) {
		t.Fatalf("previous version left behind: %v", err)
	}
}

// A Session shared by goroutines (a gateway's handlers): its Commit and download count raced
// (go test -race); installs into one folder are serialised by its lock.
func TestASessionMayBeSharedByGoroutines(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "adler32", version: "1.0.0"})
	e.site.build()
	s, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	specs := []string{"validate_email@1.0.0", "adler32", "validate_email@1.0.0", "adler32"}
	errs := make(chan error, len(specs))
	for _, spec := range specs {
		go func(spec string) {
			_, err := s.Install(spec, e.dir, InstallOptions{Allow: []string{"keys"}})
			if err == nil {
				err = s.Commit()
			}
			errs <- err
		}(spec)
	}
	for range specs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s.Downloads() == 0 {
		t.Fatal("no download counted")
	}
	if rep, err := VerifyInstalled(e.dir, e.state, testNow); err != nil || len(rep.Plugins) != 2 {
		t.Fatalf("verify: %v %v", rep, err)
	}
}

// Another writer holding the folder's lock (one that hangs) made Install wait without end and
// then report a slow-retrieval attack: it waits at most the operation's deadline, exit 2.
func TestABusyPluginDirectoryIsWaitedForUntilTheDeadline(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := os.OpenFile(filepath.Join(e.dir, ".registry-tool.lck"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	s, err := e.refresh(func(o *Options) { o.Deadline = 300 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Install("validate_email@1.0.0", e.dir, InstallOptions{})
	if AsError(err) == nil || AsError(err).Code != "plugin-dir-busy" || AsError(err).ExitCode() != 2 {
		t.Fatalf("got %v, want plugin-dir-busy (exit 2)", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("waited %s", waited)
	}
}

func TestKilledWritersTemporaryFilesAreRemovedByTheNextInstall(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(e.dir, "validate_email/1.0.0/.part-0123456789abcdef")
	_ = os.WriteFile(stale, []byte("half a module"), 0o644)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file left: %v", err)
	}
}

func TestExactPinSelectsYankedRangeNever(t *testing.T) {
	e := newEnv(t)
	if inst, err := e.install("validate_email@2.0.0"); err != nil || inst[0].Version != "2.0.0" {
		t.Fatalf("exact pin of a yanked release: %v %v", inst, err)
	}
	_, err := e.install("validate_email@>=2.0.0")
	wantClass(t, err, ClassNoMatchingVersion)
	// Why, and only what a range could choose (it blamed yanked releases when none matched).
	if msg := AsError(err).What; !strings.Contains(msg, "yanked (chosen only by an exact pin): 2.0.0; available: 1.1.0, 1.0.0") {
		t.Fatalf("message %q", msg)
	}
	_, err = e.install("validate_email@^9")
	if msg := AsError(err).What; strings.Contains(msg, "yanked") || !strings.Contains(msg, "available: 1.1.0, 1.0.0") {
		t.Fatalf("message %q", msg)
	}
	// An exact pin does choose a yanked release: one the host cannot run is passed over for the host.
	host := ">=9.0.0"
	e.site.add(&testRelease{name: "validate_email", version: "3.0.0", yanked: true, host: &host})
	e.site.build()
	s, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Install("validate_email@3.0.0", e.dir, InstallOptions{HostVersion: "1.0.0"})
	if msg := AsError(err).What; strings.Contains(msg, "yanked") || !strings.Contains(msg, "for another host version: 3.0.0") {
		t.Fatalf("message %q", msg)
	}
}

func TestPermissionRequired(t *testing.T) {
	e := newEnv(t)
	_, err := e.install("validate_email@1.1.0")
	wantClass(t, err, ClassPermissionRequired)
	if AsError(err).ExitCode() != 2 {
		t.Fatal("permission-required is a usage error (exit 2)")
	}
}

// Every release of the graph is verified with the same allow set (conformance decision 16.5),
// the installed ones kept too: what a lockfile entry records, or was granted to a same-named
// plugin of another registry, never stands in for the host's grant.
func TestThePermissionsOfInstalledPluginsAreNoGrant(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.build()
	if _, err := e.install("uses_email", "keys"); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(e.dir, LockfileName)
	// The dependency is installed at the version the graph keeps: still not granted without allow.
	_, err := e.install("uses_email")
	wantClass(t, err, ClassPermissionRequired)
	// Nor when its entry names another registry.
	b, _ := os.ReadFile(lockPath)
	lf, err := ParseLockfile(b, lockPath)
	if err != nil {
		t.Fatal(err)
	}
	c := *lf.Plugins["validate_email"]
	c.Registry = "https://elsewhere.example/"
	lf.Plugins["validate_email"] = &c
	rewritten := lf.Marshal()
	if err := os.WriteFile(lockPath, rewritten, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = e.install("validate_email")
	wantClass(t, err, ClassPermissionRequired)
	if after, _ := os.ReadFile(lockPath); string(after) != string(rewritten) {
		t.Fatal("a refused install changed the lockfile")
	}
}

func TestNotFoundAndBadRequirement(t *testing.T) {
	e := newEnv(t)
	_, err := e.install("nosuchplugin")
	wantClass(t, err, ClassNotFound)
	_, err = e.install("validate_email@1.0.0 - 2.0.0")
	wantClass(t, err, ClassBadRequirement)
}

func TestNotPinned(t *testing.T) {
	_, err := Refresh(context.Background(), t.TempDir(), "http://127.0.0.1:1/", Options{Now: testNow})
	wantClass(t, err, ClassNotPinned)
}

func TestTamperedTopDocumentIsBadSignature(t *testing.T) {
	e := newEnv(t)
	top := e.site.get("registry.json")
	e.site.set("registry.json", []byte(strings.Replace(string(top), `"version":5`, `"version":6`, 1)))
	_, err := e.refresh()
	wantClass(t, err, ClassBadSignature)
}

func TestTopSignedByMaintainerKeyIsBadSignature(t *testing.T) {
	e := newEnv(t)
	top := e.site.get("registry.json")
	e.site.set("registry.json.minisig", e.site.alice.sign(top, "x"))
	_, err := e.refresh()
	wantClass(t, err, ClassBadSignature)
}

func TestRollbackFreezeWrongRegistry(t *testing.T) {
	e := newEnv(t)
	s, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	e.site.version = 4
	e.site.build()
	_, err = e.refresh()
	wantClass(t, err, ClassRollback)

	e.site.version = 5
	e.site.expires = "2026-11-28T12:00:00Z" // == now: expired
	e.site.build()
	_, err = e.refresh()
	wantClass(t, err, ClassFreeze)

	e.site.expires = "2026-12-04T12:00:00Z"
	e.site.build()
	var top map[string]any
	_ = json.Unmarshal(e.site.get("registry.json"), &top)
	top["registry"].(map[string]any)["name"] = "other"
	e.site.setTop(top, e.site.index)
	_, err = e.refresh()
	wantClass(t, err, ClassWrongRegistry)
}

func TestUnsupportedFormat(t *testing.T) {
	e := newEnv(t)
	var top map[string]any
	_ = json.Unmarshal(e.site.get("registry.json"), &top)
	top["format_version"] = 3
	e.site.setTop(top, e.site.index)
	_, err := e.refresh()
	wantClass(t, err, ClassUnsupportedFormat)
}

func TestTamperedModuleIsDigestMismatch(t *testing.T) {
	e := newEnv(t)
	p := "plugins/validate_email/1.0.0/validate_email.wasm"
	e.site.set(p, append(e.site.get(p)[:len(e.site.get(p))-1], 'X'))
	_, err := e.install("validate_email@1.0.0")
	wantClass(t, err, ClassDigestMismatch)
}

func TestAnotherReleasesModuleIsMixAndMatch(t *testing.T) {
	e := newEnv(t)
	e.site.set("plugins/validate_email/1.0.0/validate_email.wasm", e.site.get("plugins/validate_email/2.0.0/validate_email.wasm"))
	_, err := e.install("validate_email@1.0.0")
	wantClass(t, err, ClassMixAndMatch)
}

func TestReinstallOfAnUnchangedReleaseFetchesOnlyTheTop(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	e.site.requestCount()
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if n := e.site.requestCount(); n != 4 { // root probe, registry.json, its two signature names
		t.Fatalf("%d requests, want 4", n)
	}
	// A tampered installed module is not reused: the release is downloaded and verified again.
	wasm := filepath.Join(e.dir, "validate_email/1.0.0/validate_email.wasm")
	_ = os.WriteFile(wasm, []byte("tampered"), 0o644)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyInstalled(e.dir, e.state, testNow); err != nil {
		t.Fatalf("after reinstall: %v", err)
	}
}

func TestBareNameNeverPicksAPrerelease(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "validate_email", version: "3.0.0-rc.1"})
	e.site.build()
	inst, err := e.install("validate_email", "keys")
	if err != nil || inst[0].Version != "1.1.0" {
		t.Fatalf("bare name: %v %v", inst, err)
	}
}

func TestEndlessModuleIsEndlessData(t *testing.T) {
	e := newEnv(t)
	e.site.fault("plugins/validate_email/1.0.0/validate_email.wasm", "endless")
	_, err := e.install("validate_email@1.0.0")
	wantClass(t, err, ClassEndlessData)
}

func TestSlowTopIsSlowRetrieval(t *testing.T) {
	e := newEnv(t)
	e.site.fault("registry.json", "slow")
	_, err := e.refresh(func(o *Options) { o.Deadline = 500 * time.Millisecond })
	wantClass(t, err, ClassSlowRetrieval)
}

func TestServerErrorIsNetwork(t *testing.T) {
	e := newEnv(t)
	e.site.fault("registry.json", "500")
	_, err := e.refresh()
	wantClass(t, err, ClassNetwork)
}

func TestUnsignedManifestIsMaintainerSignature(t *testing.T) {
	e := newEnv(t)
	m := e.site.releases[0]
	mallory := e.site.mallory
	m.signer = &mallory
	e.site.build()
	_, err := e.install("validate_email@1.0.0")
	wantClass(t, err, ClassMaintainerSignature)
}

func TestTreeWalkThroughBranches(t *testing.T) {
	e := newEnv(t)
	e.site.leafMax = 4
	for i := 0; i < 40; i++ {
		e.site.add(&testRelease{name: "plugin" + string(rune('a'+i%26)) + string(rune('a'+i/26)), version: "0.1.0"})
	}
	e.site.build()
	inst, err := e.install("pluginza")
	if err != nil {
		t.Fatal(err)
	}
	if inst[0].Name != "pluginza" {
		t.Fatal(inst)
	}
	_, err = e.install("pluginzz")
	wantClass(t, err, ClassNotFound)
}

func TestTreeNodeOfAnotherPrefixIsMixAndMatch(t *testing.T) {
	_, err := parseNode([]byte(`{"_type":"registry-node","format_version":2,"prefix":"a","plugins":{}}`+"\n"), "b", "node")
	wantClass(t, err, ClassMixAndMatch)
	_, err = parseNode([]byte(`{"_type":"registry-node","format_version":2,"prefix":"0","plugins":{"validate_email":{"sha256":"`+strings.Repeat("0", 64)+`","size":1}}}`), "0", "node")
	wantClass(t, err, ClassMixAndMatch) // the name's key does not start with 0
}

func TestDependenciesAreInstalled(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.build()
	inst, err := e.install("uses_email", "keys")
	if err != nil {
		t.Fatal(err)
	}
	if len(inst) != 2 || inst[1].Name != "validate_email" || inst[1].Version != "1.1.0" {
		t.Fatalf("installed %v", inst)
	}
	b, _ := os.ReadFile(filepath.Join(e.dir, LockfileName))
	lf, err := ParseLockfile(b, "lock")
	if err != nil {
		t.Fatal(err)
	}
	if got := lf.Plugins["validate_email"]; got.Requested != DependencyOnly || len(got.RequiredBy) != 1 || got.RequiredBy[0] != "uses_email" {
		t.Fatalf("dependency entry %+v", got)
	}
}

func TestExplicitInstallPromotesADependency(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.build()
	requested := func() string {
		b, _ := os.ReadFile(filepath.Join(e.dir, LockfileName))
		lf, err := ParseLockfile(b, "lock")
		if err != nil {
			t.Fatal(err)
		}
		return lf.Plugins["validate_email"].Requested
	}
	if _, err := e.install("uses_email", "keys"); err != nil {
		t.Fatal(err)
	}
	if got := requested(); got != DependencyOnly {
		t.Fatalf("before: requested %q", got)
	}
	// Same version, nothing new to download: only the recorded requirement changes.
	if _, err := e.install("validate_email", "keys"); err != nil {
		t.Fatal(err)
	}
	if got := requested(); got != "" {
		t.Fatalf("after a bare install: requested %q, want \"\"", got)
	}
}

func TestVerifyRefusesTamperingAndLinks(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(e.dir, "validate_email/1.0.0/validate_email.wasm")
	orig, _ := os.ReadFile(wasm)
	if err := os.WriteFile(wasm, append(orig, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := VerifyInstalled(e.dir, e.state, testNow)
	wantClass(t, err, ClassInstalledTampered)

	// The module replaced by a link to an identical copy outside: still refused, never followed.
	outside := filepath.Join(t.TempDir(), "copy.wasm")
	_ = os.WriteFile(outside, orig, 0o644)
	_ = os.Remove(wasm)
	if err := os.Symlink(outside, wasm); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyInstalled(e.dir, e.state, testNow)
	wantClass(t, err, ClassUnsafePath)

	// A linked version directory.
	_ = os.Remove(wasm)
	_ = os.WriteFile(wasm, orig, 0o644)
	vdir := filepath.Join(e.dir, "validate_email/1.0.0")
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(vdir, moved); err != nil {
		t.Fatal(err)
	}
	_ = os.Symlink(moved, vdir)
	_, err = VerifyInstalled(e.dir, e.state, testNow)
	wantClass(t, err, ClassUnsafePath)
	// Install does not write through the link either.
	_, err = e.install("validate_email@1.0.0")
	wantClass(t, err, ClassUnsafePath)
}

func TestVerifyJudgesSignaturesWithAnExpiredTrustedRoot(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	later := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // the trusted root expired in 2027
	if _, err := VerifyInstalled(e.dir, e.state, later); err != nil {
		t.Fatalf("offline verify with an expired root: %v", err)
	}
	// Signature files replaced by another key's: refused although the bytes match the lockfile.
	sig := filepath.Join(e.dir, "validate_email/1.0.0/plugin.toml.minisig")
	man, _ := os.ReadFile(filepath.Join(e.dir, "validate_email/1.0.0/plugin.toml"))
	_ = os.WriteFile(sig, e.site.mallory.sign(man, "x"), 0o644)
	_, err := VerifyInstalled(e.dir, e.state, later)
	wantClass(t, err, ClassInstalledTampered)
}

// Every entry is judged by the one pinned root, whatever registry its lockfile entry names: a
// rewritten "registry" (to a URL no root is pinned for) never turns the signature check into
// digests only. The Python client judges such an entry by its other trusted roots and refuses it
// when none verifies it (no-trusted-root); here, as there, intact files still verify.
func TestVerifyJudgesAnEntryWithARewrittenRegistryByThePinnedRoot(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(e.dir, LockfileName)
	rewrite := func(change func(*LockEntry)) {
		t.Helper()
		b, err := os.ReadFile(lockPath)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := ParseLockfile(b, lockPath)
		if err != nil {
			t.Fatal(err)
		}
		c := *lf.Plugins["validate_email"]
		change(&c)
		lf.Plugins["validate_email"] = &c
		if err := os.WriteFile(lockPath, lf.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{"https://elsewhere.example/", "file:///nonexistent/"} {
		rewrite(func(c *LockEntry) { c.Registry = other })
		if _, err := VerifyInstalled(e.dir, e.state, testNow); err != nil {
			t.Fatalf("registry %s, files intact and signed: %v", other, err)
		}
	}
	// The manifest rewritten (its signatures no longer match) and the lockfile made to agree.
	manPath := filepath.Join(e.dir, "validate_email/1.0.0/plugin.toml")
	man, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatal(err)
	}
	forged := append(append([]byte(nil), man...), "\n# rewritten\n"...)
	if err := os.WriteFile(manPath, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	rewrite(func(c *LockEntry) {
		c.ManifestSHA256, c.ManifestSize = sha256Hex(forged), int64(len(forged))
	})
	_, err = VerifyInstalled(e.dir, e.state, testNow)
	wantClass(t, err, ClassInstalledTampered)
	_, err = LoadInstalled(e.dir, e.state, "validate_email", testNow)
	wantClass(t, err, ClassInstalledTampered)
}

// Hosts read abi, permissions and dependencies from the lockfile, which nobody signs: an entry
// whose copies differ from the signed manifest's is tampering although every file still matches
// (conformance/README.md, decision 15). Permissions compare as a set, dependencies as a map.
func TestVerifyRefusesLockfileFactsThatDifferFromTheSignedManifest(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", permissions: []string{"keys", "network"},
		deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.build()
	if _, err := e.install("uses_email", "keys", "network"); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(e.dir, LockfileName)
	orig, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(change func(*LockEntry)) {
		t.Helper()
		lf, err := ParseLockfile(orig, lockPath)
		if err != nil {
			t.Fatal(err)
		}
		c := *lf.Plugins["uses_email"]
		c.Permissions = append([]string(nil), c.Permissions...)
		c.Dependencies = map[string]string{}
		for k, v := range lf.Plugins["uses_email"].Dependencies {
			c.Dependencies[k] = v
		}
		change(&c)
		lf.Plugins["uses_email"] = &c
		if err := os.WriteFile(lockPath, lf.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for what, change := range map[string]func(*LockEntry){
		"a permission removed":     func(c *LockEntry) { c.Permissions = []string{"keys"} },
		"a permission added":       func(c *LockEntry) { c.Permissions = []string{"extism_user", "keys", "network"} },
		"a permission swapped":     func(c *LockEntry) { c.Permissions = []string{"extism_user", "keys"} },
		"another abi":              func(c *LockEntry) { c.ABI = "component" },
		"a dependency added":       func(c *LockEntry) { c.Dependencies["adler32"] = "^1.0" },
		"a dependency removed":     func(c *LockEntry) { c.Dependencies = map[string]string{} },
		"another dependency range": func(c *LockEntry) { c.Dependencies["validate_email"] = "^1.1.0" },
	} {
		rewrite(change)
		for _, state := range []string{e.state, ""} {
			_, err := VerifyInstalled(e.dir, state, testNow)
			if err == nil || AsError(err).Class != ClassInstalledTampered {
				t.Fatalf("%s (state %q): verify gave %v, want installed-tampered", what, state, err)
			}
			_, err = LoadInstalled(e.dir, state, "uses_email", testNow)
			if err == nil || AsError(err).Class != ClassInstalledTampered {
				t.Fatalf("%s (state %q): load gave %v, want installed-tampered", what, state, err)
			}
		}
	}
	// What the manifest does not hold is not compared; the permissions' order is not either.
	for what, change := range map[string]func(*LockEntry){
		"requested changed":     func(c *LockEntry) { c.Requested = "^1.0" },
		"permissions reordered": func(c *LockEntry) { c.Permissions = []string{"network", "keys"} },
		"required_by another":   func(c *LockEntry) { c.RequiredBy = []string{"validate_email"} },
	} {
		rewrite(change)
		if rep, err := VerifyInstalled(e.dir, e.state, testNow); err != nil || len(rep.Plugins) != 2 {
			t.Fatalf("%s: verify %v %v", what, rep, err)
		}
		if _, err := LoadInstalled(e.dir, e.state, "uses_email", testNow); err != nil {
			t.Fatalf("%s: load %v", what, err)
		}
	}
}

func TestLockfileWithUnknownVersionOrWrongTypeIsRefused(t *testing.T) {
	for _, body := range []string{
		`{"lockfile_version": 4, "plugins": {}}`,
		`{"lockfile_version": 4, "plugins": {}}` + "\n",
		`{"lockfile_version": 2, "plugins": {"validate_email": {"version": 1}}}`,
		`{"lockfile_version": 2, "plugins": [], "plugins": {}}`,
	} {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, LockfileName), []byte(body), 0o644)
		_, err := VerifyInstalled(dir, "", testNow)
		wantClass(t, err, ClassLockfile)
	}
}

func TestNothingChangedDownloadsOnlyTopAndSignatures(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	e.site.requestCount()
	s, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Resolve("validate_email@1.0.0", ""); err != nil {
		t.Fatal(err)
	}
	// root/2.root.json (404), registry.json, its two signature names; tree and plugin document come from the cache.
	if n := e.site.requestCount(); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
}

// TestRootWalkRefusesAChainGoingOnPastItsBound: one session walks at most maxRootSteps new root
// versions; a chain still going on after them is root-chain, never ended at the last walked root
// (conformance decision 2). Walked here with a bound of 2.
func TestRootWalkRefusesAChainGoingOnPastItsBound(t *testing.T) {
	if maxRootSteps != 1024 {
		t.Fatalf("maxRootSteps = %d, want 1024", maxRootSteps)
	}
	e := newEnv(t)
	var doc map[string]any
	if err := json.Unmarshal(e.site.get("root/1.root.json"), &doc); err != nil {
		t.Fatal(err)
	}
	publish := func(v int) {
		doc["version"] = v
		raw := canonical(doc)
		name := fmt.Sprintf("root/%d.root.json", v)
		e.site.set(name, raw)
		e.site.set(name+"."+e.site.rootA.id()+".minisig",
			e.site.rootA.sign(raw, fmt.Sprintf("registry-root\tregistry:%s\tversion:%d", e.site.registry, v)))
	}
	walk := func(limit int64) (*Session, error) {
		st, err := LoadState(e.state)
		if err != nil {
			t.Fatal(err)
		}
		base, err := url.Parse(e.site.url())
		if err != nil {
			t.Fatal(err)
		}
		s := &Session{state: st, url: e.site.url(), now: testNow, ctx: context.Background(),
			xfer: &transfers{fetcher: NewHTTPFetcher(), base: base, overall: time.Now().Add(5 * time.Second), perFile: 5 * time.Second}}
		return s, s.walkRoot(limit)
	}
	publish(2)
	publish(3)
	s, err := walk(2)
	if err != nil || s.Root.Version != 3 {
		t.Fatalf("a chain of exactly the bound: %v", err)
	}
	publish(4)
	_, err = walk(2)
	wantClass(t, err, ClassRootChain)
	if w := AsError(err).Where; w != "root/4.root.json" {
		t.Errorf("where %q, want root/4.root.json", w)
	}
	if s, err = walk(3); err != nil || s.Root.Version != 4 {
		t.Fatalf("bound 3: %v", err)
	}
}

// Each round pins one plugin, the most constrained first (as resolvelib does for the Python
// client): legacy 1.0.0 allows only core 1.0.0, so core is pinned before the three extensions
// and every release of an extension that needs a newer core is refused at once. Choosing all
// unmet plugins in each round in alphabetical order instead tried 20×20×20 combinations of the
// extensions and gave up after 2000 rounds.
func TestDependencyResolutionPinsTheMostConstrainedFirst(t *testing.T) {
	e := newEnv(t)
	exts := []string{"ext_a", "ext_b", "ext_c"}
	for j := 0; j < 20; j++ {
		v := fmt.Sprintf("1.%d.0", j)
		e.site.add(&testRelease{name: "core", version: v})
		for _, x := range exts {
			e.site.add(&testRelease{name: x, version: v, deps: map[string]string{"core": ">=" + v}})
		}
	}
	e.site.add(&testRelease{name: "legacy", version: "1.0.0", deps: map[string]string{"core": "<1.1.0"}})
	e.site.add(&testRelease{name: "suite", version: "1.0.0",
		deps: map[string]string{"ext_a": "*", "ext_b": "*", "ext_c": "*", "legacy": "*"}})
	e.site.build()
	inst, err := e.install("suite")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range inst {
		got[i.Name] = i.Version
	}
	want := map[string]string{"suite": "1.0.0", "ext_a": "1.0.0", "ext_b": "1.0.0", "ext_c": "1.0.0", "legacy": "1.0.0", "core": "1.0.0"}
	if len(got) != len(want) {
		t.Fatalf("installed %v, want %v", got, want)
	}
	for name, v := range want {
		if got[name] != v {
			t.Fatalf("installed %v, want %v", got, want)
		}
	}
}

// Dependency resolution gives up where the Python client's does (resolvelib's 2000 rounds: one
// per release chosen, plus the one finding nothing left to choose). A valid chain of 2000 plugins
// is refused with "gave up"; a chain of 1998 whose last link needs a plugin nobody publishes is
// resolved to its end (the verdict names the missing plugin). Neither downloads a release.
func TestDependencyResolutionBoundIsPythons(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches and caches 4,000 plugin documents")
	}
	for _, c := range []struct {
		links   int
		missing bool
		want    string
	}{{MaxResolutionRounds - 2, true, "does not list missing"}, {MaxResolutionRounds, false, "gave up after 2000 rounds"}} {
		c := c
		t.Run(fmt.Sprint(c.links), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			for i := 0; i < c.links; i++ {
				deps := map[string]string{fmt.Sprintf("link%04d", i+1): "^1"}
				if i+1 == c.links {
					deps = nil
					if c.missing {
						deps = map[string]string{"missing": "^1"}
					}
				}
				e.site.add(&testRelease{name: fmt.Sprintf("link%04d", i), version: "1.0.0", deps: deps})
			}
			e.site.build()
			s, err := e.refresh(func(o *Options) { o.Deadline = 2 * time.Minute }) // 2000 documents
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Install("link0000", e.dir, InstallOptions{})
			wantClass(t, err, ClassDependencyConflict)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%d links: %v, want %q", c.links, err, c.want)
			}
		})
	}
}

// An installed version that the registry now publishes with other bytes is refused, named or as
// a dependency, before anything is fetched beyond the metadata; the same bytes are kept.
func TestRepublishedVersionIsRefused(t *testing.T) {
	e := newEnv(t)
	e.site.add(&testRelease{name: "uses_email", version: "1.0.0", deps: map[string]string{"validate_email": "^1.0.0"}})
	e.site.build()
	if _, err := e.install("uses_email", "keys"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(e.dir, LockfileName))
	for _, r := range e.site.releases {
		if r.name == "validate_email" && r.version == "1.1.0" {
			r.wasm = append(append([]byte(nil), r.wasm...), 'x')
		}
	}
	e.site.version++
	e.site.build()
	for _, spec := range []string{"uses_email", "validate_email", "validate_email@1.1.0"} {
		_, err := e.install(spec, "keys")
		wantClass(t, err, ClassRepublished)
		if !strings.Contains(err.Error(), "validate_email 1.1.0 is installed with module sha256") {
			t.Fatalf("%s: %v", spec, err)
		}
		if AsError(err).ExitCode() != 1 {
			t.Fatalf("exit code %d", AsError(err).ExitCode())
		}
	}
	if after, _ := os.ReadFile(filepath.Join(e.dir, LockfileName)); !bytes.Equal(before, after) {
		t.Fatal("the lockfile changed")
	}
}

func TestVerifyOfAMissingPluginDirectoryIsNothingInstalled(t *testing.T) {
	// As an empty directory without a lockfile (decision 15); Python and Rust answer the same.
	rep, err := VerifyInstalled(filepath.Join(t.TempDir(), "absent"), "", testNow)
	if err != nil || rep == nil || len(rep.Plugins) != 0 {
		t.Fatalf("want nothing installed, got %v, %v", rep, err)
	}
}

// A state directory that is given but holds no readable pinned root (a mistyped path, a
// truncated state.json, another client's state directory) is not-pinned for VerifyInstalled and
// LoadInstalled alike, never a silent fall back to digests only (a plugin rewritten together with
// its lockfile would pass). Only an empty stateDir checks digests alone.
func TestLoadTimeChecksRefuseAStateDirectoryWithoutAPinnedRoot(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	truncated := t.TempDir()
	if err := os.WriteFile(filepath.Join(truncated, stateFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pythons := t.TempDir() // the Python client's layout: no state.json
	_ = os.MkdirAll(filepath.Join(pythons, "registries"), 0o700)
	for label, state := range map[string]string{
		"mistyped": e.state + "-typo", "truncated": truncated, "another client's": pythons,
	} {
		_, err := VerifyInstalled(e.dir, state, testNow)
		wantClass(t, err, ClassNotPinned)
		if ae := AsError(err); !strings.Contains(ae.Error(), state) || !strings.Contains(ae.Fix, "state directory path") {
			t.Fatalf("%s state: the refusal names neither the directory nor the fix: %v", label, err)
		}
		_, err = LoadInstalled(e.dir, state, "validate_email", testNow)
		wantClass(t, err, ClassNotPinned)
		// Nothing installed (no plugin directory) changes nothing: the state is still wrong.
		_, err = VerifyInstalled(filepath.Join(t.TempDir(), "absent"), state, testNow)
		wantClass(t, err, ClassNotPinned)
	}
	// The digests-only check stays available, and only when no state directory is passed.
	if rep, err := VerifyInstalled(e.dir, "", testNow); err != nil || len(rep.Plugins) != 1 {
		t.Fatalf("digests only: %v %v", rep, err)
	}
	if _, err := LoadInstalled(e.dir, "", "validate_email", testNow); err != nil {
		t.Fatalf("digests only: %v", err)
	}
}

// PinRoot checks the URL as Refresh and FetchFiles do: http(s) only, and no user:password@, which
// state.json would hold in clear. Nothing is written for a refused URL.
func TestPinRootRefusesURLsRefreshRefuses(t *testing.T) {
	site := newTestSite(t)
	root := site.get("root/1.root.json")
	sig := site.get("root/1.root.json." + site.rootA.id() + ".minisig")
	u, _ := url.Parse(site.url())
	for _, bad := range []string{
		"http://user:secret@" + u.Host + "/", "https://token@example.org/plugins/", "ftp://" + u.Host + "/",
		"gopher://example.org/", "file:///srv/registry/", "example.org/plugins/",
	} {
		state := t.TempDir()
		_, err := PinRoot(state, bad, root, [][]byte{sig})
		wantClass(t, err, ClassNetwork)
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("the refusal repeats the password: %v", err)
		}
		if _, err := os.Stat(filepath.Join(state, stateFile)); !os.IsNotExist(err) {
			t.Fatalf("%s: state written (%v)", bad, err)
		}
	}
	if _, err := PinRoot(t.TempDir(), site.url(), root, [][]byte{sig}); err != nil {
		t.Fatal(err)
	}
}

// An empty plugin directory path is refused up front with a message saying so (it used to be
// "network: : mkdir :"), by Install, VerifyInstalled and LoadInstalled alike; nothing is written
// to the working directory.
func TestAnEmptyPluginDirectoryPathIsRefused(t *testing.T) {
	e := newEnv(t)
	cwd := t.TempDir()
	t.Chdir(cwd)
	s, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Install("validate_email@1.0.0", "", InstallOptions{})
	_, verr := VerifyInstalled("", e.state, testNow)
	_, lerr := LoadInstalled("", e.state, "validate_email", testNow)
	for _, err := range []error{err, verr, lerr} {
		wantClass(t, err, ClassNetwork)
		if !strings.Contains(err.Error(), "plugin directory path is empty") {
			t.Fatalf("unclear refusal: %v", err)
		}
	}
	if left, _ := os.ReadDir(cwd); len(left) != 0 {
		t.Fatalf("written to the working directory: %v", left)
	}
}

// Stored signatures by a key the pinned root does not delegate stay installed-tampered, but the
// refusal says the pinned root may be older than the one that delegated the signer (a root pinned
// with PinRoot and never refreshed and committed, plugins installed by the Python client) and
// how to tell: refresh and commit first. The rule's code is kept.
func TestAnUndelegatedSignerSaysThePinnedRootMayBeOld(t *testing.T) {
	e := newEnv(t)
	if _, err := e.install("validate_email@1.0.0"); err != nil {
		t.Fatal(err)
	}
	sig := filepath.Join(e.dir, "validate_email/1.0.0/plugin.toml.minisig")
	man, _ := os.ReadFile(filepath.Join(e.dir, "validate_email/1.0.0/plugin.toml"))
	_ = os.WriteFile(sig, e.site.mallory.sign(man, "x"), 0o644)
	for _, load := range []func() error{
		func() error { _, err := VerifyInstalled(e.dir, e.state, testNow); return err },
		func() error { _, err := LoadInstalled(e.dir, e.state, "validate_email", testNow); return err },
	} {
		err := load()
		wantClass(t, err, ClassInstalledTampered)
		ae := AsError(err)
		if !strings.Contains(ae.What, "pinned root (version 1)") || !strings.Contains(ae.What, "older than the root that delegated this signer") ||
			!strings.Contains(ae.Fix, "Session.Commit") || ae.Code == "" {
			t.Fatalf("the refusal does not say the pinned root may be old: %v (code %q)", err, ae.Code)
		}
	}
}

// A writer that commits an upgrade while a host loads (readers take no lock) removes the version
// the check was reading: not tampering. The check runs once more on the new lockfile, in full;
// a directory whose lockfile did not change keeps its tamper verdict.
func TestLoadingDuringAnUpgradeIsNotTampering(t *testing.T) {
	e := newEnv(t)
	upgradeOnce := func() {
		afterLockfileRead = func() {}
		if _, err := e.install("validate_email@1.1.0", "keys"); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { afterLockfileRead = func() {} }()
	for _, load := range []func() error{
		func() error { _, err := LoadInstalled(e.dir, e.state, "validate_email", testNow); return err },
		func() error { _, err := VerifyInstalled(e.dir, e.state, testNow); return err },
	} {
		if _, err := e.install("validate_email@1.0.0"); err != nil {
			t.Fatal(err)
		}
		afterLockfileRead = upgradeOnce
		if err := load(); err != nil {
			t.Fatalf("a load during an upgrade: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "validate_email/1.0.0")); !os.IsNotExist(err) {
			t.Fatalf("the upgrade did not remove the version being read: %v", err)
		}
	}
	// Stable directory: the verdict stands.
	wasm := filepath.Join(e.dir, "validate_email/1.1.0/validate_email.wasm")
	orig, _ := os.ReadFile(wasm)
	_ = os.WriteFile(wasm, append(orig, 0), 0o644)
	_, err := LoadInstalled(e.dir, e.state, "validate_email", testNow)
	wantClass(t, err, ClassInstalledTampered)
	_, err = VerifyInstalled(e.dir, e.state, testNow)
	wantClass(t, err, ClassInstalledTampered)
}

// A session commits when its install starts (decision 3), and another process may have stored a
// newer state meanwhile: the commit never lowers it (it wrote the older session's state over it,
// even for an install that failed at once, so a revocation or a registry version was forgotten).
func TestASessionsCommitNeverLowersTheStoredState(t *testing.T) {
	e := newEnv(t)
	older, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	e.site.version++
	e.site.build()
	newer, err := e.refresh()
	if err != nil {
		t.Fatal(err)
	}
	if err := newer.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err = older.Install("Not A Spec!", e.dir, InstallOptions{})
	wantClass(t, err, ClassBadRequirement)
	st, err := LoadState(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if st.HighestVersion != newer.Top.Version || newer.Top.Version <= older.Top.Version {
		t.Fatalf("stored highest version %d, want the newer session's %d (older %d)", st.HighestVersion, newer.Top.Version, older.Top.Version)
	}
}
