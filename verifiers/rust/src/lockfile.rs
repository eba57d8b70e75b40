//! The lockfile `<plugin dir>/registry-tool.lock.json`, shared with the Python and Go clients
//! (LOCKFILE-V3 in the project's contract: version 3, JSON Lines).
//!
//! Line 1 (the base) is `{"lockfile_version":3,"plugins":{name: ENTRY}}`; every later line (a
//! change line, one per commit) is `{"plugins":{name: ENTRY or null}}`, non-empty, `null`
//! removing a name the state holds. The state is the base with the change lines applied in
//! order. Bytes after the last "\n" are a write that did not finish: readers ignore them and
//! the next writer truncates them. Every line is written as Python's `json.dumps(obj,
//! sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"`; readers accept any
//! strict JSON per line. A version 2 file (one JSON document) is still read; a writer
//! replaces it by a version 3 base. Anything else is `lockfile`, never a crash.

use crate::error::{Class, Error};
use crate::json::{self, Obj, Value, MAX_INT};
use crate::names;
use std::collections::BTreeMap;

pub const LOCKFILE: &str = "registry-tool.lock.json";
/// The version this verifier writes.
pub const LOCKFILE_VERSION: i64 = 3;
/// The previous version, still read (one JSON document), never appended to.
pub const LOCKFILE_VERSION_2: i64 = 2;
pub const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;
/// A commit writes a new base instead of appending once the file holds
/// `max(MIN_COMPACTION_LINES, entries after the commit)` change lines, or once its change
/// lines with the new one would exceed `max(base line bytes, MIN_COMPACTION_BYTES)`: the file
/// stays within about twice a fresh base (plus 64 KiB) and each commit costs O(changed)
/// amortised. Counting lines alone is not enough: a commit touching most entries writes a
/// line as large as a base.
pub const MIN_COMPACTION_LINES: usize = 64;
pub const MIN_COMPACTION_BYTES: u64 = 65536;
/// The `requested` of an entry installed only because other plugins need it
/// (conformance/README.md, decision 14). Not a range, so never a requirement anyone typed.
pub const DEPENDENCY_ONLY: &str = "(dependency)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub registry: String,
    pub requested: String,
    pub required_by: Vec<String>,
    pub dependencies: BTreeMap<String, String>,
    pub abi: String,
    pub manifest: String,
    pub manifest_sha256: String,
    pub manifest_size: u64,
    pub wasm: String,
    pub wasm_sha256: String,
    pub wasm_size: u64,
    pub signatures: Vec<String>,
    pub signers: Vec<String>,
    pub permissions: Vec<String>,
    pub published_at: String,
}

/// The state: the installed plugins by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lockfile {
    pub plugins: BTreeMap<String, Entry>,
}

/// A lockfile as read from disk: its folded state and what the next writer needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockfileFile {
    pub lockfile: Lockfile,
    /// 2 (one JSON document, replaced by the next commit) or 3
    pub version: i64,
    /// version 3: the complete lines after the base
    pub change_lines: usize,
    /// version 3: the base line's length, its "\n" included; version 2: the whole file's
    pub base_len: u64,
    /// the bytes up to and including the last "\n" (version 3), else the whole file
    pub committed_len: u64,
    /// the whole file's length; more than `committed_len` when an uncommitted tail follows
    pub len: u64,
}

/// What one commit writes (`plan_commit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commit {
    /// nothing changed: nothing is written
    Nothing,
    /// append this change line (after truncating the file to `committed_len`)
    Append { line: Vec<u8>, committed_len: u64 },
    /// replace the file atomically by this one base line
    Base(Vec<u8>),
}

fn bad(msg: String) -> Error {
    Error::new(
        Class::Lockfile,
        format!(
            "{} is not a valid lockfile: {}; reinstall the plugins (the lockfile is generated, never edited by hand)",
            LOCKFILE, msg
        ),
    )
}

/// `<name>/<version>/<file name>` for this entry, else None.
fn rel_path_ok(path: &str, name: &str, version: &str) -> bool {
    let mut parts = path.split('/');
    matches!((parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(n), Some(v), Some(f), None) if n == name && v == version && names::is_file_name(f))
}

const FIELDS: &[&str] = &[
    "version",
    "registry",
    "requested",
    "required_by",
    "dependencies",
    "abi",
    "manifest",
    "manifest_sha256",
    "manifest_size",
    "wasm",
    "wasm_sha256",
    "wasm_size",
    "signatures",
    "signers",
    "permissions",
    "published_at",
];

