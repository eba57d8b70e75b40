package verifier

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Lockfile interop with the Python client, on the sample registry built by registry-tool build:
// Python installs and Go verifies; Go installs and Python verifies; a tampered file is refused
// by both.

type pythonTool struct {
	t      *testing.T
	python string
	repo   string
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
	return &pythonTool{t: t, python: python, repo: repo}
}

// run runs registry-tool with args and returns its exit code and output.
func (p *pythonTool) run(args ...string) (int, string) {
	cmd := exec.Command(p.python, append([]string{"-m", "registry_tool"}, args...)...)
	cmd.Dir = p.repo
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

	// Python installs, Go verifies.
	pyState, pyDir := t.TempDir(), t.TempDir()
	if code, out := py.run("client", "trust", url, "--root", root, "--state-dir", pyState); code != 0 {
		t.Fatalf("client trust: %s", out)
	}
	if code, out := py.run("client", "install", "visit_counter", "--allow", "keys", "--registry", url,
		"--dir", pyDir, "--state-dir", pyState); code != 0 {
		t.Fatalf("client install: %s", out)
	}
	if _, err := os.Stat(filepath.Join(pyDir, LockfileName)); err != nil {
		t.Skip("the Python client in this tree does not write lockfile version 2 (registry-tool.lock.json) yet")
	}
	if rep, err := VerifyInstalled(pyDir, "", now); err != nil || len(rep.Plugins) != 1 {
		t.Fatalf("Go verify of a Python install: %v %v", rep, err)
	}

	// Go installs, Python verifies.
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
	s, err := Refresh(context.Background(), goState, url, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install("visit_counter", goDir, InstallOptions{Allow: []string{"keys"}}); err != nil {
		t.Fatal(err)
	}
	if code, out := py.run("client", "verify", "--dir", goDir, "--state-dir", pyState); code != 0 {
		t.Fatalf("Python verify of a Go install: exit %d\n%s", code, out)
	}
	goLock, _ := os.ReadFile(filepath.Join(goDir, LockfileName))
	pyLock, _ := os.ReadFile(filepath.Join(pyDir, LockfileName))
	if !bytes.Equal(bytes.ReplaceAll(goLock, []byte(url), nil), bytes.ReplaceAll(pyLock, []byte(url), nil)) {
		t.Errorf("the lockfiles differ:\n--- Go\n%s\n--- Python\n%s", goLock, pyLock)
	}

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
