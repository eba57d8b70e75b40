//! File system operations below a plugin directory that never follow a symbolic link: every
//! component below the directory is checked with lstat, files are opened with O_NOFOLLOW (and
//! read or appended to with O_NONBLOCK, a regular file only), created with O_EXCL, and
//! replaced by rename (which replaces a name, never follows it).
//! A link anywhere below the directory is `unsafe-path`.

use crate::error::{Class, Error};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn unsafe_path(path: &Path, what: &str) -> Error {
    Error::new(
        Class::UnsafePath,
        format!(
            "unsafe path: {} {}; the verifier never follows links below the plugin directory, remove it and reinstall",
            path.display(),
            what
        ),
    )
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return unsafe_path(path, "is a symbolic link");
    }
    Error::new(Class::Network, format!("{}: {}; check the directory's permissions and free space", path.display(), e))
}

/// `dir/rel` after checking every component of `rel` below `dir` with lstat: links are
/// refused; a missing component is created as a directory when `create` (the last one only
/// when `last_is_dir`).
pub fn safe_join(dir: &Path, rel: &str, create: bool, last_is_dir: bool) -> Result<PathBuf, Error> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut path = dir.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(unsafe_path(&path.join(part), "is not a plain name"));
        }
        path.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(unsafe_path(&path, "is a symbolic link")),
            Ok(meta) if !last || last_is_dir => {
                if !meta.is_dir() {
                    return Err(unsafe_path(&path, "is not a directory"));
                }
            }
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(unsafe_path(&path, "is not a regular file"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create && (!last || last_is_dir) {
                    match fs::create_dir(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            return Err(unsafe_path(&path, "appeared while it was being created"))
                        }
                        Err(e) => return Err(io_error(&path, e)),
                    }
                }
            }
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    Ok(path)
}

/// The first symbolic link anywhere below `dir` (depth first, never following one), if any.
pub fn find_symlink(dir: &Path) -> Result<Option<PathBuf>, Error> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => return Ok(None),
            Err(e) => return Err(io_error(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&d, e))?;
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), e))?;
            if kind.is_symlink() {
                return Ok(Some(entry.path()));
            }
            if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(None)
}

/// Refuse a directory with a symbolic link anywhere below it.
pub fn refuse_symlinks(dir: &Path) -> Result<(), Error> {
    match find_symlink(dir)? {
        Some(link) => Err(unsafe_path(&link, "is a symbolic link")),
        None => Ok(()),
    }
}

/// Remove the temporary files (`.part-*`, regular files only) that a writer killed mid-install
/// left anywhere below `dir`; call it holding the directory lock, after `refuse_symlinks` (the Go
/// verifier's findLinksAndClean, the Python client's journal). A file that cannot be removed stays.
pub fn remove_part_files(dir: &Path) -> Result<(), Error> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&d, e))?;
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), e))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().starts_with(".part-") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Remove the folder `dir/rel` and everything in it (links are removed, never followed).
pub fn remove_tree_below(dir: &Path, rel: &str) -> Result<(), Error> {
    let path = safe_join(dir, rel, false, true)?;
    match fs::remove_dir_all(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&path, e)),
    }
}

enum OpenError {
    NotFound,
    Refused(Error),
}

/// Open the regular file `path` (already checked by `safe_join`) with `options` plus
/// O_NOFOLLOW | O_NONBLOCK, then check with fstat that what was opened is a regular file.
/// The name may be swapped between the lstat and the open: O_NONBLOCK keeps a FIFO planted
/// there from blocking the open (for reading it opens at once and fstat refuses it; for
/// writing with no reader it fails with ENXIO), so a command holding the writers' lock never
/// waits on it. O_NONBLOCK changes nothing for a regular file's reads and writes.
fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<File, OpenError> {
    let file = match options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OpenError::NotFound),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(OpenError::Refused(unsafe_path(path, "is not a regular file")))
        }
        Err(e) => return Err(OpenError::Refused(io_error(path, e))),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(OpenError::Refused(unsafe_path(path, "is not a regular file"))),
        Err(e) => Err(OpenError::Refused(io_error(path, e))),
    }
}

