//! Library-level behaviours the conformance suite does not cover: dependencies and
//! `required_by`, the verified metadata cache, reuse of intact installed files, and
//! `load_plugin`. Sites come from tests/sitegen (signed format-2 sites, served over file://).

mod sitegen;

use registry_verifier::lockfile::DEPENDENCY_ONLY;
use registry_verifier::{load_plugin, names, read_lockfile, Class, FileTransport, InstallOptions, Verifier};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rv-client-{}-{}", tag, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.canonicalize().unwrap()
}

/// A pinned verifier over a fresh 3-plugin x 2-version site.
fn setup(tag: &str, dependencies: &[(usize, usize, &str)]) -> (PathBuf, Verifier) {
    let work = tempdir(tag);
    let site = work.join("site");
    sitegen::generate(&site, 3, 2, dependencies);
    let v = Verifier::new(&format!("file://{}/", site.display()), &work.join("state"), Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap());
    v.pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    (work, v)
}

fn install(v: &Verifier, spec: &str, dir: &Path) -> registry_verifier::Result<Vec<registry_verifier::lockfile::Entry>> {
    let session = v.refresh()?;
    let entries = session.install(spec, dir, &InstallOptions::default())?;
    session.commit()?;
    Ok(entries)
}

#[test]
fn dependencies_are_installed_and_record_who_requires_them() {
    let (work, v) = setup("deps", &[(0, 1, "^1.0")]);
    let dir = work.join("plugins");
    let entries = install(&v, "plugin-00000@^1.0", &dir).unwrap();
    assert_eq!(entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["plugin-00000", "plugin-00001"]);
    let lock = read_lockfile(&dir).unwrap().unwrap();
    let dep = &lock.plugins["plugin-00001"];
    assert_eq!((dep.version.as_str(), dep.requested.as_str()), ("1.0.1", DEPENDENCY_ONLY));
    assert_eq!(dep.required_by, vec!["plugin-00000".to_string()]);
    assert_eq!(lock.plugins["plugin-00000"].dependencies["plugin-00001"], "^1.0");
    assert_eq!(lock.plugins["plugin-00000"].requested, "^1.0");
    assert_eq!(registry_verifier::verify_installed(&dir, Some(&work.join("state"))).unwrap().len(), 2);
}

#[test]
fn an_explicit_install_promotes_a_former_dependency() {
    let (work, v) = setup("promote", &[(0, 1, "^1.0")]);
    let dir = work.join("plugins");
    install(&v, "plugin-00000", &dir).unwrap();
    assert_eq!(read_lockfile(&dir).unwrap().unwrap().plugins["plugin-00001"].requested, DEPENDENCY_ONLY);
    // Same version (1.0.1 is the highest), so only the recorded requirement changes.
    install(&v, "plugin-00001", &dir).unwrap();
    let lock = read_lockfile(&dir).unwrap().unwrap();
    let promoted = &lock.plugins["plugin-00001"];
    assert_eq!((promoted.version.as_str(), promoted.requested.as_str()), ("1.0.1", ""));
    assert_eq!(promoted.required_by, vec!["plugin-00000".to_string()]);
}

#[test]
fn a_conflicting_dependency_is_refused_before_anything_is_written() {
    // plugin-00002 needs plugin-00001 exactly 1.0.0 and plugin-00000, which needs >=1.0.1 of it
    let (work, v) = setup("conflict", &[(2, 1, "1.0.0"), (2, 0, "^1.0"), (0, 1, ">=1.0.1")]);
    let dir = work.join("plugins");
    let err = install(&v, "plugin-00002", &dir).unwrap_err();
    assert_eq!(err.class, Class::DependencyConflict, "{}", err);
    assert!(!dir.exists(), "nothing was written");
}

#[test]
fn a_tampered_cache_entry_is_never_used() {
    let (work, v) = setup("cache", &[]);
    let dir = work.join("plugins");
    install(&v, "plugin-00002", &dir).unwrap();
    let cache = work.join("state/cache");
    let cached: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(cached.len() >= 2, "tree node(s) and the plugin document are cached");
    for f in &cached {
        std::fs::write(f, b"{\"_type\": \"registry-node\"}").unwrap();
    }
    // every cached document fails its re-hash: fetched again, and the install still succeeds
    let entries = install(&v, "plugin-00002", &dir).unwrap();
    assert_eq!(entries[0].version, "1.0.1");
    for f in &cached {
        let data = std::fs::read(f).unwrap();
        assert_eq!(names::sha256_hex(&data), f.file_name().unwrap().to_str().unwrap(), "the cache was repaired");
    }
}

#[test]
fn an_unchanged_reinstall_uses_the_installed_files_but_only_intact_ones() {
    let (work, v) = setup("reuse", &[]);
    let dir = work.join("plugins");
    install(&v, "plugin-00001", &dir).unwrap();
    let served = work.join("site/plugins/plugin-00001/1.0.1/plugin-00001.wasm");
    let original = std::fs::read(&served).unwrap();
    std::fs::remove_file(&served).unwrap();
    // the registry no longer serves the module: the intact installed copy is verified instead
    install(&v, "plugin-00001", &dir).unwrap();
    // an installed copy that no longer matches is not reused: the module must be fetched
    let installed = dir.join("plugin-00001/1.0.1/plugin-00001.wasm");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&installed, &bytes).unwrap();
    assert_eq!(install(&v, "plugin-00001", &dir).unwrap_err().class, Class::Network);
    std::fs::write(&served, &original).unwrap();
    install(&v, "plugin-00001", &dir).unwrap();
    assert_eq!(std::fs::read(&installed).unwrap(), original);
}

#[test]
fn load_plugin_returns_verified_bytes_and_refuses_tampered_ones() {
    let (work, v) = setup("load", &[]);
    let dir = work.join("plugins");
    let state = work.join("state");
    install(&v, "plugin-00000@1.0.0", &dir).unwrap();
    let loaded = load_plugin(&dir, Some(&state), "plugin-00000").unwrap();
    assert_eq!(names::sha256_hex(&loaded.wasm), loaded.entry.wasm_sha256);
    assert_eq!(loaded.facts.exports, vec!["run".to_string()]);
    assert_eq!(load_plugin(&dir, Some(&state), "plugin-00002").unwrap_err().class, Class::NotFound);
    let wasm = dir.join("plugin-00000/1.0.0/plugin-00000.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.push(0);
    std::fs::write(&wasm, &bytes).unwrap();
    assert_eq!(load_plugin(&dir, Some(&state), "plugin-00000").unwrap_err().class, Class::InstalledTampered);
}
