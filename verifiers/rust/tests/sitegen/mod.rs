//! A format-2 site generator for tests and the benchmark: keys from fixed seeds, minisign
//! signatures on ed25519-dalek, canonical JSON, a hashed-prefix tree with leaves of at most
//! 64 plugins (the Python build's shape). Plugins are `plugin-00000`, `plugin-00001`, ...,
//! versions `1.0.0` ... `1.0.<versions-1>`; every module is distinct.
#![allow(dead_code)]

use base64::Engine;
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey};
use registry_verifier::json::Value;
use registry_verifier::names;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::Path;

/// The time the generated registry.json is current at.
pub const NOW: &str = "2026-11-27T12:00:00Z";
const WASM_PAYLOAD: usize = 16 * 1024;

struct Key {
    sk: SigningKey,
    keynum: [u8; 8],
}

impl Key {
    fn new(label: &str) -> Key {
        let seed: [u8; 32] = Sha256::digest(format!("registry-verifier bench {}", label).as_bytes()).into();
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&Sha256::digest(seed)[..8]);
        Key { sk: SigningKey::from_bytes(&seed), keynum }
    }
    fn id(&self) -> String {
        registry_verifier::minisign::key_id(&self.keynum)
    }
    fn public_line(&self) -> String {
        let mut blob = b"Ed".to_vec();
        blob.extend_from_slice(&self.keynum);
        blob.extend_from_slice(self.sk.verifying_key().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(blob)
    }
    /// A minisign (prehashed ED) signature file.
    fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        let sig = self.sk.sign(&Blake2b512::digest(data)).to_bytes();
        let mut blob = b"ED".to_vec();
        blob.extend_from_slice(&self.keynum);
        blob.extend_from_slice(&sig);
        let mut signed = sig.to_vec();
        signed.extend_from_slice(trusted_comment.as_bytes());
        let global = self.sk.sign(&signed).to_bytes();
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "untrusted comment: signature\n{}\ntrusted comment: {}\n{}\n",
            b64.encode(blob),
            trusted_comment,
            b64.encode(global)
        )
    }
}

/// Canonical JSON as the build writes it (sorted keys, compact, one trailing newline; ASCII here).
fn canonical(v: &Value) -> Vec<u8> {
    fn write(out: &mut String, v: &Value) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(f) => out.push_str(&f.to_string()),
            Value::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Value::Arr(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, x);
                }
                out.push(']');
            }
            Value::Obj(m) => {
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    write(out, x);
                }
                out.push('}');
            }
        }
    }
    let mut s = String::new();
    write(&mut s, v);
    s.push('\n');
    s.into_bytes()
}

fn obj(items: Vec<(&str, Value)>) -> Value {
    Value::Obj(items.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}
fn s(x: &str) -> Value {
    Value::Str(x.to_owned())
}
fn pin_of(data: &[u8]) -> Value {
    obj(vec![("sha256", s(&names::sha256_hex(data))), ("size", Value::Int(data.len() as i64))])
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn write_meta(site: &Path, data: &[u8]) -> Value {
    let sha = names::sha256_hex(data);
    write(&site.join(format!("meta/{}/{}.json", &sha[..2], sha)), data);
    pin_of(data)
}

/// A core module with a custom section making each release's bytes distinct.
fn module(i: usize) -> Vec<u8> {
    let mut payload = b"\x05bench".to_vec();
    payload.extend_from_slice(&(i as u64).to_le_bytes());
    payload.resize(WASM_PAYLOAD, 0);
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.push(0);
    let mut n = payload.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            m.push(byte);
            break;
        }
        m.push(byte | 0x80);
    }
    m.extend_from_slice(&payload);
    m
}

fn node(site: &Path, prefix: &str, items: &[(String, String, Value)]) -> Value {
    let doc = if items.len() <= 64 {
        let plugins = items.iter().map(|(_, name, pin)| (name.clone(), pin.clone())).collect();
        obj(vec![
            ("_type", s("registry-node")),
            ("format_version", Value::Int(2)),
            ("prefix", s(prefix)),
            ("plugins", Value::Obj(plugins)),
        ])
    } else {
        let mut groups: BTreeMap<char, Vec<(String, String, Value)>> = BTreeMap::new();
        for item in items {
            groups.entry(item.0.as_bytes()[prefix.len()] as char).or_default().push(item.clone());
        }
        let children =
            groups.iter().map(|(d, g)| (d.to_string(), node(site, &format!("{}{}", prefix, d), g))).collect();
        obj(vec![
            ("_type", s("registry-node")),
            ("format_version", Value::Int(2)),
            ("prefix", s(prefix)),
            ("children", Value::Obj(children)),
        ])
    };
    write_meta(site, &canonical(&doc))
}

