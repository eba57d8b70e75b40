package verifier

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// TestConformanceSuite runs the whole language-neutral conformance suite (conformance/run.py,
// standard-library Python) against this module's runner binary: every case must pass.
func TestConformanceSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite takes about half a minute")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	python := filepath.Join(repo, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Fatal("python3 is needed to run conformance/run.py")
		}
	}
	bin := filepath.Join(t.TempDir(), "registry-verifier")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go") // the toolchain running this test
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/registry-verifier")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	suite := repo
	if other := os.Getenv("REGISTRY_TOOL_PYTHON_TREE"); other != "" {
		suite = other // another checkout's suite (interop_test.go)
	}
	run := exec.Command(python, filepath.Join(suite, "conformance", "run.py"), "-j", "2", "--", bin)
	run.Dir = suite
	out, err := run.CombinedOutput()
	summary := regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`).FindSubmatch(out)
	if err != nil || summary == nil || string(summary[2]) != "0" || string(summary[1]) == "0" {
		t.Fatalf("conformance suite: %v\n%s", err, out)
	}
	t.Logf("conformance: %s", summary[0])
}
