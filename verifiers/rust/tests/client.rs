//! Library-level behaviours the conformance suite does not cover: dependencies and
//! `required_by`, the verified metadata cache, reuse of intact installed files, and
//! `load_plugin`, the pinned root judging every installed entry whatever its `registry` says,
//! and the permissions of installed plugins being no grant. Sites come from tests/sitegen
//! (signed format-2 sites, served over file://).

mod sitegen;

use registry_verifier::lockfile::{Entry, DEPENDENCY_ONLY, LOCKFILE};
use registry_verifier::{
    load_plugin, names, read_lockfile, verify_installed, Class, FileTransport, InstallOptions, TrustState, Verifier,
};
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
    setup_with_permissions(tag, dependencies, &[])
}

/// As `setup`, plugin number `p` declaring the permissions `(p, names)` lists.
fn setup_with_permissions(
    tag: &str,
    dependencies: &[(usize, usize, &str)],
    permissions: &[(usize, &[&str])],
) -> (PathBuf, Verifier) {
    let work = tempdir(tag);
    let site = work.join("site");
    sitegen::generate_with_permissions(&site, 3, 2, dependencies, permissions);
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

/// Rewrite the lockfile of `dir` as one base line, `name`'s entry changed by `change` (a hostile
/// writer's whole new state).
fn rewrite_entry(dir: &Path, name: &str, change: impl FnOnce(&mut Entry)) {
    let mut lock = read_lockfile(dir).unwrap().unwrap();
    change(lock.plugins.get_mut(name).unwrap());
    std::fs::write(dir.join(LOCKFILE), lock.base_line()).unwrap();
}

#[test]
fn an_entry_with_a_rewritten_registry_is_judged_by_the_pinned_root() {
    // The Python client judged such an entry by the trusted root of the registry it names, and
    // found none: only digests were checked. Here the one pinned root judges every entry.
    let (work, v) = setup("other-registry", &[]);
    let dir = work.join("plugins");
    let state = work.join("state");
    install(&v, "plugin-00000@1.0.0", &dir).unwrap();
    for other in ["https://elsewhere.example/", "file:///nonexistent/"] {
        rewrite_entry(&dir, "plugin-00000", |e| e.registry = other.to_string());
        // intact, maintainer-signed files still verify
        assert_eq!(verify_installed(&dir, Some(&state)).unwrap(), vec!["plugin-00000".to_string()]);
    }
    // the manifest rewritten (its stored signature no longer matches) and the lockfile made to agree
    let manifest = dir.join("plugin-00000/1.0.0/plugin.toml");
    let mut forged = std::fs::read(&manifest).unwrap();
    forged.extend_from_slice(b"\n# rewritten\n");
    std::fs::write(&manifest, &forged).unwrap();
    rewrite_entry(&dir, "plugin-00000", |e| {
        e.manifest_sha256 = names::sha256_hex(&forged);
        e.manifest_size = forged.len() as u64;
    });
    assert_eq!(read_lockfile(&dir).unwrap().unwrap().plugins["plugin-00000"].registry, "file:///nonexistent/");
    let err = verify_installed(&dir, Some(&state)).unwrap_err();
    assert_eq!(err.class, Class::InstalledTampered, "{}", err);
    let err = load_plugin(&dir, Some(&state), "plugin-00000").unwrap_err();
    assert_eq!(err.class, Class::InstalledTampered, "{}", err);
    // The refusal says the pinned root may be older than the root that delegated the signer
    // (pinned, never refreshed and committed) and how to tell, keeping the rule's code.
    for err in [
        verify_installed(&dir, Some(&state)).unwrap_err(),
        load_plugin(&dir, Some(&state), "plugin-00000").unwrap_err(),
    ] {
        assert!(err.message.contains("pinned root (version 1)"), "{}", err);
        assert!(err.message.contains("older than the root that delegated this signer"), "{}", err);
        assert!(err.message.contains("Session::commit"), "{}", err);
        assert!(err.trust.is_some(), "{}", err);
    }
}

#[test]
fn the_permissions_of_installed_plugins_are_no_grant() {
    // Every release of the graph is verified with the same allow set (conformance decision 16.5),
    // the installed ones kept too: what a lockfile entry records, or was granted to a same-named
    // plugin of another registry, never stands in for the host's grant.
    let (work, v) = setup_with_permissions("no-grant", &[(0, 1, "^1.0")], &[(1, &["keys"])]);
    let dir = work.join("plugins");
    let install_allowing = |spec: &str, allow: &[&str]| {
        let session = v.refresh()?;
        let opts = InstallOptions { allow: allow.iter().map(|p| p.to_string()).collect(), ..InstallOptions::default() };
        let entries = session.install(spec, &dir, &opts)?;
        session.commit()?;
        Ok::<_, registry_verifier::Error>(entries)
    };
    let err = install_allowing("plugin-00000", &[]).unwrap_err();
    assert_eq!(err.class, Class::PermissionRequired, "{}", err);
    assert!(!dir.join(LOCKFILE).exists(), "nothing was written");
    let entries = install_allowing("plugin-00000", &["keys"]).unwrap();
    assert_eq!(entries[1].permissions, vec!["keys".to_string()]);
    // the dependency is installed at the version the graph keeps: still not granted without allow
    let err = install_allowing("plugin-00000", &[]).unwrap_err();
    assert_eq!(err.class, Class::PermissionRequired, "{}", err);
    // nor when its entry names another registry
    rewrite_entry(&dir, "plugin-00001", |e| e.registry = "https://elsewhere.example/".to_string());
    let rewritten = std::fs::read(dir.join(LOCKFILE)).unwrap();
    let err = install_allowing("plugin-00001", &[]).unwrap_err();
    assert_eq!(err.class, Class::PermissionRequired, "{}", err);
    assert_eq!(std::fs::read(dir.join(LOCKFILE)).unwrap(), rewritten, "the lockfile is unchanged");
}

#[test]
fn lockfile_facts_that_differ_from_the_signed_manifest_are_tampering() {
    // Hosts read abi, permissions and dependencies from the lockfile, which nobody signs: an entry
    // whose copies differ from the signed manifest's is tampering although every file still
    // matches (conformance/README.md, decision 15). Permissions compare as a set, dependencies
    // as a map; what the manifest does not hold (requested, required_by) is not compared.
    let (work, v) = setup_with_permissions("lock-facts", &[(0, 1, "^1.0")], &[(0, &["keys", "network"])]);
    let dir = work.join("plugins");
    let state = work.join("state");
    let session = v.refresh().unwrap();
    let opts = InstallOptions {
        allow: ["keys", "network"].iter().map(|p| p.to_string()).collect(),
        ..InstallOptions::default()
    };
    session.install("plugin-00000", &dir, &opts).unwrap();
    session.commit().unwrap();
    let original = std::fs::read(dir.join(LOCKFILE)).unwrap();
    let restore = || std::fs::write(dir.join(LOCKFILE), &original).unwrap();
    let strings = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let refused: Vec<(&str, Box<dyn Fn(&mut Entry)>)> = vec![
        ("a permission removed", Box::new(|e| e.permissions = strings(&["keys"]))),
        ("a permission added", Box::new(|e| e.permissions = strings(&["extism_user", "keys", "network"]))),
        ("a permission swapped", Box::new(|e| e.permissions = strings(&["extism_user", "keys"]))),
        ("another abi", Box::new(|e| e.abi = "component".to_string())),
        (
            "a dependency added",
            Box::new(|e| {
                e.dependencies.insert("plugin-00002".to_string(), "^1.0".to_string());
            }),
        ),
        ("a dependency removed", Box::new(|e| e.dependencies.clear())),
        (
            "another dependency range",
            Box::new(|e| {
                e.dependencies.insert("plugin-00001".to_string(), "^1.0.1".to_string());
            }),
        ),
    ];
    for (what, change) in &refused {
        restore();
        rewrite_entry(&dir, "plugin-00000", |e| change(e));
        for state in [Some(state.as_path()), None] {
            let err = verify_installed(&dir, state).unwrap_err();
            assert_eq!(err.class, Class::InstalledTampered, "{}: {}", what, err);
            let err = load_plugin(&dir, state, "plugin-00000").unwrap_err();
            assert_eq!(err.class, Class::InstalledTampered, "{}: {}", what, err);
        }
    }
    let accepted: Vec<(&str, Box<dyn Fn(&mut Entry)>)> = vec![
        ("requested changed", Box::new(|e| e.requested = "^1.0".to_string())),
        ("permissions reordered", Box::new(|e| e.permissions = strings(&["network", "keys"]))),
        ("required_by another", Box::new(|e| e.required_by = strings(&["plugin-00001"]))),
    ];
    for (what, change) in &accepted {
        restore();
        rewrite_entry(&dir, "plugin-00000", |e| change(e));
        let verified = verify_installed(&dir, Some(&state));
        assert_eq!(verified.map_err(|e| e.to_string()).unwrap().len(), 2, "{}", what);
        load_plugin(&dir, Some(&state), "plugin-00000").unwrap_or_else(|err| panic!("{}: {}", what, err));
    }
}

#[test]
fn a_state_directory_without_a_pinned_root_is_not_pinned_never_digests_only() {
    // A mistyped state path, a damaged trust state or another client's state directory: the
    // signatures cannot be checked, so loading is refused (a plugin rewritten together with its
    // lockfile would otherwise pass). Only `None` asks for digests alone.
    let (work, v) = setup("state-missing", &[]);
    let dir = work.join("plugins");
    install(&v, "plugin-00000@1.0.0", &dir).unwrap();
    let damaged = work.join("state-damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("root.json"), b"").unwrap();
    let go_state = work.join("state-go"); // the Go verifier's layout: state.json, no root.json
    std::fs::create_dir_all(&go_state).unwrap();
    std::fs::copy(work.join("state/state.json"), go_state.join("state.json")).unwrap();
    for state in [work.join("state-typo"), damaged, go_state] {
        let err = verify_installed(&dir, Some(&state)).unwrap_err();
        assert_eq!(err.class, Class::NotPinned, "{}", err);
        assert!(err.message.contains(&state.display().to_string()), "{}", err);
        assert!(err.message.contains("check the state directory path"), "{}", err);
        let err = load_plugin(&dir, Some(&state), "plugin-00000").unwrap_err();
        assert_eq!(err.class, Class::NotPinned, "{}", err);
        // nothing installed changes nothing: the state is still wrong
        let err = verify_installed(&work.join("absent"), Some(&state)).unwrap_err();
        assert_eq!(err.class, Class::NotPinned, "{}", err);
    }
    assert_eq!(verify_installed(&dir, None).unwrap(), vec!["plugin-00000".to_string()]);
    load_plugin(&dir, None, "plugin-00000").unwrap();
}

#[test]
fn a_sessions_save_never_lowers_the_stored_state() {
    // Install saves its session's state first (conformance decision 3) and another process may
    // have stored a newer one meanwhile: it wrote the older session's over it, even for an install
    // that failed at once, so a registry version (or a newer root's revocation) was forgotten.
    let (work, v) = setup("merged-save", &[]);
    let state = work.join("state");
    let session = v.refresh().unwrap(); // an older session: it read the state before the save below
    let older = TrustState::load(&state).unwrap().unwrap();
    let newer = TrustState { highest_version: 9_000_000_000_000_000, ..older.clone() };
    newer.save(&state).unwrap();
    older.save_merged(&state).unwrap();
    assert_eq!(TrustState::load(&state).unwrap().unwrap().highest_version, newer.highest_version);
    let err = session.install("Not A Spec!", &work.join("plugins"), &InstallOptions::default()).unwrap_err();
    assert_eq!(err.class, Class::BadRequirement);
    assert_eq!(TrustState::load(&state).unwrap().unwrap().highest_version, newer.highest_version);
}

#[test]
fn no_matching_version_offers_what_a_range_could_choose() {
    let (work, v) = setup("no-match", &[]);
    let err = install(&v, "plugin-00000@^9", &work.join("plugins")).err().expect("refused");
    assert_eq!(err.class.as_str(), "no-matching-version");
    assert!(err.message.contains("available: 1.0.0, 1.0.1"), "{}", err.message);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_graph_resolvelib_solves_at_once_is_solved_most_constrained_first() {
    // suite (0) needs ext_a, ext_b, ext_c (1..3) and legacy (4); ext_X 1.0.j needs core (5)
    // >=1.0.j; core has 1.0.0 .. 1.0.19; legacy 1.0.0, its only release, needs core <1.0.1.
    // Deciding every unmet plugin each round in name order backtracks through 20^3 ext versions;
    // deciding the most constrained one (legacy, then core) first finds the answer at once.
    let work = tempdir("most-constrained");
    let site = work.join("site");
    let deps: &[(usize, usize, &str)] = &[
        (0, 1, "*"),
        (0, 2, "^1"),
        (0, 3, "*"),
        (0, 4, "^1"),
        (1, 5, ">=1.0.{v}"),
        (2, 5, ">=1.0.{v}"),
        (3, 5, ">=1.0.{v}"),
        (4, 5, "<1.0.1"),
    ];
    sitegen::generate_graph(&site, &[1, 20, 20, 20, 1, 20], deps);
    let v = Verifier::new(&format!("file://{}/", site.display()), &work.join("state"), Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap());
    v.pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    let dir = work.join("plugins");
    let entries = install(&v, "plugin-00000", &dir).unwrap();
    let mut got: Vec<(String, String)> = entries.iter().map(|e| (e.name.clone(), e.version.clone())).collect();
    got.sort();
    let want: Vec<(String, String)> = (0..6).map(|p| (format!("plugin-{:05}", p), "1.0.0".to_string())).collect();
    assert_eq!(got, want);
    let lock = read_lockfile(&dir).unwrap().unwrap();
    assert_eq!(lock.plugins["plugin-00001"].dependencies["plugin-00005"], ">=1.0.0");
    assert_eq!(lock.plugins["plugin-00005"].required_by.len(), 4);
    let _ = std::fs::remove_dir_all(&work);
}
