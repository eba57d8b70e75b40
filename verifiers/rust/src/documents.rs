//! The format-2 documents (FORMAT 2 sections 1-5): the signed top document `registry.json`,
//! the hashed-prefix tree nodes, the plugin documents. Strict parsing: bytes in, a model
//! out, or an error with its conformance class (`malformed`, `unsupported-format`,
//! `path-traversal`, `mix-and-match` for a node that is not the one its position asks for,
//! `wrong-software` for a plugin document of another plugin).

use crate::error::{Class, Error};
use crate::json::{self, Obj, Value, MAX_INT};
use crate::names;
use std::collections::BTreeMap;

pub const FORMAT_VERSION: i64 = 2;
pub const MAX_TOP_BYTES: usize = 64 * 1024;
pub const MAX_META_BYTES: u64 = 64 * 1024 * 1024;
pub const MAX_TREE_DEPTH: usize = 64;
pub const NODE_TYPE: &str = "registry-node";
pub const PLUGIN_TYPE: &str = "registry-plugin";

/// A document below the top, by content: at most `size` bytes whose SHA-256 is `sha256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub sha256: String,
    pub size: u64,
}

impl Pin {
    /// Where the document lives: derived from the digest only.
    pub fn path(&self) -> String {
        format!("meta/{}/{}.json", &self.sha256[..2], self.sha256)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl FileRef {
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopDocument {
    pub version: i64,
    pub generated_at: i64,
    pub expires_at: i64,
    pub root_version: i64,
    pub registry_name: String,
    pub base_url: String,
    pub host_name: String,
    pub host_versions: String,
    pub tree: Pin,
    pub catalog: Pin,
    pub plugin_count: i64,
    pub release_count: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Branch(BTreeMap<char, Pin>),
    Leaf(BTreeMap<String, Pin>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub name: String,
    pub version: String,
    pub abi: String,
    pub host: Option<String>,
    pub exports: Vec<String>,
    pub permissions: Vec<String>,
    /// fuel, memory (bytes), wall_time_ms: effective limits (declared over registry defaults)
    pub limits: (i64, i64, i64),
    pub dependencies: BTreeMap<String, String>,
    pub manifest: FileRef,
    pub wasm: FileRef,
    pub signers: Vec<String>,
    pub published_at: String,
    pub yanked: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginDocument {
    pub name: String,
    pub versions: BTreeMap<String, Release>,
}

fn malformed(doc: &str, e: String) -> Error {
    Error::new(
        Class::Malformed,
        format!("{} is malformed: {}; rebuild the registry with a registry-tool that writes format 2", doc, e),
    )
}

/// Strict JSON, an object, and `format_version` 2 when present (checked first).
fn load(data: &[u8], doc: &str) -> Result<Value, Error> {
    let v = json::parse(data).map_err(|e| malformed(doc, e))?;
    let map = match &v {
        Value::Obj(m) => m,
        other => return Err(malformed(doc, format!("the document is {}, not an object", other.kind()))),
    };
    if let Some(fv) = map.get("format_version") {
        // read as a JSON integer first (conformance decisions 6-7): 2.0, 2e0, "2" are malformed
        let got = match fv {
            Value::Int(n) => *n,
            other => return Err(malformed(doc, format!("format_version is {}, not an integer", other.kind()))),
        };
        if got != FORMAT_VERSION {
            return Err(Error::new(
                Class::UnsupportedFormat,
                format!("{} has format_version {}; this verifier reads format_version 2 only; use a verifier that supports this registry's format", doc, got),
            ));
        }
    }
    Ok(v)
}

fn str_max<'a>(o: &Obj<'a>, key: &str, max: usize) -> Result<&'a str, String> {
    let s = o.str(key)?;
    if s.chars().count() > max {
        return Err(format!("{}.{} is longer than {} characters", o.what, key, max));
    }
    Ok(s)
}

fn int_range(o: &Obj, key: &str, min: i64, max: i64) -> Result<i64, String> {
    let n = o.int(key)?;
    if n < min || n > max {
        return Err(format!("{}.{} must be an integer in [{}, {}]", o.what, key, min, max));
    }
    Ok(n)
}

fn time(o: &Obj, key: &str) -> Result<i64, String> {
    let s = o.str(key)?;
    names::parse_time(s).ok_or_else(|| format!("{}.{} {:?} is not a time written YYYY-MM-DDTHH:MM:SSZ", o.what, key, s))
}

fn parse_pin(v: &Value, what: &str) -> Result<Pin, String> {
    let o = Obj::new(v, what, &["sha256", "size"], &[])?;
    let sha = o.str("sha256")?;
    if !names::is_sha256_hex(sha) {
        return Err(format!("{}.sha256 must be 64 lower-case hex digits", what));
    }
    Ok(Pin { sha256: sha.to_owned(), size: int_range(&o, "size", 1, MAX_META_BYTES as i64)? as u64 })
}

fn strs(o: &Obj, key: &str, check: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    o.str_list(key, false, |s| s.chars().count() <= 65536 && check(s))
}

impl TopDocument {
    /// Parse `registry.json` (its signatures are verified over these bytes first).
    pub fn parse(data: &[u8]) -> Result<TopDocument, Error> {
        const DOC: &str = "registry.json";
        if data.len() > MAX_TOP_BYTES {
            return Err(malformed(DOC, format!("{} bytes, above the 64 KiB cap", data.len())));
        }
        let v = load(data, DOC)?;
        TopDocument::from_value(&v).map_err(|e| malformed(DOC, e))
    }

    fn from_value(v: &Value) -> Result<TopDocument, String> {
        let o = Obj::new(
            v,
            "registry.json",
            &[
                "format_version",
                "version",
                "generated_at",
                "expires_at",
                "root_version",
                "registry",
                "tree",
                "catalog",
                "counts",
            ],
            &[],
        )?;
        let reg = Obj::new(o.value("registry")?, "registry", &["name", "description", "base_url", "host"], &[])?;
        let host = Obj::new(reg.value("host")?, "registry.host", &["name", "versions"], &[])?;
        let counts = Obj::new(o.value("counts")?, "counts", &["plugins", "releases"], &[])?;
        let doc = TopDocument {
            version: int_range(&o, "version", 1, MAX_INT)?,
            generated_at: time(&o, "generated_at")?,
            expires_at: time(&o, "expires_at")?,
            root_version: int_range(&o, "root_version", 1, MAX_INT)?,
            registry_name: str_max(&reg, "name", 128)?.to_owned(),
            base_url: {
                str_max(&reg, "description", 4096)?;
                str_max(&reg, "base_url", 2048)?.to_owned()
            },
            host_name: str_max(&host, "name", 128)?.to_owned(),
            host_versions: str_max(&host, "versions", 256)?.to_owned(),
            tree: parse_pin(o.value("tree")?, "tree")?,
            catalog: parse_pin(o.value("catalog")?, "catalog")?,
            plugin_count: int_range(&counts, "plugins", 0, MAX_INT)?,
            release_count: int_range(&counts, "releases", 0, MAX_INT)?,
        };
        if doc.expires_at <= doc.generated_at {
            return Err("expires_at must be after generated_at".into());
        }
        Ok(doc)
    }
}

/// `key(name)`: lower-case hex SHA-256 of the UTF-8 name.
pub fn plugin_key(name: &str) -> String {
    names::sha256_hex(name.as_bytes())
}

impl Node {
    /// Parse a tree node found at `expected_prefix` (the verifier's position in the walk).
    pub fn parse(data: &[u8], expected_prefix: &str) -> Result<Node, Error> {
        let doc = format!("tree node {:?}", expected_prefix);
        let v = load(data, &doc)?;
        let mix = |e: String| Error::new(Class::MixAndMatch, format!("mix-and-match attack: {}: {}", doc, e));
        let branch = matches!(&v, Value::Obj(m) if m.contains_key("children"));
        let body = if branch { "children" } else { "plugins" };
        let o =
            Obj::new(&v, &doc, &["_type", "format_version", "prefix", body], &[]).map_err(|e| malformed(&doc, e))?;
        let m = |e: String| malformed(&doc, e);
        if o.str("_type").map_err(m)? != NODE_TYPE {
            return Err(m(format!("_type must be {:?}", NODE_TYPE)));
        }
        let prefix = str_max(&o, "prefix", MAX_TREE_DEPTH).map_err(m)?;
        if prefix != expected_prefix {
            return Err(mix(format!("its prefix is {:?} where the tree walk expects {:?}", prefix, expected_prefix)));
        }
        if branch {
            let kids = o.obj("children").map_err(m)?;
            if prefix.len() >= MAX_TREE_DEPTH {
                return Err(m("the tree is deeper than 64 levels".into()));
            }
            let mut children = BTreeMap::new();
            for (digit, pin) in kids {
                let c = digit.chars().next().filter(|c| digit.len() == 1 && matches!(c, '0'..='9' | 'a'..='f'));
                let c = c.ok_or_else(|| m(format!("children key {:?} is not one lower-case hex digit", digit)))?;
                children.insert(c, parse_pin(pin, &format!("children.{}", digit)).map_err(m)?);
            }
            Ok(Node::Branch(children))
        } else {
            let mut plugins = BTreeMap::new();
            for (name, pin) in o.obj("plugins").map_err(m)? {
                if !names::is_plugin_name(name) {
                    return Err(mix(format!("it lists {:?}, which is not a plugin name", name)));
                }
                if !plugin_key(name).starts_with(prefix) {
                    return Err(mix(format!("it holds {:?}, whose key is outside prefix {:?}", name, prefix)));
                }
                plugins.insert(name.clone(), parse_pin(pin, &format!("plugins.{}", name)).map_err(m)?);
            }
            Ok(Node::Leaf(plugins))
        }
    }
}

const RELEASE_FIELDS: &[&str] = &[
    "description",
    "license",
    "abi",
    "host",
    "exports",
    "permissions",
    "limits",
    "dependencies",
    "manifest",
    "wasm",
    "signers",
    "published_at",
    "yanked",
    "smoke",
    "authors",
    "keywords",
    "homepage",
    "repository",
];

enum RefError {
    Malformed(String),
    Traversal(String),
}

fn file_ref(v: &Value, what: &str, name: &str, version: &str, manifest: bool) -> Result<FileRef, RefError> {
    let o = Obj::new(v, what, &["path", "sha256", "size"], &[]).map_err(RefError::Malformed)?;
    let path = str_max(&o, "path", 512).map_err(RefError::Malformed)?;
    let prefix = format!("plugins/{}/{}/", name, version);
    let file = path.strip_prefix(&prefix).unwrap_or("");
    if (manifest && file != "plugin.toml") || !names::is_file_name(file) {
        return Err(RefError::Traversal(format!(
            "{}.path {:?} is not {}{}",
            what,
            path,
            prefix,
            if manifest { "plugin.toml" } else { "<file name>" }
        )));
    }
    let sha = o.str("sha256").map_err(RefError::Malformed)?;
    if !names::is_sha256_hex(sha) {
        return Err(RefError::Malformed(format!("{}.sha256 must be 64 lower-case hex digits", what)));
    }
    let size = int_range(&o, "size", 1, MAX_INT).map_err(RefError::Malformed)? as u64;
    Ok(FileRef { path: path.to_owned(), sha256: sha.to_owned(), size })
}

fn opt_str_value(o: &Obj, key: &str) -> Result<Option<String>, String> {
    match o.value(key)? {
        Value::Null => Ok(None),
        Value::Str(s) if s.chars().count() <= 65536 => Ok(Some(s.clone())),
        _ => Err(format!("{}.{} must be null or a string", o.what, key)),
    }
}

fn release(doc: &str, name: &str, version: &str, v: &Value) -> Result<Release, Error> {
    let what = format!("versions.{}", version);
    let m = |e: String| malformed(doc, e);
    let o = Obj::new(v, &what, RELEASE_FIELDS, &[]).map_err(m)?;
    let limits =
        Obj::new(o.value("limits").map_err(m)?, &format!("{}.limits", what), &["fuel", "memory", "wall_time_ms"], &[])
            .map_err(m)?;
    let limit = |key: &str| int_range(&limits, key, 0, MAX_INT).map_err(m);
    let limits = (limit("fuel")?, limit("memory")?, limit("wall_time_ms")?);
    let mut dependencies = BTreeMap::new();
    for (dep, spec) in o.obj("dependencies").map_err(m)? {
        if !names::is_plugin_name(dep) {
            return Err(m(format!("{}.dependencies names {:?}, which is not a plugin name", what, dep)));
        }
        let text = spec.as_str().filter(|s| s.chars().count() <= 256);
        let text =
            text.ok_or_else(|| m(format!("{}.dependencies.{} must be a string of at most 256 characters", what, dep)))?;
        crate::range::Range::parse(text).map_err(|e| m(format!("{}.dependencies.{}: {}", what, dep, e)))?;
        dependencies.insert(dep.clone(), text.to_owned());
    }
    let yanked = match o.value("yanked").map_err(m)? {
        Value::Null => None,
        y => {
            let yo = Obj::new(y, &format!("{}.yanked", what), &["reason"], &[]).map_err(m)?;
            Some(str_max(&yo, "reason", 65536).map_err(m)?.to_owned())
        }
    };
    match o.value("smoke").map_err(m)? {
        Value::Null => {}
        Value::Arr(items) => {
            for (i, s) in items.iter().enumerate() {
                let so =
                    Obj::new(s, &format!("{}.smoke[{}]", what, i), &["name", "fuel", "peak_memory"], &[]).map_err(m)?;
                str_max(&so, "name", 65536).map_err(m)?;
                for key in ["fuel", "peak_memory"] {
                    if so.value(key).map_err(m)? != &Value::Null {
                        int_range(&so, key, 0, MAX_INT).map_err(m)?;
                    }
                }
            }
        }
        _ => return Err(m(format!("{}.smoke must be null or an array", what))),
    }
    str_max(&o, "description", 65536).map_err(m)?;
    str_max(&o, "license", 256).map_err(m)?;
    let abi = str_max(&o, "abi", 64).map_err(m)?.to_owned();
    let host = opt_str_value(&o, "host").map_err(m)?;
    let exports = strs(&o, "exports", |_| true).map_err(m)?;
    let permissions = strs(&o, "permissions", names::is_permission).map_err(m)?;
    let to_err = |e: RefError| match e {
        RefError::Malformed(s) => malformed(doc, s),
        RefError::Traversal(s) => Error::new(Class::PathTraversal, format!("path traversal: {}: {}", doc, s)),
    };
    let manifest = file_ref(o.value("manifest").map_err(m)?, &format!("{}.manifest", what), name, version, true)
        .map_err(to_err)?;
    let wasm =
        file_ref(o.value("wasm").map_err(m)?, &format!("{}.wasm", what), name, version, false).map_err(to_err)?;
    let signers = strs(&o, "signers", names::is_key_id).map_err(m)?;
    let published_at = o.str("published_at").map_err(m)?;
    if names::parse_time(published_at).is_none() {
        return Err(m(format!("{}.published_at must be a time written YYYY-MM-DDTHH:MM:SSZ", what)));
    }
    strs(&o, "authors", |_| true).map_err(m)?;
    strs(&o, "keywords", |_| true).map_err(m)?;
    opt_str_value(&o, "homepage").map_err(m)?;
    opt_str_value(&o, "repository").map_err(m)?;
    Ok(Release {
        name: name.to_owned(),
        version: version.to_owned(),
        abi,
        host,
        exports,
        permissions,
        limits,
        dependencies,
        manifest,
        wasm,
        signers,
        published_at: published_at.to_owned(),
        yanked,
    })
}

impl PluginDocument {
    /// Parse the document the tree pins for `expected_name` (another name: `wrong-software`).
    pub fn parse(data: &[u8], expected_name: &str) -> Result<PluginDocument, Error> {
        let doc = format!("plugin document of {}", expected_name);
        let v = load(data, &doc)?;
        let m = |e: String| malformed(&doc, e);
        let o = Obj::new(&v, &doc, &["_type", "format_version", "name", "versions"], &[]).map_err(m)?;
        if o.str("_type").map_err(m)? != PLUGIN_TYPE {
            return Err(m(format!("_type must be {:?}", PLUGIN_TYPE)));
        }
        let name = str_max(&o, "name", 64).map_err(m)?;
        if !names::is_plugin_name(name) {
            return Err(m(format!("name {:?} is not a plugin name", name)));
        }
        if name != expected_name {
            return Err(Error::new(
                Class::WrongSoftware,
                format!("wrong software attack: the tree pins a document of plugin {:?} for {:?}", name, expected_name),
            ));
        }
        let versions = o.obj("versions").map_err(m)?;
        if versions.is_empty() {
            return Err(m("versions must be a non-empty object".into()));
        }
        let mut out = BTreeMap::new();
        for (version, entry) in versions {
            if !names::is_version(version) {
                return Err(m(format!("versions key {:?} is not a strict semver without '+'", version)));
            }
            out.insert(version.clone(), release(&doc, name, version, entry)?);
        }
        Ok(PluginDocument { name: name.to_owned(), versions: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2.0, 2e0 and 20e-1 are no JSON integers (decisions 6-7): malformed, like any other
    /// non-integer; only an integer other than 2 is unsupported-format.
    #[test]
    fn format_version_is_read_as_an_integer_first() {
        let node = |fv: &str| {
            let text = format!(r#"{{"_type":"registry-node","format_version":{},"prefix":"","children":{{}}}}"#, fv);
            Node::parse(text.as_bytes(), "").map(|_| ()).map_err(|e| e.class)
        };
        assert_eq!(node("2"), Ok(()));
        for fv in
            ["2.0", "2e0", "20e-1", "3.5", "\"2\"", "true", "null", "1e400", "18446744073709551617", "9007199254740993"]
        {
            assert_eq!(node(fv), Err(Class::Malformed), "format_version {}", fv);
        }
        for fv in ["3", "1", "-2"] {
            assert_eq!(node(fv), Err(Class::UnsupportedFormat), "format_version {}", fv);
        }
    }
}
