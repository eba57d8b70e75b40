package verifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Plugin directory access that never follows a symbolic link below the directory: every component
// is opened relative to its parent with O_NOFOLLOW, so a link planted anywhere (even between a
// check and a use) is refused, never followed.

func unsafePath(path, why string) *Error {
	return &Error{Class: ClassUnsafePath, Where: path,
		What: fmt.Sprintf("%s: %s; refusing to follow it", path, why),
		Fix:  "remove the symbolic link or special file from the plugin directory"}
}

func fsError(path string, err error) *Error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return unsafePath(path, "a symbolic link or a non-directory is in the way")
	}
	return &Error{Class: ClassNetwork, Where: path, What: fmt.Sprintf("%s: %v", path, err), Fix: "check the plugin directory's permissions and free space"}
}

// openError is fsError for the open of a file with O_NONBLOCK: ENXIO there means a FIFO without
// a reader or a socket in the file's place, which is not a regular file.
func openError(path string, err error) *Error {
	if errors.Is(err, unix.ENXIO) {
		return unsafePath(path, "not a regular file")
	}
	return fsError(path, err)
}

// dirFD is an open directory below the plugin directory.
type dirFD struct {
	fd   int
	path string
}

func (d *dirFD) Close() { unix.Close(d.fd) }

// openRoot opens the plugin directory itself (creating it if create); the directory given by
// the host may itself be reached through links, only what is below it is guarded.
func openRoot(dir string, create bool) (*dirFD, error) {
	if err := checkPluginDir(dir); err != nil {
		return nil, err
	}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fsError(dir, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fsError(dir, err)
	}
	return &dirFD{fd: fd, path: dir}, nil
}

// sub opens (creating if create) the directory name below d without following links.
func (d *dirFD) sub(name string, create bool) (*dirFD, error) {
	path := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(d.fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fsError(path, err)
		}
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		return nil, fsError(path, err)
	}
	return &dirFD{fd: fd, path: path}, nil
}

