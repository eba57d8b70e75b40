//! An install that resolved before another process committed is resolved again under the
//! lock, never committed on the lockfile it read first. Its own test binary: the hook it sets
//! is global.

mod sitegen;

use registry_verifier::client::AFTER_LOCKFILE_READ;
use registry_verifier::{names, read_lockfile, verify_installed, FileTransport, InstallOptions, Verifier};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn verifier(site: &Path, state: &Path) -> Verifier {
    Verifier::new(&format!("file://{}/", site.display()), state, Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap())
}

fn install(site: &Path, state: &Path, spec: &str, dir: &Path) {
    let v = verifier(site, state);
    let session = v.refresh().unwrap();
    session.install(spec, dir, &InstallOptions::default()).unwrap();
    session.commit().unwrap();
}

/// The next lockfile read is followed by another process installing `spec`.
fn install_after_the_next_read(site: &Path, state: &Path, spec: &str, dir: &Path) {
    let (site, state, spec, dir): (PathBuf, PathBuf, String, PathBuf) =
        (site.into(), state.into(), spec.into(), dir.into());
    *AFTER_LOCKFILE_READ.lock().unwrap() = Some(Box::new(move || install(&site, &state, &spec, &dir)));
}

#[test]
fn an_install_planned_before_another_committed_is_planned_again() {
    // Another process pins plugin-00001@1.0.0 while this one resolves plugin-00000, which needs
    // plugin-00001 ^1.0: the plan made on the empty folder (1.0.2) must not replace the pin.
    let work = std::env::temp_dir().join(format!("rv-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let (site, state, dir) = (work.join("site"), work.join("state"), work.join("plugins"));
    sitegen::generate(&site, 2, 3, &[(0, 1, "^1.0")]);
    verifier(&site, &state).pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    install_after_the_next_read(&site, &state, "plugin-00001@1.0.0", &dir);
    install(&site, &state, "plugin-00000", &dir);
    assert!(AFTER_LOCKFILE_READ.lock().unwrap().is_none(), "the other install ran");
    let lock = read_lockfile(&dir).unwrap().unwrap();
    let pinned = &lock.plugins["plugin-00001"];
    assert_eq!((pinned.version.as_str(), pinned.requested.as_str()), ("1.0.0", "1.0.0"));
    assert_eq!(lock.plugins["plugin-00000"].version, "1.0.2");
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&work);
}