/// Read a regular file below `dir` without following links, at most `cap` bytes.
pub fn read_below(dir: &Path, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, Error> {
    let path = safe_join(dir, rel, false, false)?;
    let file = match open_regular(&path, OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(OpenError::NotFound) => return Ok(None),
        Err(OpenError::Refused(e)) => return Err(e),
    };
    let mut data = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut data).map_err(|e| io_error(&path, e))?;
    Ok(Some(data))
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Write `data` to `dir/rel` atomically: a `.part-*` file in the same directory (O_EXCL,
/// O_NOFOLLOW), fsync, rename over the name, fsync the directory.
pub fn write_atomic(dir: &Path, rel: &str, data: &[u8]) -> Result<PathBuf, Error> {
    let target = safe_join(dir, rel, true, false)?;
    let parent = target.parent().expect("below dir").to_path_buf();
    let tmp = parent.join(format!(".part-{}", unique_suffix()));
    let result = (|| -> std::io::Result<()> {
        let mut f =
            OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(0o644).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(&parent)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&target, e));
    }
    Ok(target)
}

/// Append `line` to the existing file `dir/rel` as one commit: open it O_WRONLY | O_APPEND |
/// O_NOFOLLOW | O_NONBLOCK (a regular file only), cut it back to `committed_len` when an unfinished write left bytes after that
/// (the caller read the file under the same writers' lock), write the line with ONE `write()`
/// (a reader never sees a line in pieces from us), then fsync: the commit point. A file shorter
/// than `committed_len` changed behind the lock and is refused; a short write is cut back off.
/// A file with other hard links (st_nlink > 1) is not written (`Ok(false)`): the write would land
/// in every other name of it too (a file outside the plugin directory, linked in), so the caller
/// writes a new file instead.
pub fn append_committed(dir: &Path, rel: &str, committed_len: u64, line: &[u8]) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    let path = safe_join(dir, rel, false, false)?;
    // append(true) opens O_WRONLY | O_APPEND
    let file = match open_regular(&path, OpenOptions::new().append(true)) {
        Ok(f) => f,
        Err(OpenError::NotFound) => return Err(io_error(&path, std::io::Error::from(std::io::ErrorKind::NotFound))),
        Err(OpenError::Refused(e)) => return Err(e),
    };
    let meta = file.metadata().map_err(|e| io_error(&path, e))?;
    if meta.nlink() > 1 {
        return Ok(false);
    }
    if meta.len() < committed_len {
        return Err(Error::new(
            Class::Lockfile,
            format!(
                "{} became shorter ({} bytes, {} read) while the writers' lock was held; another program writes it without the lock: stop it and retry",
                path.display(),
                meta.len(),
                committed_len
            ),
        ));
    }
    if meta.len() > committed_len {
        file.set_len(committed_len).map_err(|e| io_error(&path, e))?;
    }
    // SAFETY: write(2) from a live slice on a descriptor we own.
    let written = unsafe { libc::write(file.as_raw_fd(), line.as_ptr() as *const libc::c_void, line.len()) };
    if written < 0 || written as usize != line.len() {
        let err = if written < 0 {
            std::io::Error::last_os_error()
        } else {
            std::io::Error::new(std::io::ErrorKind::WriteZero, format!("wrote {} of {} bytes", written, line.len()))
        };
        let _ = file.set_len(committed_len);
        return Err(io_error(&path, err));
    }
    file.sync_all().map_err(|e| io_error(&path, e))?;
    Ok(true)
}

/// Remove `dir/rel` (a file) if it is there and is not reached through a link.
pub fn remove_below(dir: &Path, rel: &str) -> Result<(), Error> {
    let path = safe_join(dir, rel, false, false)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(&path, e)),
    }
}

/// An exclusive flock on `<dir>/.registry-tool.lck`, released on drop.
pub struct DirLock {
    _file: File,
}