// walk opens the directories of rel (a/b/c) below d.
func (d *dirFD) walk(rel string, create bool) (*dirFD, error) {
	cur := d
	for _, part := range strings.Split(rel, "/") {
		next, err := cur.sub(part, create)
		if cur != d {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// readFile reads a regular file below d without following a link, at most max bytes (more: tampered).
func (d *dirFD) readFile(name string, max int64) ([]byte, error) {
	path := filepath.Join(d.path, name)
	// O_NONBLOCK: a FIFO planted in the file's place must not block the open (nor the writers'
	// lock held around it); the regular-file check follows the open.
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		return nil, openError(path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fsError(path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, unsafePath(path, "not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, max+1))
}

// writeFile writes name below d atomically: a temporary file in the same directory, fsync,
// rename over the target (which must not be a link or directory).
func (d *dirFD) writeFile(name string, data []byte) error {
	path := filepath.Join(d.path, name)
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unsafePath(path, "exists and is not a regular file")
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := ".part-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fsError(path, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if werr != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return fsError(path, werr)
	}
	return unix.Fsync(d.fd)
}

// appendLine is the commit of one lockfile change: it opens the regular file name below d with
// O_WRONLY|O_APPEND|O_NOFOLLOW, cuts it back to keep bytes (the tail of a write that did not
// finish), appends data with ONE write() and fsyncs it; the fsync is the commit point. A write
// cut short leaves a tail without "\n", which readers ignore and the next writer cuts. A file
// with other hard links (st_nlink > 1) is not written and false is returned: the append would land
// in every other name of it too (a file outside the plugin directory, linked in), so the caller
// writes a new file instead.
func (d *dirFD) appendLine(name string, keep int64, data []byte) (bool, error) {
	path := filepath.Join(d.path, name)
	// O_NONBLOCK as in readFile: a FIFO without a reader fails the open (ENXIO) at once.
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false, openError(path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fsError(path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, unsafePath(path, "not a regular file")
	}
	if st.Nlink > 1 {
		return false, nil
	}
	if st.Size < keep {
		return false, &Error{Class: ClassLockfile, Where: path, What: fmt.Sprintf("%s: shorter (%d bytes) than when it was read (%d) although the writers' lock is held", path, st.Size, keep),
			Fix: "another program changes the lockfile without the lock; stop it and run the command again"}
	}
	if st.Size > keep {
		if err := unix.Ftruncate(fd, keep); err != nil {
			return false, fsError(path, err)
		}
	}
	n, err := unix.Write(fd, data)
	for errors.Is(err, unix.EINTR) && n <= 0 {
		n, err = unix.Write(fd, data)
	}
	if err == nil && n != len(data) {
		err = fmt.Errorf("wrote %d of %d bytes", n, len(data))
	}
	if err == nil {
		err = unix.Fsync(fd)
	}
	if err != nil {
		return false, fsError(path, err)
	}
	return true, nil
}

func (d *dirFD) remove(name string) { _ = unix.Unlinkat(d.fd, name, 0) }

// lock takes the writers' lock .registry-tool.lck (exclusive flock) of the plugin directory,
// waiting for another writer until ctx ends or the deadline passes: a holder that hangs is a
// busy folder (exit 2), never a wait without end.
func (d *dirFD) lock(ctx context.Context, deadline time.Time) (func(), error) {
	path := filepath.Join(d.path, ".registry-tool.lck")
	fd, err := unix.Openat(d.fd, ".registry-tool.lck", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fsError(path, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			unix.Close(fd)
			return nil, &Error{Class: ClassNetwork, Code: "plugin-dir-busy", Where: path,
				What: fmt.Sprintf("the plugin directory %s is locked by another installer for longer than this operation may wait", d.path),
				Fix:  "wait for the other install to finish and try again (a process holding " + path + " that hangs must be stopped)"}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fsError(path, err)
	}
	return func() { _ = unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// findLinks walks the whole directory without following anything and refuses the first symbolic
// link (or special file) found below it.
func (d *dirFD) findLinks() error {
	return d.scan(0, false)
}

// findLinksAndClean is findLinks that also removes the temporary files (.part-*) a writer killed
// mid-install left behind; call it holding the directory lock.
func (d *dirFD) findLinksAndClean() error {
	return d.scan(0, true)
}

func (d *dirFD) scan(depth int, clean bool) error {
	if depth > 32 {
		return unsafePath(d.path, "nested more than 32 directories deep")
	}
	dup, err := unix.Dup(d.fd)
	if err != nil {
		return fsError(d.path, err)
	}
	dir := os.NewFile(uintptr(dup), d.path)
	defer dir.Close()
	if _, err := dir.Seek(0, io.SeekStart); err != nil {
		return fsError(d.path, err)
	}
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return fsError(d.path, err)
	}
	for _, e := range entries {
		path := filepath.Join(d.path, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			return unsafePath(path, "a symbolic link")
		case e.IsDir():
			sub, err := d.sub(e.Name(), false)
			if err != nil {
				return err
			}
			err = sub.scan(depth+1, clean)
			sub.Close()
			if err != nil {
				return err
			}
		case !e.Type().IsRegular():
			return unsafePath(path, "not a regular file or directory")
		case clean && strings.HasPrefix(e.Name(), ".part-"):
			d.remove(e.Name())
		}
	}
	return nil
}

// checkPluginDir refuses an empty plugin directory path up front: the operating system would read
// it as the process's working directory, or refuse it with a bare "mkdir : no such file".
func checkPluginDir(dir string) error {
	if dir == "" {
		return &Error{Class: ClassNetwork, What: "the plugin directory path is empty",
			Fix: "pass the directory that holds (or will hold) the plugins and registry-tool.lock.json, e.g. /var/lib/myhost/plugins"}
	}
	return nil
}