/// One ENTRY (the same object in versions 2 and 3). `at` names it in messages.
fn parse_entry(name: &str, raw: &Value, at: &str) -> Result<Entry, Error> {
    if !names::is_plugin_name(name) {
        return Err(bad(format!("{}plugins: {:?} is not a plugin name", at, name)));
    }
    let here = format!("{}plugins.{}", at, name);
    let e = Obj::new(raw, &here, FIELDS, &[]).map_err(bad)?;
    let version = e.str("version").map_err(bad)?;
    if !names::is_version(version) {
        return Err(bad(format!("{}.version {:?} is not a strict semver", here, version)));
    }
    let path = |key: &str| -> Result<String, Error> {
        let p = e.str(key).map_err(bad)?;
        if !rel_path_ok(p, name, version) {
            return Err(bad(format!("{}.{} {:?} is not {}/{}/<file name>", here, key, p, name, version)));
        }
        Ok(p.to_owned())
    };
    let sha = |key: &str| -> Result<String, Error> {
        let s = e.str(key).map_err(bad)?;
        if !names::is_sha256_hex(s) {
            return Err(bad(format!("{}.{} is not 64 lower-case hex digits", here, key)));
        }
        Ok(s.to_owned())
    };
    let size = |key: &str| -> Result<u64, Error> {
        let n = e.int(key).map_err(bad)?;
        if !(0..=MAX_INT).contains(&n) {
            return Err(bad(format!("{}.{} is not a size", here, key)));
        }
        Ok(n as u64)
    };
    let mut dependencies = BTreeMap::new();
    for (dep, range) in e.obj("dependencies").map_err(bad)? {
        let r = range.as_str().ok_or_else(|| bad(format!("{}.dependencies.{} is not a string", here, dep)))?;
        if !names::is_plugin_name(dep) {
            return Err(bad(format!("{}.dependencies names {:?}", here, dep)));
        }
        dependencies.insert(dep.clone(), r.to_owned());
    }
    let signatures = e.str_list("signatures", true, |_| true).map_err(bad)?;
    for s in &signatures {
        if !rel_path_ok(s, name, version) {
            return Err(bad(format!("{}.signatures holds {:?}, not {}/{}/<file name>", here, s, name, version)));
        }
        // Only the manifest's signature files (Python's install._entry, decision 17).
        if !names::is_manifest_signature_name(s.rsplit('/').next().unwrap_or("")) {
            return Err(bad(format!("{}.signatures holds {:?}: only plugin.toml[.KEYID].minisig files", here, s)));
        }
    }
    let published_at = e.str("published_at").map_err(bad)?;
    if names::parse_time(published_at).is_none() {
        return Err(bad(format!("{}.published_at is not a time", here)));
    }
    // The trust state is looked up by the entry's registry URL: one the Python client's
    // normalise_url refuses makes the lockfile invalid, for every operation that reads it
    // (conformance decision 15; Python's install._registry).
    let registry = e.str("registry").map_err(bad)?;
    if let Some(why) = crate::registry_url::locked_registry_problem(registry) {
        return Err(bad(format!(
            "{}.registry: registry URL {:?} {}",
            here,
            crate::registry_url::redacted(registry),
            why
        )));
    }
    let manifest = path("manifest")?;
    if !manifest.ends_with("/plugin.toml") {
        return Err(bad(format!("{}.manifest {:?} must name plugin.toml", here, manifest)));
    }
    let wasm = path("wasm")?;
    if names::is_reserved_name(wasm.rsplit('/').next().unwrap_or("")) {
        return Err(bad(format!("{}.wasm {:?} names the manifest or a signature file", here, wasm)));
    }
    Ok(Entry {
        name: name.to_owned(),
        version: version.to_owned(),
        registry: registry.to_owned(),
        requested: e.str("requested").map_err(bad)?.to_owned(),
        required_by: e.str_list("required_by", true, names::is_plugin_name).map_err(bad)?,
        dependencies,
        abi: e.str("abi").map_err(bad)?.to_owned(),
        manifest,
        manifest_sha256: sha("manifest_sha256")?,
        manifest_size: size("manifest_size")?,
        wasm,
        wasm_sha256: sha("wasm_sha256")?,
        wasm_size: size("wasm_size")?,
        signatures,
        signers: e.str_list("signers", true, names::is_key_id).map_err(bad)?,
        permissions: e.str_list("permissions", true, names::is_permission).map_err(bad)?,
        published_at: published_at.to_owned(),
    })
}

fn entry_value(e: &Entry) -> Value {
    let strs = |v: &[String]| Value::Arr(v.iter().map(|s| Value::Str(s.clone())).collect());
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("version", Value::Str(e.version.clone()));
    put("registry", Value::Str(e.registry.clone()));
    put("requested", Value::Str(e.requested.clone()));
    put("required_by", strs(&e.required_by));
    put("dependencies", Value::Obj(e.dependencies.iter().map(|(k, v)| (k.clone(), Value::Str(v.clone()))).collect()));
    put("abi", Value::Str(e.abi.clone()));
    put("manifest", Value::Str(e.manifest.clone()));
    put("manifest_sha256", Value::Str(e.manifest_sha256.clone()));
    put("manifest_size", Value::Int(e.manifest_size as i64));
    put("wasm", Value::Str(e.wasm.clone()));
    put("wasm_sha256", Value::Str(e.wasm_sha256.clone()));
    put("wasm_size", Value::Int(e.wasm_size as i64));
    put("signatures", strs(&e.signatures));
    put("signers", strs(&e.signers));
    put("permissions", strs(&e.permissions));
    put("published_at", Value::Str(e.published_at.clone()));
    Value::Obj(m)
}

/// `obj` as one canonical line (Python's compact, sorted, ASCII-only `json.dumps`, then "\n").
fn line(obj: BTreeMap<String, Value>) -> Vec<u8> {
    let mut text = json::to_python_compact(&Value::Obj(obj));
    text.push('\n');
    text.into_bytes()
}

fn version_of(v: &Value) -> Option<&Value> {
    match v {
        Value::Obj(m) => m.get("lockfile_version"),
        _ => None,
    }
}