/// A signed format-2 site of `plugins` x `versions` releases in `site`. `dependencies`: (from,
/// to, range): every release of plugin number `from` depends on plugin number `to` at `range`.
pub fn generate(site: &Path, plugins: usize, versions: usize, dependencies: &[(usize, usize, &str)]) {
    generate_with_permissions(site, plugins, versions, dependencies, &[])
}

/// As `generate`, and every release of plugin number `p` declares the permissions `(p, names)`
/// lists (sorted, e.g. `&[(1, &["keys"])]`).
pub fn generate_with_permissions(
    site: &Path,
    plugins: usize,
    versions: usize,
    dependencies: &[(usize, usize, &str)],
    permissions: &[(usize, &[&str])],
) {
    generate_site(site, &vec![versions; plugins], dependencies, permissions)
}

/// A site where plugin number `p` has `versions[p]` releases (`1.0.0` ... `1.0.<versions[p]-1>`).
/// `dependencies`: (from, to, range) as in `generate`, except that `{v}` in a range is replaced,
/// per release of `from`, by that release's last version number (`>=1.0.{v}`: release `1.0.3`
/// needs `>=1.0.3`).
pub fn generate_graph(site: &Path, versions: &[usize], dependencies: &[(usize, usize, &str)]) {
    generate_site(site, versions, dependencies, &[])
}

