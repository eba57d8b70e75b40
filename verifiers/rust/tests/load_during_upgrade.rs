//! A host loading while another process commits an upgrade is not told of tampering: the old
//! release folder goes once the lockfile names the new one, so a reader that read the old
//! lockfile checks once more on the new one. Its own test binary: the hook it sets is global.

mod sitegen;

use registry_verifier::client::AFTER_LOCKFILE_READ;
use registry_verifier::{load_plugin, names, read_lockfile, verify_installed, FileTransport, InstallOptions, Verifier};
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

/// The next reader's lockfile read is followed by another process installing `spec`.
fn upgrade_after_the_next_read(site: &Path, state: &Path, spec: &str, dir: &Path) {
    let (site, state, spec, dir): (PathBuf, PathBuf, String, PathBuf) =
        (site.into(), state.into(), spec.into(), dir.into());
    *AFTER_LOCKFILE_READ.lock().unwrap() = Some(Box::new(move || install(&site, &state, &spec, &dir)));
}

#[test]
fn loading_while_another_process_commits_an_upgrade_is_not_tampering() {
    let work = std::env::temp_dir().join(format!("rv-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let (site, state, dir) = (work.join("site"), work.join("state"), work.join("plugins"));
    sitegen::generate(&site, 1, 3, &[]);
    verifier(&site, &state).pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
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
