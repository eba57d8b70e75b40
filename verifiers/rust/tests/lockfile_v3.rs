//! Lockfile version 3 end to end: the Rust writer's lines equal Python's for the same states
//! (tests/lockfile_v3_vectors.json, written by tests/lockfile_v3_vectors.py with json.dumps),
//! and installs append one change line per commit, ignore and then cut an unfinished tail,
//! convert a version 2 file, and write a new base at the compaction threshold.

mod sitegen;

use registry_verifier::json::{self, Value};
use registry_verifier::lockfile::{Lockfile, LockfileFile, LOCKFILE};
use registry_verifier::{names, read_lockfile, verify_installed, FileTransport, InstallOptions, Verifier};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    match v {
        Value::Obj(m) => m.get(key).unwrap_or(&Value::Null),
        _ => &Value::Null,
    }
}

#[test]
fn the_writer_produces_python_json_dumps_bytes_for_the_same_states() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lockfile_v3_vectors.json");
    let doc = json::parse(&std::fs::read(path).unwrap()).unwrap();
    let cases = match field(&doc, "cases") {
        Value::Arr(c) => c.clone(),
        _ => panic!("no cases"),
    };
    assert!(cases.len() >= 7);
    let mut non_ascii = false;
    for case in &cases {
        let name = field(case, "name").as_str().unwrap();
        let before_line = field(case, "before").as_str().unwrap();
        let after_line = field(case, "after").as_str().unwrap();
        let before = Lockfile::parse(before_line.as_bytes()).unwrap_or_else(|e| panic!("{}: {}", name, e));
        let after = Lockfile::parse(after_line.as_bytes()).unwrap_or_else(|e| panic!("{}: {}", name, e));
        assert_eq!(String::from_utf8(before.base_line()).unwrap(), before_line, "{}: base line", name);
        assert_eq!(String::from_utf8(after.base_line()).unwrap(), after_line, "{}: base line", name);
        let change = before.change_line(&after).map(|l| String::from_utf8(l).unwrap());
        assert_eq!(change.as_deref(), field(case, "change").as_str(), "{}: change line", name);
        if let Some(change) = change {
            let folded = Lockfile::parse(format!("{}{}", before_line, change).as_bytes()).unwrap();
            assert_eq!(folded, after, "{}: base + change folds to the state after", name);
        }
        non_ascii |= after.plugins.values().any(|e| !e.registry.is_ascii());
    }
    assert!(non_ascii, "the vectors cover escaped non-ASCII text");
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rv-lockv3-{}-{}", tag, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.canonicalize().unwrap()
}

fn setup(tag: &str) -> (PathBuf, Verifier) {
    let work = tempdir(tag);
    let site = work.join("site");
    sitegen::generate(&site, 4, 2, &[(3, 2, "^1.0")]);
    let v = Verifier::new(&format!("file://{}/", site.display()), &work.join("state"), Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap());
    v.pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    (work, v)
}

fn install(v: &Verifier, spec: &str, dir: &Path) {
    let session = v.refresh().unwrap();
    session.install(spec, dir, &InstallOptions::default()).unwrap();
    session.commit().unwrap();
}

fn lock_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(LOCKFILE)).unwrap()
}

fn lines(data: &[u8]) -> Vec<String> {
    String::from_utf8(data.to_vec()).unwrap().split_inclusive('\n').map(str::to_owned).collect()
}

/// The names a change line sets (entry) or removes (null).
fn changed_names(line: &str) -> Vec<String> {
    match field(&json::parse(line.as_bytes()).unwrap(), "plugins") {
        Value::Obj(m) => m.keys().cloned().collect(),
        other => panic!("{:?}", other),
    }
}

#[test]
fn each_install_appends_one_line_with_only_what_changed() {
    let (work, v) = setup("append");
    let dir = work.join("plugins");
    let state = work.join("state");
    install(&v, "plugin-00000@1.0.0", &dir);
    let first = lock_bytes(&dir);
    assert_eq!(lines(&first).len(), 1);
    assert!(lines(&first)[0].starts_with("{\"lockfile_version\":3,\"plugins\":{\"plugin-00000\":{"));
    assert_eq!(first, read_lockfile(&dir).unwrap().unwrap().base_line(), "the base is the canonical state");

    install(&v, "plugin-00001", &dir);
    let second = lock_bytes(&dir);
    assert!(second.starts_with(&first), "appended, not rewritten");
    assert_eq!(changed_names(&lines(&second)[1]), ["plugin-00001"]);

    // plugin-00003 depends on plugin-00002: both new, one line
    install(&v, "plugin-00003", &dir);
    let third = lock_bytes(&dir);
    assert_eq!(changed_names(&lines(&third)[2]), ["plugin-00002", "plugin-00003"]);
    // an update changes one entry; the old version's folder goes after the commit point
    install(&v, "plugin-00000", &dir);
    let fourth = lock_bytes(&dir);
    assert_eq!(changed_names(&lines(&fourth)[3]), ["plugin-00000"]);
    assert!(!dir.join("plugin-00000/1.0.0").exists());
    // nothing changed: nothing written
    install(&v, "plugin-00001", &dir);
    assert_eq!(lock_bytes(&dir), fourth);
    // promoting the dependency changes its requested only
    install(&v, "plugin-00002", &dir);
    let promoted = lock_bytes(&dir);
    assert_eq!(lines(&promoted).len(), 5);
    assert!(lines(&promoted)[4].contains("\"requested\":\"\""));

    let f = LockfileFile::parse(&promoted).unwrap();
    assert_eq!((f.version, f.change_lines), (3, 4));
    assert_eq!(f.lockfile.plugins["plugin-00000"].version, "1.0.1");
    assert_eq!(f.lockfile.plugins["plugin-00002"].required_by, ["plugin-00003"]);
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap().len(), 4);
}

