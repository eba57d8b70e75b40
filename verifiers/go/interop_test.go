package verifier

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Lockfile interop with the Python client, on the sample registry built by registry-tool build:
// Python installs and Go verifies; Go installs and Python verifies; each appends change lines to
// the other's lockfile (version 3); the same commits give the same bytes; a tampered file is
// refused by both. REGISTRY_TOOL_PYTHON_TREE names another checkout whose registry_tool package
// (and conformance suite) to use instead of this one's, e.g. to test against a branch in progress.

type pythonTool struct {
	t      *testing.T
	python string
	repo   string // the checkout whose registry_tool runs (cwd and PYTHONPATH)
}

func newPythonTool(t *testing.T) *pythonTool {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	python := filepath.Join(repo, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Skip("the Python tool is not set up (make setup)")
	}
	if other := os.Getenv("REGISTRY_TOOL_PYTHON_TREE"); other != "" {
		repo = other
	}
	return &pythonTool{t: t, python: python, repo: repo}
}

// run runs registry-tool with args and returns its exit code and output.
func (p *pythonTool) run(args ...string) (int, string) {
	cmd := exec.Command(p.python, append([]string{"-m", "registry_tool"}, args...)...)
	cmd.Dir = p.repo
	cmd.Env = append(os.Environ(), "PYTHONPATH="+p.repo)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		p.t.Fatal(err)
	}
	return 0, out.String()
}

func TestLockfileInteropWithThePythonClient(t *testing.T) {
	py := newPythonTool(t)
	site := filepath.Join(t.TempDir(), "site")
	if code, out := py.run("build", "index", "--out", site, "--key", "samples/keys/index.key", "--no-smoke", "--no-cache"); code != 0 {
		t.Fatalf("registry-tool build: %s", out)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	defer srv.Close()
	url := srv.URL + "/"
	root := filepath.Join(py.repo, "index/root/1.root.json")
	now := time.Now().UTC()
	lockOf := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, LockfileName))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	verifyGo := func(dir string, want ...string) {
		t.Helper()
		rep, err := VerifyInstalled(dir, "", now)
		if err != nil || strings.Join(rep.Plugins, " ") != strings.Join(want, " ") {
			t.Fatalf("Go verify of %s: %v %v, want %v\n%s", dir, rep, err, want, lockOf(dir))
		}
	}

	// Python installs (a base line, then a change line), Go verifies.
	pyState, pyDir := t.TempDir(), t.TempDir()
	if code, out := py.run("client", "trust", url, "--root", root, "--state-dir", pyState); code != 0 {
		t.Fatalf("client trust: %s", out)
	}
	pyInstall := func(dir, spec string) {
		t.Helper()
		if code, out := py.run("client", "install", spec, "--allow", "keys", "--registry", url, "--dir", dir, "--state-dir", pyState); code != 0 {
			t.Fatalf("client install %s: %s", spec, out)
		}
	}
	pyInstall(pyDir, "visit_counter")
	if !bytes.HasPrefix(lockOf(pyDir), []byte(`{"lockfile_version":3,`)) {
		t.Skip("the Python client in this tree does not write lockfile version 3 yet")
	}
	pyInstall(pyDir, "uppercase")
	verifyGo(pyDir, "uppercase", "visit_counter")

	// Go installs the same, Python verifies; the same commits are the same bytes.
	goState, goDir := t.TempDir(), t.TempDir()
	rootBytes, _ := os.ReadFile(root)
	r, _ := ParseRoot(rootBytes, root)
	var names []string
	for _, k := range r.Roles["root"].Keys {
		names = append(names, "root/1.root.json."+k.KeyID()+".minisig")
	}
	sigs, err := FetchFiles(context.Background(), url, names, MaxSignature, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PinRoot(goState, url, rootBytes, sigs); err != nil {
		t.Fatal(err)
	}
	goInstall := func(dir, spec string) {
		t.Helper()
		s, err := Refresh(context.Background(), goState, url, Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Install(spec, dir, InstallOptions{Allow: []string{"keys"}}); err != nil {
			t.Fatal(err)
		}
	}
	goInstall(goDir, "visit_counter")
	goInstall(goDir, "uppercase")
	if code, out := py.run("client", "verify", "--dir", goDir, "--state-dir", pyState); code != 0 {
		t.Fatalf("Python verify of a Go install: exit %d\n%s", code, out)
	}
	goLock, pyLock := lockOf(goDir), lockOf(pyDir)
	if !bytes.Equal(bytes.ReplaceAll(goLock, []byte(url), nil), bytes.ReplaceAll(pyLock, []byte(url), nil)) || bytes.Count(goLock, []byte("\n")) != 2 {
		t.Errorf("the lockfiles differ (or are not a base and a change line):\n--- Go\n%s\n--- Python\n%s", goLock, pyLock)
	}

	// Each appends to the other's lockfile: Go installs into Python's folder, Python removes from Go's.
	goInstall(pyDir, "adler32")
	if code, out := py.run("client", "verify", "--dir", pyDir, "--state-dir", pyState); code != 0 {
		t.Fatalf("Python verify after a Go append: exit %d\n%s", code, out)
	}
	if code, out := py.run("client", "remove", "uppercase", "--dir", goDir); code != 0 {
		t.Fatalf("client remove: exit %d\n%s", code, out)
	}
	if got := lockOf(goDir); bytes.Count(got, []byte("\n")) != 3 || !bytes.HasSuffix(got, []byte(`{"plugins":{"uppercase":null}}`+"\n")) {
		t.Fatalf("Python's remove did not append one removal line:\n%s", got)
	}
	verifyGo(goDir, "visit_counter")
	goInstall(goDir, "adler32")
	verifyGo(goDir, "adler32", "visit_counter")

	// A tampered module is refused by both, whichever client installed it.
	for _, dir := range []string{pyDir, goDir} {
		wasm := filepath.Join(dir, "visit_counter/1.0.0/visit_counter.wasm")
		b, _ := os.ReadFile(wasm)
		b[len(b)-1] ^= 0xff
		_ = os.WriteFile(wasm, b, 0o644)
		if _, err := VerifyInstalled(dir, "", now); AsError(err).Class != ClassInstalledTampered {
			t.Errorf("Go verify of tampered %s: %v", dir, err)
		}
		if code, out := py.run("client", "verify", "--dir", dir, "--state-dir", pyState); code != 1 {
			t.Errorf("Python verify of tampered %s: exit %d\n%s", dir, code, out)
		}
	}
}
