//! `registry-verifier`: the conformance runner protocol (conformance/README.md) over the
//! library. One operation per process; stdout is one JSON object; exit 0 ok, 1 the checked
//! thing is bad, 2 usage or environment. `capabilities` declares batch mode; `batch` answers
//! one request per stdin line.
//!
//! ```text
//! registry-verifier pin     --state S --url URL --root FILE --now T
//! registry-verifier refresh --state S --url URL --now T [--deadline-ms N]
//! registry-verifier install --state S --url URL --dir D --spec SPEC [--host-version V] [--allow a,b] --now T [--deadline-ms N]
//! registry-verifier verify  --state S --dir D --now T
//! ```

use registry_verifier::fetch::default_transport;
use registry_verifier::{names, verify_installed, Error, InstallOptions, Verifier};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

struct Usage(String);

fn parse_args(args: &[String]) -> Result<(String, BTreeMap<String, String>), Usage> {
    let op = args.first().cloned().ok_or_else(|| Usage("missing operation (pin, refresh, install, verify)".into()))?;
    let mut flags = BTreeMap::new();
    let mut i = 1;
    while i < args.len() {
        let key = args[i].strip_prefix("--").ok_or_else(|| Usage(format!("unexpected argument {:?}", args[i])))?;
        let value = args.get(i + 1).ok_or_else(|| Usage(format!("--{} needs a value", key)))?;
        if flags.insert(key.to_owned(), value.clone()).is_some() {
            return Err(Usage(format!("--{} given twice", key)));
        }
        i += 2;
    }
    Ok((op, flags))
}

fn need<'a>(flags: &'a BTreeMap<String, String>, key: &str) -> Result<&'a str, Usage> {
    flags.get(key).map(String::as_str).ok_or_else(|| Usage(format!("--{} is required", key)))
}

fn check_flags(flags: &BTreeMap<String, String>, allowed: &[&str]) -> Result<(), Usage> {
    match flags.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Usage(format!("unknown option --{}", k))),
        None => Ok(()),
    }
}

enum Failure {
    Usage(String),
    Refused(Error),
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Failure {
        Failure::Usage(u.0)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Refused(e)
    }
}

fn run(args: &[String]) -> Result<serde_json::Value, Failure> {
    let (op, flags) = parse_args(args)?;
    let now_text = need(&flags, "now")?;
    let now = names::parse_time(now_text)
        .ok_or_else(|| Usage(format!("--now {:?} is not YYYY-MM-DDTHH:MM:SSZ", now_text)))?;
    let deadline = match flags.get("deadline-ms") {
        None => Duration::from_millis(10_000),
        Some(ms) => Duration::from_millis(
            ms.parse::<u64>().map_err(|_| Usage(format!("--deadline-ms {:?} is not a number", ms)))?,
        ),
    };
    let state = PathBuf::from(need(&flags, "state")?);
    let verifier = |url: &str| -> Result<Verifier, Failure> {
        Ok(Verifier::new(url, &state, default_transport(url)?).with_now(now).with_timeout(deadline))
    };
    match op.as_str() {
        "pin" => {
            check_flags(&flags, &["state", "url", "root", "now"])?;
            let file = PathBuf::from(need(&flags, "root")?);
            let bytes =
                std::fs::read(&file).map_err(|e| Usage(format!("cannot read --root {}: {}", file.display(), e)))?;
            let root = verifier(need(&flags, "url")?)?.pin(&bytes, &[])?;
            Ok(json!({"ok": true, "root_version": root.version, "registry": root.registry}))
        }
        "refresh" => {
            check_flags(&flags, &["state", "url", "now", "deadline-ms"])?;
            let v = verifier(need(&flags, "url")?)?;
            let session = v.refresh()?;
            session.commit()?;
            Ok(json!({"ok": true, "registry_version": session.top.version, "root_version": session.root.version}))
        }
        "install" => {
            check_flags(&flags, &["state", "url", "dir", "spec", "host-version", "allow", "now", "deadline-ms"])?;
            let v = verifier(need(&flags, "url")?)?;
            let dir = PathBuf::from(need(&flags, "dir")?);
            let allow: BTreeSet<String> = flags
                .get("allow")
                .map(|a| a.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
            let opts = InstallOptions { host_version: flags.get("host-version").cloned(), allow };
            let session = v.refresh()?;
            let entries = session.install(need(&flags, "spec")?, &dir, &opts)?;
            session.commit()?;
            let e = &entries[0];
            let resolved: serde_json::Map<String, serde_json::Value> = entries
                .iter()
                .map(|d| {
                    let v = json!({"version": d.version, "wasm_sha256": d.wasm_sha256, "manifest_sha256": d.manifest_sha256});
                    (d.name.clone(), v)
                })
                .collect();
            Ok(json!({
                "ok": true, "registry_version": session.top.version, "root_version": session.root.version,
                "name": e.name, "version": e.version, "wasm_sha256": e.wasm_sha256,
                "manifest_sha256": e.manifest_sha256, "resolved": resolved,
            }))
        }
        "verify" => {
            check_flags(&flags, &["state", "dir", "now"])?;
            let dir = PathBuf::from(need(&flags, "dir")?);
            let plugins = verify_installed(&dir, Some(&state))?;
            Ok(json!({"ok": true, "plugins": plugins}))
        }
        other => Err(Failure::Usage(format!("unknown operation {:?} (pin, refresh, install, verify)", other))),
    }
}

/// One operation's JSON answer and exit code.
fn answer(args: &[String]) -> (serde_json::Value, i32) {
    match run(args) {
        Ok(v) => (v, 0),
        Err(Failure::Usage(m)) => (json!({"ok": false, "error": "usage", "message": m}), 2),
        Err(Failure::Refused(e)) => {
            (json!({"ok": false, "error": e.class.as_str(), "message": e.message}), e.class.exit_code())
        }
    }
}

/// Batch mode: one request `{"args": [...]}` per stdin line, one answer per stdout line (the
/// operation's answer plus "exit"). Nothing is kept between requests: each opens its trust state
/// and plugin directory afresh, exactly as one process per operation would.
fn batch() -> i32 {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(_) => return 2,
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: Result<Vec<String>, String> = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value(v["args"].clone()).map_err(|e| e.to_string()));
        let (mut out, code) = match request {
            Ok(args) => answer(&args),
            Err(e) => (json!({"ok": false, "error": "usage", "message": format!("bad batch request: {}", e)}), 2),
        };
        out["exit"] = json!(code);
        let mut w = stdout.lock();
        if writeln!(w, "{}", out).and_then(|_| w.flush()).is_err() {
            return 2;
        }
    }
    0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 1 && args[0] == "capabilities" {
        println!("{}", json!({"ok": true, "batch": true}));
        return;
    }
    if args.len() == 1 && args[0] == "batch" {
        std::process::exit(batch());
    }
    let (out, code) = answer(&args);
    println!("{}", out);
    std::process::exit(code);
}
