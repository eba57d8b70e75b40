package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	verifier "github.com/registry-tool/registry-tool/verifiers/go"
)

// The example host against the sample registry built by the Python tool (registry-tool build of
// index/ with the sample keys), served on 127.0.0.1.

const repo = "../../../.."

func buildSampleSite(t *testing.T) string {
	t.Helper()
	python, err := filepath.Abs(filepath.Join(repo, ".venv", "bin", "python"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(python); err != nil {
		t.Skip("the Python tool is not set up (run `make setup` in the repository); it builds the sample registry")
	}
	site := filepath.Join(t.TempDir(), "site")
	cmd := exec.Command(python, "-m", "registry_tool", "build", "index", "--out", site,
		"--key", "samples/keys/index.key", "--no-smoke", "--no-cache")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("registry-tool build: %v\n%s", err, out)
	}
	return site
}

func TestHostRunsAVerifiedSamplePlugin(t *testing.T) {
	site := buildSampleSite(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	defer srv.Close()
	cfg := Config{URL: srv.URL + "/", RootFile: filepath.Join(repo, "index/root/1.root.json"), State: t.TempDir(),
		Dir: t.TempDir(), HostVersion: "0.3.1", Now: time.Now().UTC(), DefaultMemory: 16 << 20, DefaultWallTime: 2 * time.Second,
		KV: map[string]string{"visits:home": "41"}}

	// A plugin without the permission it declares is not installed at all.
	cfg.Spec, cfg.Call, cfg.Input = "visit_counter@^1.0", "next_visit", "visits:home"
	_, err := Run(context.Background(), cfg)
	if err == nil || verifier.AsError(err).Class != verifier.ClassPermissionRequired {
		t.Fatalf("visit_counter without keys: %v", err)
	}

	cfg.Allow = []string{"keys"}
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, "= 42") {
		t.Fatalf("next_visit: %s", out)
	}

	cfg.Spec, cfg.Call, cfg.Input, cfg.Allow = "adler32", "adler32", "Wikipedia", nil
	if out, err = Run(context.Background(), cfg); err != nil || !strings.HasSuffix(out, "= 300286872") {
		t.Fatalf("adler32: %s %v", out, err)
	}

	// Load time refuses a module changed after install.
	wasm := filepath.Join(cfg.Dir, "adler32/1.0.0/adler32.wasm")
	b, _ := os.ReadFile(wasm)
	_ = os.WriteFile(wasm, append(b, 0), 0o644)
	if _, err := verifier.LoadInstalled(cfg.Dir, cfg.State, "adler32", cfg.Now); verifier.AsError(err).Class != verifier.ClassInstalledTampered {
		t.Fatalf("tampered module loaded: %v", err)
	}
}

func TestHostEnforcesTheDeclaredMemoryLimit(t *testing.T) {
	site := buildSampleSite(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	defer srv.Close()
	cfg := Config{URL: srv.URL + "/", RootFile: filepath.Join(repo, "index/root/1.root.json"), State: t.TempDir(),
		Dir: t.TempDir(), HostVersion: "0.3.1", Now: time.Now().UTC(), DefaultMemory: 16 << 20, DefaultWallTime: 2 * time.Second,
		Spec: "adler32", Call: "adler32"}
	// adler32 declares memory = "1MiB" and grows its memory in alloc: 512 KiB of input fits, 2 MiB
	// cannot (memory.grow fails at the limit, alloc returns 0, the write is out of bounds).
	cfg.Input = strings.Repeat("x", 512<<10)
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("512 KiB input: %v", err)
	}
	cfg.Input = strings.Repeat("x", 2<<20)
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatal("a 2 MiB input ran inside a plugin limited to 1 MiB")
	}
}
