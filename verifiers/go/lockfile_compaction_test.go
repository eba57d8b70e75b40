package verifier

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Compaction by bytes and the opens of the lockfile that must not block (LOCKFILE-V3.md, Changes).

// lockSizes returns the committed length of the lockfile and the length of its base line (both
// with their "\n").
func lockSizes(t *testing.T, dir string) (size, base int) {
	t.Helper()
	lines := lockLines(t, dir)
	for _, l := range lines {
		size += len(l)
	}
	return size, len(lines[0])
}

// Commits that each change most entries write change lines nearly as large as the base: counted in
// lines alone (max(64, E) of them) the file grows to E x the base and past the 64 MiB cap. The
// bytes rule bounds the change lines to max(base line, 64 KiB): the file never exceeds twice the
// base plus 64 KiB, yet small commits still append.
func TestCommitsChangingMostEntriesNeverGrowTheFilePastTwiceTheBase(t *testing.T) {
	for _, c := range []struct{ entries, changed, commits int }{
		{400, 300, 12}, // the base (~250 KB) is above 64 KiB: bounded by the base
		{10, 10, 40},   // the base (~6 KB) is below 64 KiB: bounded by 64 KiB
	} {
		t.Run(fmt.Sprintf("%d entries %d changed", c.entries, c.changed), func(t *testing.T) {
			dir := t.TempDir()
			lf := &Lockfile{Plugins: map[string]*LockEntry{}}
			for i := 0; i < c.entries; i++ {
				lf.Plugins[changedName(i)] = testEntry(changedName(i), "1.0.0")
			}
			if err := os.WriteFile(filepath.Join(dir, LockfileName), lf.Marshal(), 0o644); err != nil {
				t.Fatal(err)
			}
			root, err := openRoot(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			appends, mostChangeBytes := 0, 0
			for k := 0; k < c.commits; k++ {
				lf, err := readLockfile(root)
				if err != nil {
					t.Fatal(err)
				}
				before := maps.Clone(lf.Plugins)
				for i := 0; i < c.changed; i++ {
					x := *lf.Plugins[changedName(i)]
					x.Requested = fmt.Sprintf("=1.0.%03d", k)
					lf.Plugins[changedName(i)] = &x
				}
				if err := lf.commit(root, before); err != nil {
					t.Fatal(err)
				}
				size, base := lockSizes(t, dir)
				if size-base > max(base, 65536) || size > 2*base+65536 {
					t.Fatalf("commit %d: %d bytes with a base line of %d: change lines hold more than max(base, 64 KiB)", k, size, base)
				}
				if size > base {
					appends++
					mostChangeBytes = max(mostChangeBytes, size-base)
				}
				got := parseLock(t, dir)
				if len(got.Plugins) != c.entries || got.Plugins[changedName(0)].Requested != fmt.Sprintf("=1.0.%03d", k) {
					t.Fatalf("commit %d is not in the folded state", k)
				}
			}
			_, base := lockSizes(t, dir)
			if appends == 0 {
				t.Fatalf("no commit appended: every commit rewrote the whole file")
			}
			if base < 65536 && mostChangeBytes <= base {
				t.Fatalf("change lines never passed the base (%d bytes) although the floor is 64 KiB", base)
			}
		})
	}
}

// The exact bound: appending is allowed while change bytes (with the new line) <= max(base, 65536).
func TestNewBaseWhenChangeBytesWouldPassMaxOfBaseAnd64KiB(t *testing.T) {
	for _, c := range []struct {
		base, changes, line int64
		wantBase            bool
	}{
		{1000, 65000, 536, false}, {1000, 65000, 537, true},
		{100000, 99000, 1000, false}, {100000, 99000, 1001, true},
		{100000, 0, 100000, false}, {100000, 0, 100001, true},
	} {
		lf := &Lockfile{Plugins: map[string]*LockEntry{}, Version: LockfileVersion, ChangeLines: 1, baseLen: c.base, committed: c.base + c.changes}
		if got := lf.dueForBase(int(c.line)); got != c.wantBase {
			t.Errorf("base %d, change lines %d bytes, new line %d: new base %v, want %v", c.base, c.changes, c.line, got, c.wantBase)
		}
	}
	for _, lf := range []*Lockfile{
		{Plugins: map[string]*LockEntry{}},                             // no lockfile
		{Plugins: map[string]*LockEntry{}, Version: 2, committed: 100}, // version 2
		{Plugins: map[string]*LockEntry{}, Version: LockfileVersion, ChangeLines: 64, baseLen: 100, committed: 200},
	} {
		if !lf.dueForBase(10) {
			t.Errorf("%+v: appended; want a new base", lf)
		}
	}
}

// within runs f and fails the test if it has not returned in 20 s (an open blocked on a FIFO
// never returns; 20 s is far beyond any scheduling delay, so the test does not depend on timing).
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s blocked on a FIFO planted as the lockfile", what)
		return nil
	}
}

// A FIFO planted as the lockfile (no writer, no reader) must not block the reader nor the writer,
// which holds the writers' lock while it opens the file: each open is O_NONBLOCK and refuses what
// is not a regular file.
func TestAFIFOAsTheLockfileDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, LockfileName)
	if err := os.WriteFile(lock, []byte(baseLine(testEntry("alpha", "1.0.0"))), 0o644); err != nil {
		t.Fatal(err)
	}
	root, lf := openLockfile(t, dir)
	// Swapped in after the read: the append finds the FIFO.
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	before := maps.Clone(lf.Plugins)
	lf.Plugins["beta"] = testEntry("beta", "1.0.0")
	wantClass(t, within(t, "the append", func() error { return lf.commit(root, before) }), ClassUnsafePath)
	wantClass(t, within(t, "the read", func() error { _, err := readLockfile(root); return err }), ClassUnsafePath)
	if err := within(t, "verify", func() error { _, err := VerifyInstalled(dir, "", testNow); return err }); err == nil ||
		!strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("verify of a FIFO lockfile: %v", err)
	}
}
