//! Lockfile version 2 (`<plugin dir>/registry-tool.lock.json`, FORMAT 2 section 8), shared
//! byte for byte with the Python and Go clients: Python's `json.dumps(doc, indent=2,
//! sort_keys=True) + "\n"`. Readers refuse an unknown `lockfile_version` and any entry with
//! a wrong type or an unsafe path (`lockfile`), never crash.

use crate::error::{Class, Error};
use crate::json::{self, Obj, Value, MAX_INT};
use crate::names;
use std::collections::BTreeMap;

pub const LOCKFILE: &str = "registry-tool.lock.json";
pub const LOCKFILE_VERSION: i64 = 2;
pub const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lockfile {
    pub plugins: BTreeMap<String, Entry>,
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

impl Lockfile {
    pub fn parse(data: &[u8]) -> Result<Lockfile, Error> {
        let v = json::parse(data).map_err(|e| bad(format!("it {}", e)))?;
        let top = Obj::new(&v, "lockfile", &["lockfile_version", "plugins"], &[]).map_err(bad)?;
        match top.value("lockfile_version").map_err(bad)? {
            Value::Int(LOCKFILE_VERSION) => {}
            other => return Err(bad(format!("lockfile_version is {:?}, this verifier reads version 2 only", other))),
        }
        let mut plugins = BTreeMap::new();
        for (name, raw) in top.obj("plugins").map_err(bad)? {
            if !names::is_plugin_name(name) {
                return Err(bad(format!("{:?} is not a plugin name", name)));
            }
            let e = Obj::new(raw, &format!("plugins.{}", name), FIELDS, &[]).map_err(bad)?;
            let version = e.str("version").map_err(bad)?;
            if !names::is_version(version) {
                return Err(bad(format!("plugins.{}.version {:?} is not a strict semver", name, version)));
            }
            let path = |key: &str| -> Result<String, Error> {
                let p = e.str(key).map_err(bad)?;
                if !rel_path_ok(p, name, version) {
                    return Err(bad(format!(
                        "plugins.{}.{} {:?} is not {}/{}/<file name>",
                        name, key, p, name, version
                    )));
                }
                Ok(p.to_owned())
            };
            let sha = |key: &str| -> Result<String, Error> {
                let s = e.str(key).map_err(bad)?;
                if !names::is_sha256_hex(s) {
                    return Err(bad(format!("plugins.{}.{} is not 64 lower-case hex digits", name, key)));
                }
                Ok(s.to_owned())
            };
            let size = |key: &str| -> Result<u64, Error> {
                let n = e.int(key).map_err(bad)?;
                if !(0..=MAX_INT).contains(&n) {
                    return Err(bad(format!("plugins.{}.{} is not a size", name, key)));
                }
                Ok(n as u64)
            };
            let mut dependencies = BTreeMap::new();
            for (dep, range) in e.obj("dependencies").map_err(bad)? {
                let r = range
                    .as_str()
                    .ok_or_else(|| bad(format!("plugins.{}.dependencies.{} is not a string", name, dep)))?;
                if !names::is_plugin_name(dep) {
                    return Err(bad(format!("plugins.{}.dependencies names {:?}", name, dep)));
                }
                dependencies.insert(dep.clone(), r.to_owned());
            }
            let signatures = e.str_list("signatures", false, |_| true).map_err(bad)?;
            for s in &signatures {
                if !rel_path_ok(s, name, version) {
                    return Err(bad(format!(
                        "plugins.{}.signatures holds {:?}, not {}/{}/<file name>",
                        name, s, name, version
                    )));
                }
            }
            let published_at = e.str("published_at").map_err(bad)?;
            if names::parse_time(published_at).is_none() {
                return Err(bad(format!("plugins.{}.published_at is not a time", name)));
            }
            plugins.insert(
                name.clone(),
                Entry {
                    name: name.clone(),
                    version: version.to_owned(),
                    registry: e.str("registry").map_err(bad)?.to_owned(),
                    requested: e.str("requested").map_err(bad)?.to_owned(),
                    required_by: e.str_list("required_by", false, names::is_plugin_name).map_err(bad)?,
                    dependencies,
                    abi: e.str("abi").map_err(bad)?.to_owned(),
                    manifest: path("manifest")?,
                    manifest_sha256: sha("manifest_sha256")?,
                    manifest_size: size("manifest_size")?,
                    wasm: path("wasm")?,
                    wasm_sha256: sha("wasm_sha256")?,
                    wasm_size: size("wasm_size")?,
                    signatures,
                    signers: e.str_list("signers", false, names::is_key_id).map_err(bad)?,
                    permissions: e.str_list("permissions", false, names::is_permission).map_err(bad)?,
                    published_at: published_at.to_owned(),
                },
            );
        }
        Ok(Lockfile { plugins })
    }

    pub fn to_value(&self) -> Value {
        let strs = |v: &[String]| Value::Arr(v.iter().map(|s| Value::Str(s.clone())).collect());
        let mut plugins = BTreeMap::new();
        for (name, e) in &self.plugins {
            let mut m = BTreeMap::new();
            let mut put = |k: &str, v: Value| {
                m.insert(k.to_owned(), v);
            };
            put("version", Value::Str(e.version.clone()));
            put("registry", Value::Str(e.registry.clone()));
            put("requested", Value::Str(e.requested.clone()));
            put("required_by", strs(&e.required_by));
            put(
                "dependencies",
                Value::Obj(e.dependencies.iter().map(|(k, v)| (k.clone(), Value::Str(v.clone()))).collect()),
            );
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
            plugins.insert(name.clone(), Value::Obj(m));
        }
        let mut top = BTreeMap::new();
        top.insert("lockfile_version".to_owned(), Value::Int(LOCKFILE_VERSION));
        top.insert("plugins".to_owned(), Value::Obj(plugins));
        Value::Obj(top)
    }

    /// The exact bytes every implementation writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = json::to_python_pretty(&self.to_value());
        text.push('\n');
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lockfile {
        let mut lf = Lockfile::default();
        lf.plugins.insert(
            "validate_email".into(),
            Entry {
                name: "validate_email".into(),
                version: "1.0.0".into(),
                registry: "https://example.org/plugins/".into(),
                requested: "^1.0".into(),
                required_by: vec![],
                dependencies: BTreeMap::new(),
                abi: "core".into(),
                manifest: "validate_email/1.0.0/plugin.toml".into(),
                manifest_sha256: "a".repeat(64),
                manifest_size: 812,
                wasm: "validate_email/1.0.0/validate_email.wasm".into(),
                wasm_sha256: "b".repeat(64),
                wasm_size: 1234,
                signatures: vec!["validate_email/1.0.0/plugin.toml.minisig".into()],
                signers: vec!["1B2C3D4E5F607182".into()],
                permissions: vec!["keys".into()],
                published_at: "2026-11-21T12:00:00Z".into(),
            },
        );
        lf
    }

    #[test]
    fn round_trips_and_writes_python_json_dumps_bytes() {
        let lf = sample();
        let bytes = lf.to_bytes();
        assert_eq!(Lockfile::parse(&bytes).unwrap(), lf);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            "{\n  \"lockfile_version\": 2,\n  \"plugins\": {\n    \"validate_email\": {\n      \"abi\": \"core\",\n"
        ));
        assert!(text.ends_with("}\n}\n"));
        assert!(text.contains("\"required_by\": [],\n"));
    }

    #[test]
    fn unknown_versions_wrong_types_and_unsafe_paths_are_lockfile_errors() {
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        for (from, to) in [
            ("\"lockfile_version\": 2", "\"lockfile_version\": 3"),
            ("\"manifest_size\": 812", "\"manifest_size\": \"812\""),
            ("validate_email/1.0.0/validate_email.wasm", "validate_email/1.0.0/../../x.wasm"),
            ("validate_email/1.0.0/validate_email.wasm", "/etc/passwd"),
            ("\"signers\": [", "\"signers\": 1, \"x\": ["),
            ("\"abi\": \"core\"", "\"abi\": null"),
        ] {
            let bad = text.replacen(from, to, 1);
            assert_ne!(bad, text);
            assert_eq!(Lockfile::parse(bad.as_bytes()).unwrap_err().class, Class::Lockfile, "{}", to);
        }
        assert_eq!(Lockfile::parse(b"[]").unwrap_err().class, Class::Lockfile);
        assert_eq!(Lockfile::parse(b"\xff").unwrap_err().class, Class::Lockfile);
    }
}