fn other_version(v: &Value) -> Error {
    match version_of(v) {
        Some(Value::Int(n)) => bad(format!(
            "lockfile_version is {}, this verifier reads versions {} and {} only; upgrade the verifier or reinstall the plugins",
            n, LOCKFILE_VERSION_2, LOCKFILE_VERSION
        )),
        Some(other) => bad(format!("lockfile_version is {}, not an integer", other.kind())),
        None => match v {
            Value::Obj(_) => bad("it lacks the member \"lockfile_version\"".to_owned()),
            other => bad(format!("it is {}, not an object", other.kind())),
        },
    }
}

impl Lockfile {
    /// The folded state of a lockfile's bytes (see `LockfileFile::parse`).
    pub fn parse(data: &[u8]) -> Result<Lockfile, Error> {
        LockfileFile::parse(data).map(|f| f.lockfile)
    }

    /// This state as a version 3 base line: the whole lockfile of a fresh file.
    pub fn base_line(&self) -> Vec<u8> {
        let plugins = self.plugins.iter().map(|(n, e)| (n.clone(), entry_value(e))).collect();
        let mut top = BTreeMap::new();
        top.insert("lockfile_version".to_owned(), Value::Int(LOCKFILE_VERSION));
        top.insert("plugins".to_owned(), Value::Obj(plugins));
        line(top)
    }

    /// The change line taking `self` to `next`: every entry added or different (whatever
    /// field changed, `required_by` included) and a `null` for every name removed; `None`
    /// when the two states are equal.
    pub fn change_line(&self, next: &Lockfile) -> Option<Vec<u8>> {
        let mut changed = BTreeMap::new();
        for (name, e) in &next.plugins {
            if self.plugins.get(name) != Some(e) {
                changed.insert(name.clone(), entry_value(e));
            }
        }
        for name in self.plugins.keys() {
            if !next.plugins.contains_key(name) {
                changed.insert(name.clone(), Value::Null);
            }
        }
        if changed.is_empty() {
            return None;
        }
        let mut top = BTreeMap::new();
        top.insert("plugins".to_owned(), Value::Obj(changed));
        Some(line(top))
    }
}

/// Version 2: one JSON document `{"lockfile_version": 2, "plugins": {...}}`.
fn parse_v2(v: &Value) -> Result<Lockfile, Error> {
    let top = Obj::new(v, "lockfile", &["lockfile_version", "plugins"], &[]).map_err(bad)?;
    let mut plugins = BTreeMap::new();
    for (name, raw) in top.obj("plugins").map_err(bad)? {
        plugins.insert(name.clone(), parse_entry(name, raw, "")?);
    }
    Ok(Lockfile { plugins })
}

fn parse_line(text: &[u8], number: usize) -> Result<Value, Error> {
    json::parse(text).map_err(|e| bad(format!("line {} {}", number, e)))
}

impl LockfileFile {
    /// Read a lockfile's bytes: version 3 (JSON Lines, folded, an uncommitted tail after the
    /// last "\n" ignored) or version 2 (one JSON document). Every line is strict JSON with
    /// exactly its members; anything else, another `lockfile_version`, a `null` for a name
    /// the state does not hold, or a file with no complete line is `lockfile`.
    pub fn parse(data: &[u8]) -> Result<LockfileFile, Error> {
        let len = data.len() as u64;
        if len > MAX_LOCKFILE_BYTES {
            return Err(bad(format!("it is larger than {} bytes", MAX_LOCKFILE_BYTES)));
        }
        let first_end = data.iter().position(|&b| b == b'\n');
        let first = match first_end {
            Some(i) => &data[..i],
            None => data,
        };
        // Line 1 on its own: a version 3 base, or a version 2 document written on one line.
        // Otherwise the whole file may be one (pretty-printed) version 2 document.
        let (head, single, line_one) = match json::parse(first) {
            Ok(v) => {
                let rest = first_end.map_or(&data[data.len()..], |i| &data[i + 1..]);
                let single = rest.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                (v, single, true)
            }
            Err(line_error) => match json::parse(data) {
                Ok(v) => (v, true, false),
                Err(_) if first_end.is_some() => return Err(bad(format!("line 1 {}", line_error))),
                Err(e) => return Err(bad(format!("it {}", e))),
            },
        };
        match version_of(&head) {
            Some(Value::Int(LOCKFILE_VERSION_2)) if single => {
                return Ok(LockfileFile {
                    lockfile: parse_v2(&head)?,
                    version: LOCKFILE_VERSION_2,
                    change_lines: 0,
                    base_len: len,
                    committed_len: len,
                    len,
                })
            }
            Some(Value::Int(LOCKFILE_VERSION_2)) => {
                return Err(bad("a version 2 lockfile is one JSON document, this one has lines after it".to_owned()))
            }
            Some(Value::Int(LOCKFILE_VERSION)) => {}
            _ => return Err(other_version(&head)),
        }
        if !line_one {
            return Err(bad("a version 3 lockfile holds one JSON object per line, this one spans lines".to_owned()));
        }
        let committed = match data.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return Err(bad("it holds no complete line (a write that did not finish)".to_owned())),
        };
        let base = Obj::new(&head, "line 1", &["lockfile_version", "plugins"], &[]).map_err(bad)?;
        let mut plugins = BTreeMap::new();
        for (name, raw) in base.obj("plugins").map_err(bad)? {
            plugins.insert(name.clone(), parse_entry(name, raw, "line 1: ")?);
        }
        let change_lines = fold(&mut plugins, &data[first.len() + 1..committed], 0)?;
        Ok(LockfileFile {
            lockfile: Lockfile { plugins },
            version: LOCKFILE_VERSION,
            change_lines,
            base_len: first.len() as u64 + 1,
            committed_len: committed as u64,
            len,
        })
    }

    /// `data`, read again from the file `self` was parsed from (`previous`: the bytes it was
    /// parsed from): when the file still starts with exactly the committed bytes of that parse,
    /// only the complete lines after them are parsed and folded; otherwise the whole file is.
    pub fn reparse(self, previous: &[u8], data: &[u8]) -> Result<LockfileFile, Error> {
        let done = self.committed_len as usize;
        let same_start = self.version == LOCKFILE_VERSION
            && previous.len() >= done
            && data.len() >= done
            && (data.len() as u64) <= MAX_LOCKFILE_BYTES
            && data[..done] == previous[..done];
        if !same_start {
            return LockfileFile::parse(data);
        }
        // data[done - 1] is the "\n" that ended the last line parsed
        let committed = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1).max(done);
        let mut plugins = self.lockfile.plugins;
        let change_lines = self.change_lines + fold(&mut plugins, &data[done..committed], self.change_lines)?;
        Ok(LockfileFile {
            lockfile: Lockfile { plugins },
            version: LOCKFILE_VERSION,
            change_lines,
            base_len: self.base_len,
            committed_len: committed as u64,
            len: data.len() as u64,
        })
    }
}

