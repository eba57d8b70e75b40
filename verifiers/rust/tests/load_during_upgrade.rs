//! A host loading while another process commits an upgrade is not told of tampering: the old
//! release folder goes once the lockfile names the new one, so a reader that read the old
//! lockfile checks once more on the new one; an install that resolved before another process
//! committed resolves again under the lock. Its own test binary: the hook it sets is global
//! (and its tests take turns).

mod sitegen;

use registry_verifier::client::AFTER_LOCKFILE_READ;
use registry_verifier::{load_plugin, names, read_lockfile, verify_installed, FileTransport, InstallOptions, Verifier};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The hook is one for the process: the tests of this binary take turns.
static TURN: Mutex<()> = Mutex::new(());

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

/// The next reader's lockfile read is followed by another process installing `spec`.
fn upgrade_after_the_next_read(site: &Path, state: &Path, spec: &str, dir: &Path) {
    let (site, state, spec, dir): (PathBuf, PathBuf, String, PathBuf) =
        (site.into(), state.into(), spec.into(), dir.into());
    *AFTER_LOCKFILE_READ.lock().unwrap() = Some(Box::new(move || install(&site, &state, &spec, &dir)));
}

/// A fresh work folder with a site of `plugins` x 3 releases, its root pinned: (work, site,
/// state, plugin folder).
fn pinned_site(tag: &str, plugins: usize, deps: &[(usize, usize, &str)]) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let work = std::env::temp_dir().join(format!("rv-{}-{}", tag, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let (site, state, dir) = (work.join("site"), work.join("state"), work.join("plugins"));
    sitegen::generate(&site, plugins, 3, deps);
    verifier(&site, &state).pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    (work, site, state, dir)
}

#[test]
fn loading_while_another_process_commits_an_upgrade_is_not_tampering() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (work, site, state, dir) = pinned_site("upgrade", 1, &[]);
    install(&site, &state, "plugin-00000@1.0.0", &dir);

    upgrade_after_the_next_read(&site, &state, "plugin-00000@1.0.1", &dir);
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap(), vec!["plugin-00000".to_string()]);
    assert!(AFTER_LOCKFILE_READ.lock().unwrap().is_none(), "the upgrade ran");
    assert!(!dir.join("plugin-00000/1.0.0").exists(), "the old release folder is gone");

    upgrade_after_the_next_read(&site, &state, "plugin-00000@1.0.2", &dir);
    let loaded = load_plugin(&dir, Some(&state), "plugin-00000").unwrap();
    assert_eq!(loaded.entry.version, "1.0.2");
    assert_eq!(read_lockfile(&dir).unwrap().unwrap().plugins["plugin-00000"].version, "1.0.2");
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn an_install_planned_before_another_committed_is_planned_again() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    // Another process pins plugin-00001@1.0.0 while this one resolves plugin-00000, which needs
    // plugin-00001 ^1.0: the plan made on the empty folder (1.0.2) must not replace the pin.
    let (work, site, state, dir) = pinned_site("race", 2, &[(0, 1, "^1.0")]);
    std::fs::create_dir_all(&dir).unwrap();
    upgrade_after_the_next_read(&site, &state, "plugin-00001@1.0.0", &dir);
    install(&site, &state, "plugin-00000", &dir);
    assert!(AFTER_LOCKFILE_READ.lock().unwrap().is_none(), "the other install ran");
    let lock = read_lockfile(&dir).unwrap().unwrap();
    let pinned = &lock.plugins["plugin-00001"];
    assert_eq!((pinned.version.as_str(), pinned.requested.as_str()), ("1.0.0", "1.0.0"));
    assert_eq!(lock.plugins["plugin-00000"].version, "1.0.2");
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&work);
}
