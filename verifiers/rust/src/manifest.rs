//! The facts a verifier takes from a maintainer-signed `plugin.toml` (docs/manifest.md). The
//! signed manifest, not the registry's plugin document, decides a release's identity,
//! artifact pin, ABI, host range, exports, permissions and dependencies.

use std::collections::{BTreeMap, BTreeSet};
use toml::Value as Toml;

/// A manifest larger than this is refused before parsing (the build's own cap is far lower).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFacts {
    pub name: String,
    pub version: String,
    pub abi: Option<String>,
    /// `[compatibility] host`, or `>=<min_host_version>`; None when neither is given.
    pub host: Option<String>,
    pub artifact_file: String,
    pub artifact_sha256: String,
    pub artifact_size: u64,
    pub exports: Vec<String>,
    /// permission names set to true
    pub permissions: BTreeSet<String>,
    pub dependencies: BTreeMap<String, String>,
}

fn parse_toml(data: &[u8]) -> Result<Toml, String> {
    if data.len() > MAX_MANIFEST_BYTES {
        return Err("plugin.toml is larger than 1 MiB".into());
    }
    let text = std::str::from_utf8(data).map_err(|_| "plugin.toml is not UTF-8".to_string())?;
    text.parse::<Toml>().map_err(|e| format!("plugin.toml is not valid TOML ({})", e))
}

fn table<'a>(doc: &'a Toml, key: &str) -> Result<Option<&'a toml::value::Table>, String> {
    match doc.get(key) {
        None => Ok(None),
        Some(Toml::Table(t)) => Ok(Some(t)),
        Some(_) => Err(format!("plugin.toml [{}] is not a table", key)),
    }
}

fn string(t: &toml::value::Table, table: &str, key: &str) -> Result<String, String> {
    match t.get(key) {
        Some(Toml::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("plugin.toml {}.{} is not a string", table, key)),
        None => Err(format!("plugin.toml lacks {}.{}", table, key)),
    }
}

fn opt_string(t: &toml::value::Table, table: &str, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(_) => string(t, table, key).map(Some),
    }
}

/// `[<table>] name` and `version` (both strings) of a plugin.toml or yank.toml.
pub fn name_and_version(data: &[u8], table_name: &str) -> Result<(String, String), String> {
    let doc = parse_toml(data)?;
    let t = table(&doc, table_name)?.ok_or_else(|| format!("the file lacks a [{}] table", table_name))?;
    Ok((string(t, table_name, "name")?, string(t, table_name, "version")?))
}

impl ManifestFacts {
    pub fn parse(data: &[u8]) -> Result<ManifestFacts, String> {
        let doc = parse_toml(data)?;
        let plugin = table(&doc, "plugin")?.ok_or("plugin.toml lacks [plugin]")?;
        let artifact = table(&doc, "artifact")?.ok_or("plugin.toml lacks [artifact]")?;
        let mut host = match table(&doc, "compatibility")? {
            Some(c) => opt_string(c, "compatibility", "host")?,
            None => None,
        };
        if host.is_none() {
            host = opt_string(plugin, "plugin", "min_host_version")?.map(|v| format!(">={}", v));
        }
        let size = match artifact.get("size") {
            Some(Toml::Integer(n)) if *n >= 0 => *n as u64,
            _ => return Err("plugin.toml artifact.size is not a non-negative integer".into()),
        };
        let exports = match table(&doc, "exports")? {
            None => Vec::new(),
            Some(e) => match e.get("functions") {
                None => Vec::new(),
                Some(Toml::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or("plugin.toml exports.functions has a non-string"))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("plugin.toml exports.functions is not an array".into()),
            },
        };
        let mut permissions = BTreeSet::new();
        if let Some(p) = table(&doc, "permissions")? {
            for (k, v) in p {
                match v {
                    Toml::Boolean(true) => {
                        permissions.insert(k.clone());
                    }
                    Toml::Boolean(false) => {}
                    _ => return Err(format!("plugin.toml permissions.{} is not a boolean", k)),
                }
            }
        }
        let mut dependencies = BTreeMap::new();
        if let Some(d) = table(&doc, "dependencies")? {
            for (k, v) in d {
                let range = v.as_str().ok_or_else(|| format!("plugin.toml dependencies.{} is not a string", k))?;
                dependencies.insert(k.clone(), range.to_owned());
            }
        }
        Ok(ManifestFacts {
            name: string(plugin, "plugin", "name")?,
            version: string(plugin, "plugin", "version")?,
            abi: opt_string(plugin, "plugin", "abi")?,
            host,
            artifact_file: string(artifact, "artifact", "file")?,
            artifact_sha256: string(artifact, "artifact", "sha256")?.to_ascii_lowercase(),
            artifact_size: size,
            exports,
            permissions,
            dependencies,
        })
    }
}