/// Apply the change lines of `lines` (complete lines, each ending in "\n") to `plugins`, in
/// order; `before` change lines precede them in the file. Returns how many were applied.
fn fold(plugins: &mut BTreeMap<String, Entry>, lines: &[u8], before: usize) -> Result<usize, Error> {
    let mut count = 0;
    let mut start = 0;
    while start < lines.len() {
        let end = start + lines[start..].iter().position(|&b| b == b'\n').expect("complete lines end in \\n");
        let number = before + count + 2;
        let at = format!("line {}", number);
        let v = parse_line(&lines[start..end], number)?;
        let change = Obj::new(&v, &at, &["plugins"], &[]).map_err(bad)?;
        let members = change.obj("plugins").map_err(bad)?;
        if members.is_empty() {
            return Err(bad(format!("{}: plugins is empty (a change line changes something)", at)));
        }
        for (name, raw) in members {
            if *raw == Value::Null {
                if plugins.remove(name).is_none() {
                    return Err(bad(format!("{} removes {:?}, which is not installed", at, name)));
                }
            } else {
                plugins.insert(name.clone(), parse_entry(name, raw, &format!("{}: ", at))?);
            }
        }
        count += 1;
        start = end + 1;
    }
    Ok(count)
}

/// What committing `next` writes over `current` (`None`: no lockfile yet): nothing when the
/// state is unchanged; a new base when there is no file, the file is version 2, it already
/// holds `max(MIN_COMPACTION_LINES, entries of next)` change lines, or its change lines
/// (committed length minus the base line's) plus the new one would be more bytes than
/// `max(base line, MIN_COMPACTION_BYTES)`; else one change line.
pub fn plan_commit(current: Option<&LockfileFile>, next: &Lockfile) -> Commit {
    let empty = Lockfile::default();
    let before = current.map_or(&empty, |f| &f.lockfile);
    let change = match before.change_line(next) {
        None => return Commit::Nothing,
        Some(l) => l,
    };
    let append = |f: &LockfileFile| {
        let change_bytes = f.committed_len.saturating_sub(f.base_len) + change.len() as u64;
        f.version == LOCKFILE_VERSION
            && f.change_lines < MIN_COMPACTION_LINES.max(next.plugins.len())
            && change_bytes <= f.base_len.max(MIN_COMPACTION_BYTES)
    };
    match current {
        Some(f) if append(f) => Commit::Append { line: change, committed_len: f.committed_len },
        _ => Commit::Base(next.base_line()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: &str, deps: &[&str]) -> Entry {
        Entry {
            name: name.into(),
            version: version.into(),
            registry: "https://example.org/plugins/".into(),
            requested: "^1.0".into(),
            required_by: vec![],
            dependencies: deps.iter().map(|d| (d.to_string(), "^1".to_string())).collect(),
            abi: "core".into(),
            manifest: format!("{}/{}/plugin.toml", name, version),
            manifest_sha256: "a".repeat(64),
            manifest_size: 812,
            wasm: format!("{}/{}/{}.wasm", name, version, name),
            wasm_sha256: "b".repeat(64),
            wasm_size: 1234,
            signatures: vec![format!("{}/{}/plugin.toml.minisig", name, version)],
            signers: vec!["1B2C3D4E5F607182".into()],
            permissions: vec!["keys".into()],
            published_at: "2026-11-21T12:00:00Z".into(),
        }
    }

    fn state(entries: &[Entry]) -> Lockfile {
        Lockfile { plugins: entries.iter().map(|e| (e.name.clone(), e.clone())).collect() }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// base + one change line per step, as a writer appends them
    fn file(steps: &[Lockfile]) -> Vec<u8> {
        let mut out = steps[0].base_line();
        for pair in steps.windows(2) {
            out.extend(pair[0].change_line(&pair[1]).unwrap());
        }
        out
    }

    fn lockfile_error(data: &[u8]) -> String {
        let err = LockfileFile::parse(data).unwrap_err();
        assert_eq!(err.class, Class::Lockfile, "{}", err);
        err.message
    }

    /// A version 2 file as the previous writers wrote it (`json.dumps(doc, indent=2, sort_keys=True)`).
    fn v2_bytes(lf: &Lockfile) -> Vec<u8> {
        let plugins = lf.plugins.iter().map(|(n, e)| (n.clone(), entry_value(e))).collect();
        let mut top = BTreeMap::new();
        top.insert("lockfile_version".to_owned(), Value::Int(2));
        top.insert("plugins".to_owned(), Value::Obj(plugins));
        let mut t = json::to_python_pretty(&Value::Obj(top));
        t.push('\n');
        t.into_bytes()
    }

    /// A string listed twice in `signatures`, `signers`, `permissions` or `required_by` is
    /// `lockfile` (decision 17; each listed signature would be read and checked again), in a
    /// version 3 base line, a change line, and a version 2 entry.
    #[test]
    fn a_string_listed_twice_is_refused() {
        let good = state(&[entry("aa", "1.0.0", &[])]);
        let dup = |e: &mut Entry, field: &str| {
            let list = match field {
                "signatures" => &mut e.signatures,
                "signers" => &mut e.signers,
                "permissions" => &mut e.permissions,
                _ => {
                    e.required_by = vec!["bb".into()];
                    &mut e.required_by
                }
            };
            list.push(list[0].clone());
        };
        assert!(LockfileFile::parse(&good.base_line()).is_ok());
        for field in ["signatures", "signers", "permissions", "required_by"] {
            let mut bad = good.clone();
            dup(bad.plugins.get_mut("aa").unwrap(), field);
            let twice = format!("{} lists", field);
            let m = lockfile_error(&bad.base_line());
            assert!(m.contains(&twice), "base line, {}: {}", field, m);
            let m = lockfile_error(&file(&[good.clone(), bad.clone()]));
            assert!(m.contains(&twice), "change line, {}: {}", field, m);
            let m = lockfile_error(&v2_bytes(&bad));
            assert!(m.contains(&twice), "version 2, {}: {}", field, m);
            // the same strings once each are fine
            let mut once = bad.clone();
            once.plugins.get_mut("aa").unwrap().signatures.dedup();
            once.plugins.get_mut("aa").unwrap().signers.dedup();
            once.plugins.get_mut("aa").unwrap().permissions.dedup();
            once.plugins.get_mut("aa").unwrap().required_by.dedup();
            assert!(LockfileFile::parse(&once.base_line()).is_ok(), "{}", field);
        }
    }

    #[test]
    fn the_state_is_the_base_with_every_change_line_applied_in_order() {
        let one = state(&[entry("aa", "1.0.0", &[])]);
        let two = state(&[entry("aa", "1.0.0", &[]), entry("bb", "1.0.0", &[])]);
        let three = state(&[entry("bb", "1.1.0", &[])]);
        let data = file(&[one.clone(), two.clone(), three.clone()]);
        let f = LockfileFile::parse(&data).unwrap();
        assert_eq!(f.lockfile, three);
        assert_eq!((f.version, f.change_lines, f.committed_len, f.len), (3, 2, data.len() as u64, data.len() as u64));
        assert_eq!(Lockfile::parse(&one.base_line()).unwrap(), one);
        assert!(text(&data).ends_with("{\"plugins\":{\"aa\":null,\"bb\":{\"abi\":\"core\",\"dependencies\":{},\"manifest\":\"bb/1.1.0/plugin.toml\",\"manifest_sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"manifest_size\":812,\"permissions\":[\"keys\"],\"published_at\":\"2026-11-21T12:00:00Z\",\"registry\":\"https://example.org/plugins/\",\"requested\":\"^1.0\",\"required_by\":[],\"signatures\":[\"bb/1.1.0/plugin.toml.minisig\"],\"signers\":[\"1B2C3D4E5F607182\"],\"version\":\"1.1.0\",\"wasm\":\"bb/1.1.0/bb.wasm\",\"wasm_sha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"wasm_size\":1234}}}\n"));
    }

    #[test]
    fn an_uncommitted_tail_after_the_last_newline_is_ignored() {
        let one = state(&[entry("aa", "1.0.0", &[])]);
        let two = state(&[entry("aa", "1.0.0", &[]), entry("bb", "1.0.0", &[])]);
        let committed = file(std::slice::from_ref(&one));
        let line = one.change_line(&two).unwrap();
        for cut in [1, line.len() / 2, line.len() - 1] {
            let mut torn = committed.clone();
            torn.extend(&line[..cut]);
            let f = LockfileFile::parse(&torn).unwrap();
            assert_eq!(f.lockfile, one, "a torn change line of {} bytes is not applied", cut);
            assert_eq!((f.committed_len, f.len), (committed.len() as u64, torn.len() as u64));
            assert_eq!(f.change_lines, 0);
        }
        // garbage (not even JSON) after the last newline is a tail too
        let mut junk = committed.clone();
        junk.extend(b"\x00\xff{{");
        assert_eq!(LockfileFile::parse(&junk).unwrap().lockfile, one);
    }

    #[test]
    fn a_file_with_no_complete_line_is_a_lockfile_error() {
        let base = state(&[entry("aa", "1.0.0", &[])]).base_line();
        lockfile_error(&base[..base.len() - 1]);
        lockfile_error(&base[..10]);
        lockfile_error(b"");
    }

    #[test]
    fn a_null_for_a_name_not_in_the_state_is_a_lockfile_error() {
        let mut data = state(&[entry("aa", "1.0.0", &[])]).base_line();
        data.extend(b"{\"plugins\":{\"bb\":null}}\n");
        assert!(lockfile_error(&data).contains("\"bb\""));
        // removing twice: the second null names a name no longer in the state
        let mut twice = state(&[entry("aa", "1.0.0", &[])]).base_line();
        twice.extend(b"{\"plugins\":{\"aa\":null}}\n{\"plugins\":{\"aa\":null}}\n");
        lockfile_error(&twice);
        let mut once = state(&[entry("aa", "1.0.0", &[])]).base_line();
        once.extend(b"{\"plugins\":{\"aa\":null}}\n");
        assert!(LockfileFile::parse(&once).unwrap().lockfile.plugins.is_empty());
    }

    #[test]
    fn every_line_is_strict_with_exactly_its_members() {
        let base = text(&state(&[entry("aa", "1.0.0", &[])]).base_line());
        let change =
            text(&state(&[entry("aa", "1.0.0", &[])]).change_line(&state(&[entry("aa", "1.1.0", &[])])).unwrap());
        let good = format!("{}{}", base, change);
        assert!(LockfileFile::parse(good.as_bytes()).is_ok());
        for (from, to) in [
            ("{\"plugins\":{\"aa\":{", "{\"plugins\":{\"aa\":{\"abi\":\"core\","),        // duplicate member
            ("{\"plugins\":{", "{\"plugins\":{},\"plugins\":{"),                      // duplicate member
            ("\"manifest_size\":812,\"permissions\":[\"keys\"],\"published_at\":\"2026-11-21T12:00:00Z\",\"registry\":\"https://example.org/plugins/\",\"requested\":\"^1.0\",\"required_by\":[],\"signatures\":[\"aa/1.1.0", "\"manifest_size\":NaN,\"permissions\":[\"keys\"],\"published_at\":\"2026-11-21T12:00:00Z\",\"registry\":\"https://example.org/plugins/\",\"requested\":\"^1.0\",\"required_by\":[],\"signatures\":[\"aa/1.1.0"),
            ("\"wasm_size\":1234}}}", "\"wasm_size\":9007199254740993}}}"),       // beyond 2^53
            ("\"wasm_size\":1234}}}", "\"wasm_size\":1234.0}}}"),                 // not an integer
            ("\"wasm_size\":1234}}}", "\"wasm_size\":\"1234\"}}}"),               // wrong type
            ("\"wasm_size\":1234}}}", "\"wasm_size\":1234,\"x\":1}}}"),           // unknown entry member
            ("\"wasm_size\":1234}}}", "\"wasm_size\":1234},\"lockfile_version\":3}"), // unknown line member
            ("{\"plugins\":{\"aa\":{\"abi\"", "{\"plugins\":{\"aa\":{\"x\":1,\"abi\""),
            ("\"abi\":\"core\",\"dependencies\":{},\"manifest\":\"aa/1.1.0", "\"dependencies\":{},\"manifest\":\"aa/1.1.0"), // missing member
            ("\"wasm\":\"aa/1.1.0/aa.wasm\"", "\"wasm\":\"aa/1.1.0/../../x.wasm\""),  // unsafe path
            ("{\"plugins\":{\"aa\":{\"abi\"", "{\"plugins\":{\"A B\":{\"abi\""),    // not a plugin name
        ] {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{}", from);
            lockfile_error(bad.as_bytes());
        }
        for line in ["{\"plugins\":{}}\n", "{\"plugins\":[]}\n", "{}\n", "\n", "[]\n", "{\"plugins\":{\"aa\":1}}\n"] {
            lockfile_error(format!("{}{}", base, line).as_bytes());
        }
        for bad_base in [
            "{\"lockfile_version\":3}\n",
            "{\"lockfile_version\":3,\"plugins\":{},\"x\":1}\n",
            "{\"lockfile_version\":3,\"plugins\":[]}\n",
            "{\"lockfile_version\":3,\"lockfile_version\":3,\"plugins\":{}}\n",
            "{\"plugins\":{}}\n",
            "[]\n",
        ] {
            lockfile_error(bad_base.as_bytes());
        }
        assert!(LockfileFile::parse(b"{\"lockfile_version\":3,\"plugins\":{}}\n").unwrap().lockfile.plugins.is_empty());
        // readers do not require the canonical form
        let spaced = format!("{{ \"plugins\": {{}}, \"lockfile_version\": 3 }}\n{}", change);
        assert_eq!(LockfileFile::parse(spaced.as_bytes()).unwrap().lockfile, state(&[entry("aa", "1.1.0", &[])]));
    }

    #[test]
    fn version_2_is_still_read_as_one_document() {
        let lf = state(&[entry("aa", "1.0.0", &["bb"]), entry("bb", "1.0.0", &[])]);
        let v2 = v2_bytes(&lf);
        assert!(text(&v2).starts_with("{\n  \"lockfile_version\": 2,\n  \"plugins\": {\n    \"aa\": {\n"));
        let f = LockfileFile::parse(&v2).unwrap();
        assert_eq!((f.lockfile.clone(), f.version, f.committed_len), (lf.clone(), 2, v2.len() as u64));
        // on one line, with or without the final newline
        let compact = text(&lf.base_line()).replacen("\"lockfile_version\":3", "\"lockfile_version\":2", 1);
        assert_eq!(LockfileFile::parse(compact.as_bytes()).unwrap().version, 2);
        assert_eq!(LockfileFile::parse(compact.trim_end().as_bytes()).unwrap().lockfile, lf);
        // never with lines after it
        let mut appended = v2.clone();
        appended.extend(b"{\"plugins\":{\"aa\":null}}\n");
        lockfile_error(&appended);
        let mut appended = compact.clone().into_bytes();
        appended.extend(b"{\"plugins\":{\"aa\":null}}\n");
        lockfile_error(&appended);
        // and version 2's own rules per entry
        let bad = text(&v2).replacen("\"manifest_size\": 812", "\"manifest_size\": \"812\"", 1);
        lockfile_error(bad.as_bytes());
    }

    #[test]
    fn other_versions_are_refused_naming_the_version() {
        let lf = state(&[entry("aa", "1.0.0", &[])]);
        let v2 = text(&v2_bytes(&lf));
        let v3 = text(&lf.base_line());
        for (doc, version) in [
            (v2.replacen("\"lockfile_version\": 2", "\"lockfile_version\": 1", 1), "1"),
            (v2.replacen("\"lockfile_version\": 2", "\"lockfile_version\": 3", 1), "3"),
            (v2.replacen("\"lockfile_version\": 2", "\"lockfile_version\": 4", 1), "4"),
            (v3.replacen("\"lockfile_version\":3", "\"lockfile_version\":4", 1), "4"),
            (v3.replacen("\"lockfile_version\":3", "\"lockfile_version\":1", 1), "1"),
            (v3.replacen("\"lockfile_version\":3", "\"lockfile_version\":\"3\"", 1), "a string"),
        ] {
            let message = lockfile_error(doc.as_bytes());
            assert!(message.contains(&format!("is {}", version)) || version == "3", "{}", message);
        }
        lockfile_error(b"{not json");
        lockfile_error(b"\xff\n");
    }

    #[test]
    fn a_reread_parses_only_the_lines_after_an_unchanged_start() {
        let one = state(&[entry("aa", "1.0.0", &[])]);
        let two = state(&[entry("aa", "1.0.0", &[]), entry("bb", "1.0.0", &[])]);
        let three = state(&[entry("bb", "1.0.0", &[])]);
        let mut first = file(&[one.clone(), two.clone()]);
        first.extend(b"{\"plu");
        let earlier = LockfileFile::parse(&first).unwrap();
        let mut now = file(&[one.clone(), two.clone(), three.clone()]);
        assert_eq!(earlier.clone().reparse(&first, &now).unwrap(), LockfileFile::parse(&now).unwrap());
        now.extend(b"{\"torn");
        let again = earlier.clone().reparse(&first, &now).unwrap();
        assert_eq!(again, LockfileFile::parse(&now).unwrap());
        assert_eq!((again.lockfile, again.change_lines), (three, 2));
        assert_eq!(earlier.clone().reparse(&first, &first).unwrap(), earlier);
        // the lines after are as strict as ever
        let mut bad_line = file(&[one.clone(), two.clone()]);
        bad_line.extend(b"{\"plugins\":{\"zz\":null}}\n");
        lockfile_error(&bad_line);
        assert_eq!(earlier.clone().reparse(&first, &bad_line).unwrap_err().class, Class::Lockfile);
        // a start that changed (here: the same length, another entry) is parsed again in full
        let swapped =
            text(&file(&[one.clone(), two.clone()])).replacen("\"aa\"", "\"cc\"", 1).replacen("aa/", "cc/", 3);
        let reread = earlier.clone().reparse(&first, swapped.as_bytes()).unwrap();
        assert!(reread.lockfile.plugins.contains_key("cc") && !reread.lockfile.plugins.contains_key("aa"));
        let broken = text(&file(&[one.clone(), two])).replacen("\"abi\":\"core\"", "\"abi\":1234567", 1);
        assert_eq!(earlier.clone().reparse(&first, broken.as_bytes()).unwrap_err().class, Class::Lockfile);
        // a version 2 parse is never continued
        let v2 = v2_bytes(&one);
        let from_v2 = LockfileFile::parse(&v2).unwrap();
        assert_eq!(from_v2.clone().reparse(&v2, &now).unwrap(), LockfileFile::parse(&now).unwrap());
    }

    #[test]
    fn a_file_beyond_64_mib_is_refused_not_cut() {
        // the bytes beyond the cap would otherwise read as an uncommitted tail
        let mut big = state(&[]).base_line();
        big.resize(MAX_LOCKFILE_BYTES as usize + 1, b' ');
        assert!(lockfile_error(&big).contains("larger than"));
        big.truncate(MAX_LOCKFILE_BYTES as usize);
        assert!(LockfileFile::parse(&big).is_ok());
    }

    #[test]
    fn a_commit_appends_only_what_changed_and_compacts_at_max_64_or_the_entries() {
        let a = entry("aa", "1.0.0", &[]);
        let one = state(std::slice::from_ref(&a));
        // no lockfile yet: a base
        assert_eq!(plan_commit(None, &one), Commit::Base(one.base_line()));
        assert_eq!(plan_commit(None, &Lockfile::default()), Commit::Nothing);
        let f = LockfileFile::parse(&one.base_line()).unwrap();
        assert_eq!(plan_commit(Some(&f), &one), Commit::Nothing);
        // only the changed entries, including one whose required_by changed
        let mut b = entry("bb", "1.0.0", &[]);
        b.required_by = vec![];
        let mut a2 = a.clone();
        a2.required_by = vec!["cc".into()];
        let c = entry("cc", "1.0.0", &["aa"]);
        let next = state(&[a2.clone(), b.clone(), c.clone()]);
        let mut unchanged_b = f.clone();
        unchanged_b.lockfile.plugins.insert("bb".into(), b.clone());
        match plan_commit(Some(&unchanged_b), &next) {
            Commit::Append { line, committed_len } => {
                assert_eq!(committed_len, unchanged_b.committed_len);
                let v = json::parse(&line).unwrap();
                let plugins = match &v {
                    Value::Obj(m) => match &m["plugins"] {
                        Value::Obj(p) => p.keys().cloned().collect::<Vec<_>>(),
                        _ => panic!(),
                    },
                    _ => panic!(),
                };
                assert_eq!(plugins, vec!["aa".to_string(), "cc".to_string()], "bb did not change");
            }
            other => panic!("{:?}", other),
        }
        // version 2: a base, never an append
        let v2 = LockfileFile::parse(&v2_bytes(&one)).unwrap();
        assert_eq!(plan_commit(Some(&v2), &next), Commit::Base(next.base_line()));
        // the threshold: max(64, E) change lines already in the file
        let with_lines = |n: usize| LockfileFile { change_lines: n, ..f.clone() };
        assert!(matches!(plan_commit(Some(&with_lines(63)), &next), Commit::Append { .. }));
        assert_eq!(plan_commit(Some(&with_lines(64)), &next), Commit::Base(next.base_line()));
        let many = state(&(0..100).map(|i| entry(&format!("plug{}", i), "1.0.0", &[])).collect::<Vec<_>>());
        assert!(matches!(plan_commit(Some(&with_lines(64)), &many), Commit::Append { .. }));
        assert!(matches!(plan_commit(Some(&with_lines(99)), &many), Commit::Append { .. }));
        assert_eq!(plan_commit(Some(&with_lines(100)), &many), Commit::Base(many.base_line()));
    }

    /// Commit `next` over the file `data` as a writer does: plan, then cut + append or replace.
    fn commit(data: &mut Vec<u8>, next: &Lockfile) -> Commit {
        let current = if data.is_empty() { None } else { Some(LockfileFile::parse(data).unwrap()) };
        let plan = plan_commit(current.as_ref(), next);
        match &plan {
            Commit::Nothing => {}
            Commit::Append { line, committed_len } => {
                data.truncate(*committed_len as usize);
                data.extend(line);
            }
            Commit::Base(base) => *data = base.clone(),
        }
        plan
    }

    #[test]
    fn commits_that_change_most_entries_keep_the_file_within_twice_the_base_plus_64_kib() {
        // 100 entries: a base under 64 KiB; 300 entries: a base over it
        for (entries, commits) in [(100, 120), (300, 40)] {
            let at = |round: usize| {
                let mut all: Vec<Entry> = (0..entries).map(|i| entry(&format!("plug{}", i), "1.0.0", &[])).collect();
                // every entry but the first changes in every commit
                for e in all.iter_mut().skip(1) {
                    e.requested = format!("^1.{}", round);
                }
                state(&all)
            };
            let mut data = Vec::new();
            let mut appends = 0;
            for round in 0..commits {
                let next = at(round);
                if let Commit::Append { .. } = commit(&mut data, &next) {
                    appends += 1;
                }
                let f = LockfileFile::parse(&data).unwrap();
                assert_eq!(f.lockfile, next);
                assert_eq!(f.base_len, next.base_line().len() as u64);
                let bound = 2 * f.base_len + MIN_COMPACTION_BYTES;
                assert!(
                    f.len <= bound,
                    "{} entries, commit {}: {} bytes, more than twice the base ({}) + 64 KiB",
                    entries,
                    round,
                    f.len,
                    f.base_len
                );
            }
            assert!(appends > 0, "{} entries: some commits still append", entries);
        }
    }

    #[test]
    fn a_commit_writes_a_base_once_the_change_lines_would_exceed_max_base_or_64_kib() {
        let next = state(&[entry("aa", "1.0.0", &[]), entry("bb", "1.0.0", &[])]);
        let change_len = |f: &LockfileFile| f.lockfile.change_line(&next).unwrap().len() as u64;
        // (change bytes already committed) + (new line) against the limit: at it appends, past it a base
        let check = |f: LockfileFile, limit: u64| {
            let room = limit - change_len(&f);
            let with =
                |bytes: u64| LockfileFile { committed_len: f.base_len + bytes, len: f.base_len + bytes, ..f.clone() };
            assert!(matches!(plan_commit(Some(&with(room)), &next), Commit::Append { .. }));
            assert_eq!(plan_commit(Some(&with(room + 1)), &next), Commit::Base(next.base_line()));
        };
        // a small base: the limit is 64 KiB
        let small = LockfileFile::parse(&state(&[entry("aa", "1.0.0", &[])]).base_line()).unwrap();
        assert!(small.base_len < MIN_COMPACTION_BYTES);
        check(small, MIN_COMPACTION_BYTES);
        // a base over 64 KiB: the limit is the base line's length
        let big_state = state(&(0..200).map(|i| entry(&format!("plug{}", i), "1.0.0", &[])).collect::<Vec<_>>());
        let big = LockfileFile::parse(&big_state.base_line()).unwrap();
        assert!(big.base_len > MIN_COMPACTION_BYTES);
        let limit = big.base_len;
        check(big, limit);
    }
}
