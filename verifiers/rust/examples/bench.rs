//! Benchmark (not a test): install from a registry of 10,000 releases (1,000 plugins x 10
//! versions, the shape of bench/bench_build.py) and verify 100 installed plugins.
//!
//! `cargo run --release --example bench -- [WORKDIR] [--site SITE]`: without `--site`, a
//! format-2 site is generated in WORKDIR (signed with keys derived from fixed seeds, tree
//! leaves of at most 64 plugins like the Python build); with `--site`, any format-2 site
//! (e.g. one the Python build wrote) is used, its root/1.root.json pinned. Everything is read
//! through `file://`, so the figures are the verifier's own work (hashing, signatures,
//! parsing, writing), not a network's.

use base64::Engine;
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey};
use registry_verifier::json::Value;
use registry_verifier::{names, verify_installed, FileTransport, InstallOptions, Verifier};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOW: &str = "2026-11-27T12:00:00Z";
const PLUGINS: usize = 1000;
const VERSIONS: usize = 10;
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

fn generate(site: &Path) {
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
    for p in 0..PLUGINS {
        let name = format!("plugin-{:05}", p);
        let mut versions = BTreeMap::new();
        for v in 0..VERSIONS {
            let version = format!("1.0.{}", v);
            let wasm = module(p * VERSIONS + v);
            let dir = format!("plugins/{}/{}", name, version);
            let manifest = format!(
                "[plugin]\nname = \"{n}\"\nversion = \"{v}\"\ndescription = \"benchmark plugin {n}\"\nauthors = [\"bench\"]\nlicense = \"MIT\"\nabi = \"core\"\n\n[artifact]\nfile = \"{n}.wasm\"\nsha256 = \"{sha}\"\nsize = {size}\n\n[exports]\nfunctions = [\"run\"]\n",
                n = name,
                v = version,
                sha = names::sha256_hex(&wasm),
                size = wasm.len()
            );
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
            versions.insert(
                version.clone(),
                obj(vec![
                    ("description", s(&format!("benchmark plugin {}", name))),
                    ("license", s("MIT")),
                    ("abi", s("core")),
                    ("host", Value::Null),
                    ("exports", Value::Arr(vec![s("run")])),
                    ("permissions", Value::Arr(vec![])),
                    (
                        "limits",
                        obj(vec![
                            ("fuel", Value::Int(50_000_000)),
                            ("memory", Value::Int(16 << 20)),
                            ("wall_time_ms", Value::Int(2000)),
                        ]),
                    ),
                    ("dependencies", obj(vec![])),
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
        let doc = obj(vec![
            ("_type", s("registry-plugin")),
            ("format_version", Value::Int(2)),
            ("name", s(&name)),
            ("versions", Value::Obj(versions)),
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
        (
            "counts",
            obj(vec![("plugins", Value::Int(PLUGINS as i64)), ("releases", Value::Int((PLUGINS * VERSIONS) as i64))]),
        ),
    ]);
    let top_bytes = canonical(&top);
    write(&site.join("registry.json"), &top_bytes);
    write(
        &site.join("registry.json.minisig"),
        index_key.sign(&top_bytes, "timestamp:1795737600\tfile:registry.json\thashed").as_bytes(),
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time (user + system) of this process so far, all threads: steadier than wall time on a
/// loaded machine, and without the fsync waits that dominate an install's wall time.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (t, c) = (Instant::now(), cpu());
    let out = f();
    (out, t.elapsed(), cpu() - c)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let site_arg = args.iter().position(|a| a == "--site").map(|i| PathBuf::from(&args[i + 1]));
    let work = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("registry-verifier-bench"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let site = match site_arg {
        Some(s) => s.canonicalize().expect("--site exists"),
        None => {
            let site = work.join("site");
            let t = Instant::now();
            generate(&site);
            eprintln!("generated a {}-release site in {}", PLUGINS * VERSIONS, ms(t.elapsed()));
            site
        }
    };
    let url = format!("file://{}/", site.display());
    let now = names::parse_time(NOW).unwrap();
    let transport: Arc<FileTransport> = Arc::new(FileTransport);
    let state = work.join("state");
    let verifier = Verifier::new(&url, &state, transport).with_now(now);
    let root = std::fs::read(site.join("root/1.root.json")).unwrap();
    verifier.pin(&root, &[]).expect("pin");

    // One install into an empty directory: root walk, registry.json, tree walk, plugin
    // document, manifest + signature, wasm, fsynced writes, lockfile.
    drop(verifier.refresh().expect("refresh")); // warm the page cache
    let dir = work.join("one");
    let (_, wall, cpu_time) = timed(|| {
        let session = verifier.refresh().expect("refresh");
        session.install("plugin-00500", &dir, &InstallOptions::default()).expect("install");
        session.commit().unwrap();
    });
    println!(
        "rust: install 1 plugin (refresh + resolve + verify + write) from a {}-release registry: {} wall, {} CPU",
        PLUGINS * VERSIONS,
        ms(wall),
        ms(cpu_time)
    );

    // 100 plugins into one directory, then `verify` of all 100 (re-hash + signatures).
    let dir = work.join("hundred");
    let (_, wall, cpu_time) = timed(|| {
        let session = verifier.refresh().expect("refresh");
        for p in 0..100 {
            session
                .install(&format!("plugin-{:05}@^1.0", p * (PLUGINS / 100)), &dir, &InstallOptions::default())
                .expect("install");
        }
        session.commit().unwrap();
    });
    println!("rust: install 100 plugins (one refresh, 100 installs): {} wall, {} CPU", ms(wall), ms(cpu_time));
    let mut runs = Vec::new();
    for _ in 0..5 {
        let (names_, wall, cpu_time) = timed(|| verify_installed(&dir, Some(&state)).expect("verify"));
        assert_eq!(names_.len(), 100);
        runs.push((wall, cpu_time));
    }
    let best = runs.iter().min_by_key(|r| r.0).unwrap();
    println!(
        "rust: verify 100 installed plugins: {} wall, {} CPU (first run); {} wall, {} CPU (best of 5)",
        ms(runs[0].0),
        ms(runs[0].1),
        ms(best.0),
        ms(best.1)
    );
}