fn generate_site(
    site: &Path,
    versions_of: &[usize],
    dependencies: &[(usize, usize, &str)],
    permissions: &[(usize, &[&str])],
) {
    let plugins = versions_of.len();
    let releases: usize = versions_of.iter().sum();
    let (root_key, index_key, maint) = (Key::new("root"), Key::new("index"), Key::new("maintainer"));
    let keys = [&root_key, &index_key, &maint]
        .iter()
        .map(|k| (k.id(), obj(vec![("public_key", s(&k.public_line()))])))
        .collect();
    let role = |k: &Key| obj(vec![("keyids", Value::Arr(vec![s(&k.id())])), ("threshold", Value::Int(1))]);
    let root = obj(vec![
        ("_type", s("registry-root")),
        ("spec_version", Value::Int(1)),
        ("registry", s("bench")),
        ("version", Value::Int(1)),
        ("expires", s("2027-11-27T00:00:00Z")),
        ("keys", Value::Obj(keys)),
        ("roles", obj(vec![("root", role(&root_key)), ("index", role(&index_key))])),
        (
            "maintainers",
            obj(vec![(
                "bench",
                obj(vec![("keyids", Value::Arr(vec![s(&maint.id())])), ("plugins", Value::Arr(vec![s("*")]))]),
            )]),
        ),
        ("plugin_thresholds", obj(vec![])),
        ("revoked", Value::Arr(vec![])),
    ]);
    let root_bytes = canonical(&root);
    write(&site.join("root/1.root.json"), &root_bytes);
    write(
        &site.join(format!("root/1.root.json.{}.minisig", root_key.id())),
        root_key.sign(&root_bytes, "registry-root\tregistry:bench\tversion:1").as_bytes(),
    );
    let mut pins: Vec<(String, String, Value)> = Vec::new();
    let mut first_module = 0;
    for (p, &versions) in versions_of.iter().enumerate() {
        let name = format!("plugin-{:05}", p);
        let mut entries = BTreeMap::new();
        for v in 0..versions {
            let version = format!("1.0.{}", v);
            let wasm = module(first_module + v);
            let dir = format!("plugins/{}/{}", name, version);
            let deps: BTreeMap<String, String> = dependencies
                .iter()
                .filter(|(from, _, _)| *from == p)
                .map(|(_, to, range)| (format!("plugin-{:05}", to), range.replace("{v}", &v.to_string())))
                .collect();
            let mut manifest = format!(
                "[plugin]\nname = \"{n}\"\nversion = \"{v}\"\ndescription = \"benchmark plugin {n}\"\nauthors = [\"bench\"]\nlicense = \"MIT\"\nabi = \"core\"\n\n[artifact]\nfile = \"{n}.wasm\"\nsha256 = \"{sha}\"\nsize = {size}\n\n[exports]\nfunctions = [\"run\"]\n",
                n = name,
                v = version,
                sha = names::sha256_hex(&wasm),
                size = wasm.len()
            );
            let perms: Vec<&str> =
                permissions.iter().filter(|(of, _)| *of == p).flat_map(|(_, names)| names.iter().copied()).collect();
            if !perms.is_empty() {
                manifest.push_str("\n[permissions]\n");
                for perm in &perms {
                    manifest.push_str(&format!("{} = true\n", perm));
                }
            }
            if !deps.is_empty() {
                manifest.push_str("\n[dependencies]\n");
                for (d, r) in &deps {
                    manifest.push_str(&format!("{} = \"{}\"\n", d, r));
                }
            }
            let tc = format!("timestamp:1795780800\tfile:plugin.toml\tplugin:{}\tversion:{}", name, version);
            write(&site.join(format!("{}/plugin.toml", dir)), manifest.as_bytes());
            write(&site.join(format!("{}/plugin.toml.minisig", dir)), maint.sign(manifest.as_bytes(), &tc).as_bytes());
            write(&site.join(format!("{}/{}.wasm", dir, name)), &wasm);
            let file_ref = |path: String, data: &[u8]| {
                obj(vec![
                    ("path", s(&path)),
                    ("sha256", s(&names::sha256_hex(data))),
                    ("size", Value::Int(data.len() as i64)),
                ])
            };
            entries.insert(
                version.clone(),
                obj(vec![
                    ("description", s(&format!("benchmark plugin {}", name))),
                    ("license", s("MIT")),
                    ("abi", s("core")),
                    ("host", Value::Null),
                    ("exports", Value::Arr(vec![s("run")])),
                    ("permissions", Value::Arr(perms.iter().map(|perm| s(perm)).collect())),
                    (
                        "limits",
                        obj(vec![
                            ("fuel", Value::Int(50_000_000)),
                            ("memory", Value::Int(16 << 20)),
                            ("wall_time_ms", Value::Int(2000)),
                        ]),
                    ),
                    ("dependencies", Value::Obj(deps.iter().map(|(d, r)| (d.clone(), s(r))).collect())),
                    ("manifest", file_ref(format!("{}/plugin.toml", dir), manifest.as_bytes())),
                    ("wasm", file_ref(format!("{}/{}.wasm", dir, name), &wasm)),
                    ("signers", Value::Arr(vec![s(&maint.id())])),
                    ("published_at", s("2026-11-21T12:00:00Z")),
                    ("yanked", Value::Null),
                    ("smoke", Value::Null),
                    ("authors", Value::Arr(vec![s("bench")])),
                    ("keywords", Value::Arr(vec![])),
                    ("homepage", Value::Null),
                    ("repository", Value::Null),
                ]),
            );
        }
        first_module += versions;
        let doc = obj(vec![
            ("_type", s("registry-plugin")),
            ("format_version", Value::Int(2)),
            ("name", s(&name)),
            ("versions", Value::Obj(entries)),
        ]);
        let pin = write_meta(site, &canonical(&doc));
        pins.push((names::sha256_hex(name.as_bytes()), name, pin));
    }
    pins.sort_by(|a, b| a.0.cmp(&b.0));
    let tree = node(site, "", &pins);
    let catalog = write_meta(
        site,
        &canonical(&obj(vec![
            ("_type", s("registry-catalog")),
            ("format_version", Value::Int(2)),
            ("plugins", obj(vec![])),
        ])),
    );
    let top = obj(vec![
        ("format_version", Value::Int(2)),
        ("version", Value::Int(20261127000000)),
        ("generated_at", s("2026-11-27T00:00:00Z")),
        ("expires_at", s("2026-12-04T00:00:00Z")),
        ("root_version", Value::Int(1)),
        (
            "registry",
            obj(vec![
                ("name", s("bench")),
                ("description", s("benchmark registry")),
                ("base_url", s("https://example.org/bench/")),
                ("host", obj(vec![("name", s("bench-host")), ("versions", s(">=0.1.0"))])),
            ]),
        ),
        ("tree", tree),
        ("catalog", catalog),
        ("counts", obj(vec![("plugins", Value::Int(plugins as i64)), ("releases", Value::Int(releases as i64))])),
    ]);
    let top_bytes = canonical(&top);
    write(&site.join("registry.json"), &top_bytes);
    write(
        &site.join("registry.json.minisig"),
        index_key.sign(&top_bytes, "timestamp:1795737600\tfile:registry.json\thashed").as_bytes(),
    );
}