pub const LOCK_FILE: &str = ".registry-tool.lck";

/// How long `DirLock::acquire` waits for another holder (as the Python client does).
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl DirLock {
    /// The lock, waiting for another holder at most `LOCK_WAIT`.
    pub fn acquire(dir: &Path) -> Result<DirLock, Error> {
        DirLock::acquire_until(dir, std::time::Instant::now() + LOCK_WAIT)
    }

    /// The lock, waiting for another holder until `deadline`: a holder that hangs makes the
    /// folder busy (exit 2), never a wait without end.
    pub fn acquire_until(dir: &Path, deadline: std::time::Instant) -> Result<DirLock, Error> {
        let path = safe_join(dir, LOCK_FILE, false, false)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        use std::os::unix::io::AsRawFd;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is shared.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(DirLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EWOULDBLOCK) | Some(libc::EINTR)) {
                return Err(io_error(&path, err));
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::new(
                    Class::Network,
                    format!(
                        "{} is locked by another installer for longer than this operation may wait; wait for it \
                         to finish and try again (a process holding {} that hangs must be stopped)",
                        dir.display(),
                        path.display()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_by_another_holder_is_waited_for_until_the_deadline() {
        // A holder that hangs made install wait without end.
        let d = tempdir("busy");
        let held = DirLock::acquire(&d).unwrap();
        let start = std::time::Instant::now();
        let waited = std::time::Duration::from_millis(200);
        let err = DirLock::acquire_until(&d, start + waited).err().expect("busy");
        assert!(err.to_string().contains("locked by another installer"), "{}", err);
        assert!(start.elapsed() >= waited);
        drop(held);
        DirLock::acquire_until(&d, std::time::Instant::now()).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rv-fsx-{}-{}", tag, unique_suffix()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_link_below_the_directory_is_never_followed() {
        let dir = tempdir("link");
        let outside = tempdir("outside");
        std::os::unix::fs::symlink(&outside, dir.join("plugin")).unwrap();
        let err = write_atomic(&dir, "plugin/1.0.0/x.wasm", b"x").unwrap_err();
        assert_eq!(err.class, Class::UnsafePath);
        assert!(fs::read_dir(&outside).unwrap().next().is_none(), "nothing was written outside");
        assert_eq!(read_below(&dir, "plugin/1.0.0/x.wasm", 10).unwrap_err().class, Class::UnsafePath);
        fs::create_dir_all(dir.join("p2/1.0.0")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), dir.join("p2/1.0.0/f.wasm")).unwrap();
        assert_eq!(read_below(&dir, "p2/1.0.0/f.wasm", 10).unwrap_err().class, Class::UnsafePath);
        assert_eq!(write_atomic(&dir, "p2/1.0.0/f.wasm", b"x").unwrap_err().class, Class::UnsafePath);
    }

    #[test]
    fn an_append_cuts_an_unfinished_tail_first_then_adds_the_line() {
        let dir = tempdir("append");
        fs::write(dir.join("lock"), b"base\n{\"torn").unwrap();
        append_committed(&dir, "lock", 5, b"line\n").unwrap();
        assert_eq!(fs::read(dir.join("lock")).unwrap(), b"base\nline\n");
        append_committed(&dir, "lock", 10, b"next\n").unwrap();
        assert_eq!(fs::read(dir.join("lock")).unwrap(), b"base\nline\nnext\n");
        // shorter than what was read under the lock: someone writes without it
        let err = append_committed(&dir, "lock", 100, b"x\n").unwrap_err();
        assert_eq!(err.class, Class::Lockfile);
        assert_eq!(fs::read(dir.join("lock")).unwrap(), b"base\nline\nnext\n");
        assert_eq!(append_committed(&dir, "missing", 0, b"x\n").unwrap_err().class, Class::Network);
    }

    #[test]
    fn an_append_never_follows_a_link() {
        let dir = tempdir("append-link");
        let outside = tempdir("append-outside");
        fs::write(outside.join("lock"), b"base\n").unwrap();
        std::os::unix::fs::symlink(outside.join("lock"), dir.join("lock")).unwrap();
        assert_eq!(append_committed(&dir, "lock", 5, b"line\n").unwrap_err().class, Class::UnsafePath);
        assert_eq!(fs::read(outside.join("lock")).unwrap(), b"base\n");
    }

    /// What opening `path` with `options` gives, on a helper thread: an open still blocked
    /// after 20 s fails the test (a FIFO opened without O_NONBLOCK waits for its other end;
    /// the FIFO is then opened read-write, which releases the helper).
    fn open_class(path: &Path, options: fn() -> OpenOptions) -> Result<(), Class> {
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            let got = match open_regular(&p, &mut options()) {
                Ok(_) => Ok(()),
                Err(OpenError::NotFound) => Err(Class::Network),
                Err(OpenError::Refused(e)) => Err(e.class),
            };
            let _ = tx.send(got);
        });
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(got) => got,
            Err(_) => {
                let _ = OpenOptions::new().read(true).write(true).open(path);
                panic!("opening {} blocked for 20 s", path.display());
            }
        }
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
    }

    #[test]
    fn a_fifo_planted_as_the_lockfile_is_refused_without_blocking_the_open() {
        let dir = tempdir("fifo");
        let fifo = dir.join("lock");
        mkfifo(&fifo);
        let read = || {
            let mut o = OpenOptions::new();
            o.read(true);
            o
        };
        let append = || {
            let mut o = OpenOptions::new();
            o.append(true);
            o
        };
        // no other end: the read opens at once and fstat refuses it; the append fails (ENXIO)
        assert_eq!(open_class(&fifo, read), Err(Class::UnsafePath));
        assert_eq!(open_class(&fifo, append), Err(Class::UnsafePath));
        // a reader holds the other end: the append opens, and fstat refuses it
        let _reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        assert_eq!(open_class(&fifo, append), Err(Class::UnsafePath));
        // the public entry points refuse it too, and a regular file still opens both ways
        assert_eq!(read_below(&dir, "lock", 10).unwrap_err().class, Class::UnsafePath);
        assert_eq!(append_committed(&dir, "lock", 0, b"x\n").unwrap_err().class, Class::UnsafePath);
        fs::write(dir.join("plain"), b"base\n").unwrap();
        assert_eq!(open_class(&dir.join("plain"), read), Ok(()));
        assert_eq!(open_class(&dir.join("plain"), append), Ok(()));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_part_files() {
        let dir = tempdir("write");
        write_atomic(&dir, "a/1.0.0/f", b"one").unwrap();
        write_atomic(&dir, "a/1.0.0/f", b"two").unwrap();
        assert_eq!(read_below(&dir, "a/1.0.0/f", 10).unwrap().unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.join("a/1.0.0")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        assert_eq!(safe_join(&dir, "a/../x", false, false).unwrap_err().class, Class::UnsafePath);
    }

    #[test]
    fn part_files_a_killed_install_left_are_removed_and_nothing_else() {
        let dir = tempdir("parts");
        fs::create_dir_all(dir.join("a/1.0.0")).unwrap();
        for name in ["a/1.0.0/.part-123-9", "a/.part-x", "a/1.0.0/f", "a/1.0.0/.partial", "a/1.0.0/part-1"] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        fs::create_dir_all(dir.join("a/.part-dir")).unwrap(); // a folder by that name is no temp file
        remove_part_files(&dir).unwrap();
        let mut left: Vec<String> = Vec::new();
        for sub in ["a", "a/1.0.0"] {
            for e in fs::read_dir(dir.join(sub)).unwrap() {
                left.push(format!("{}/{}", sub, e.unwrap().file_name().to_string_lossy()));
            }
        }
        left.sort();
        assert_eq!(left, ["a/.part-dir", "a/1.0.0", "a/1.0.0/.partial", "a/1.0.0/f", "a/1.0.0/part-1"]);
    }
}