#[test]
fn an_unfinished_tail_is_ignored_by_readers_and_cut_by_the_next_writer() {
    let (work, v) = setup("tail");
    let dir = work.join("plugins");
    let state = work.join("state");
    install(&v, "plugin-00000", &dir);
    let committed = lock_bytes(&dir);
    let mut torn = committed.clone();
    torn.extend(b"{\"plugins\":{\"plugin-00009\":{\"abi\"");
    std::fs::write(dir.join(LOCKFILE), &torn).unwrap();
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap(), ["plugin-00000"]);
    install(&v, "plugin-00001", &dir);
    let after = lock_bytes(&dir);
    assert!(after.starts_with(&committed));
    assert_eq!(lines(&after).len(), 2);
    assert_eq!(changed_names(&lines(&after)[1]), ["plugin-00001"]);
    assert!(after.ends_with(b"\n"));
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap().len(), 2);
}

#[test]
fn a_version_2_file_is_read_and_replaced_by_a_version_3_base_on_the_next_commit() {
    let (work, v) = setup("v2");
    let dir = work.join("plugins");
    let state = work.join("state");
    install(&v, "plugin-00000", &dir);
    // the same state as the previous writers wrote it
    let mut doc = json::parse(&lock_bytes(&dir)).unwrap();
    if let Value::Obj(m) = &mut doc {
        m.insert("lockfile_version".into(), Value::Int(2));
    }
    let v2 = json::to_python_pretty(&doc) + "\n";
    std::fs::write(dir.join(LOCKFILE), &v2).unwrap();
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap(), ["plugin-00000"]);
    // nothing changed: the version 2 file stays as it is
    install(&v, "plugin-00000", &dir);
    assert_eq!(lock_bytes(&dir), v2.as_bytes());
    install(&v, "plugin-00001", &dir);
    let after = lock_bytes(&dir);
    assert_eq!(lines(&after).len(), 1, "a new base, never an append to version 2");
    assert_eq!(after, read_lockfile(&dir).unwrap().unwrap().base_line());
    assert_eq!(verify_installed(&dir, Some(&state)).unwrap().len(), 2);
}

#[test]
fn a_file_with_max_64_or_e_change_lines_gets_a_new_base() {
    let (work, v) = setup("compact");
    let dir = work.join("plugins");
    install(&v, "plugin-00000", &dir);
    let base = lock_bytes(&dir);
    // a change line re-stating plugin-00000 (a valid line; the state does not change)
    let base_text = String::from_utf8(base.clone()).unwrap();
    let plugins = base_text.strip_prefix("{\"lockfile_version\":3,\"plugins\":").unwrap().strip_suffix("}\n");
    let restate = format!("{{\"plugins\":{}}}\n", plugins.unwrap());
    assert_eq!(LockfileFile::parse(format!("{}{}", lines(&base)[0], restate).as_bytes()).unwrap().change_lines, 1);
    let with = |n: usize| {
        let mut data = base.clone();
        for _ in 0..n {
            data.extend(restate.as_bytes());
        }
        std::fs::write(dir.join(LOCKFILE), &data).unwrap();
        data
    };
    // 63 change lines (E = 2 after the commit): append
    let before = with(63);
    install(&v, "plugin-00001", &dir);
    let after = lock_bytes(&dir);
    assert!(after.starts_with(&before));
    assert_eq!(lines(&after).len(), 65);
    // now 64: the next commit writes a new base holding the whole state
    install(&v, "plugin-00002", &dir);
    let compacted = lock_bytes(&dir);
    assert_eq!(lines(&compacted).len(), 1);
    let state = read_lockfile(&dir).unwrap().unwrap();
    assert_eq!(state.plugins.len(), 3);
    assert_eq!(compacted, state.base_line());
}
