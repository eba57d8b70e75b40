//! Benchmark (not a test): the cost of one install commit as the plugin folder grows. A folder
//! holding N installed plugins (N synthetic lockfile entries, written as a version 2 file, the
//! format every version of this crate reads) receives 12 single-plugin installs from a small
//! generated site; the first install (which may rewrite the whole file) is reported apart, the
//! other 11 as min / median wall and CPU time, then the CPU time of `read_lockfile` (one read
//! and parse of the whole file, which every command pays).
//!
//! `cargo run --release --example lockfile_bench -- [WORKDIR] [N ...]` (default N: 0 1000).

#[path = "../tests/sitegen/mod.rs"]
mod sitegen;

use registry_verifier::json::{self, Value};
use registry_verifier::{names, read_lockfile, FileTransport, InstallOptions, Verifier};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INSTALLS: usize = 12;

fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A version 2 lockfile holding `n` synthetic entries (`filler-NNNNN`, files not present).
fn filler_lockfile(dir: &Path, n: usize) {
    let s = |t: &str| Value::Str(t.to_owned());
    let mut plugins = BTreeMap::new();
    for i in 0..n {
        let name = format!("filler-{:05}", i);
        let base = format!("{}/1.0.0/", name);
        let mut e = BTreeMap::new();
        e.insert("version".to_owned(), s("1.0.0"));
        e.insert("registry".to_owned(), s("https://example.org/plugins/"));
        e.insert("requested".to_owned(), s("^1.0"));
        e.insert("required_by".to_owned(), Value::Arr(vec![]));
        e.insert("dependencies".to_owned(), Value::Obj(BTreeMap::new()));
        e.insert("abi".to_owned(), s("core"));
        e.insert("manifest".to_owned(), s(&format!("{}plugin.toml", base)));
        e.insert("manifest_sha256".to_owned(), s(&names::sha256_hex(name.as_bytes())));
        e.insert("manifest_size".to_owned(), Value::Int(812));
        e.insert("wasm".to_owned(), s(&format!("{}{}.wasm", base, name)));
        e.insert("wasm_sha256".to_owned(), s(&names::sha256_hex(base.as_bytes())));
        e.insert("wasm_size".to_owned(), Value::Int(16_384));
        e.insert("signatures".to_owned(), Value::Arr(vec![s(&format!("{}plugin.toml.minisig", base))]));
        e.insert("signers".to_owned(), Value::Arr(vec![s("1B2C3D4E5F607182")]));
        e.insert("permissions".to_owned(), Value::Arr(vec![]));
        e.insert("published_at".to_owned(), s("2026-11-21T12:00:00Z"));
        plugins.insert(name, Value::Obj(e));
    }
    let mut top = BTreeMap::new();
    top.insert("lockfile_version".to_owned(), Value::Int(2));
    top.insert("plugins".to_owned(), Value::Obj(plugins));
    std::fs::create_dir_all(dir).unwrap();
    let text = json::to_python_pretty(&Value::Obj(top)) + "\n";
    std::fs::write(dir.join("registry-tool.lock.json"), text).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let work = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("registry-verifier-lockfile-bench"));
    let sizes: Vec<usize> =
        if args.len() > 1 { args[1..].iter().map(|a| a.parse().unwrap()).collect() } else { vec![0, 1000] };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let site = work.join("site");
    sitegen::generate(&site, INSTALLS, 1, &[]);
    let url = format!("file://{}/", site.display());
    let verifier = Verifier::new(&url, &work.join("state"), Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap());
    verifier.pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).expect("pin");
    let session = verifier.refresh().expect("refresh");
    for n in sizes {
        let dir = work.join(format!("folder-{}", n));
        if n > 0 {
            filler_lockfile(&dir, n);
        }
        let mut runs = Vec::new();
        for p in 0..INSTALLS {
            let (t, c) = (Instant::now(), cpu());
            session.install(&format!("plugin-{:05}", p), &dir, &InstallOptions::default()).expect("install");
            runs.push((t.elapsed(), cpu() - c));
        }
        let size = std::fs::metadata(dir.join("registry-tool.lock.json")).unwrap().len();
        // the floor every command pays: reading and parsing the whole file once
        let mut reads: Vec<Duration> = (0..5)
            .map(|_| {
                let c = cpu();
                read_lockfile(&dir).unwrap().unwrap();
                cpu() - c
            })
            .collect();
        reads.sort();
        let first = runs.remove(0);
        let mut wall: Vec<Duration> = runs.iter().map(|r| r.0).collect();
        let mut cpus: Vec<Duration> = runs.iter().map(|r| r.1).collect();
        wall.sort();
        cpus.sort();
        println!(
            "folder of {} plugins: first install {} ms wall {} ms CPU; next {}: wall min {} median {} ms, CPU min {} median {} ms; lockfile {} bytes, read_lockfile {} ms CPU (median of 5)",
            n,
            ms(first.0),
            ms(first.1),
            runs.len(),
            ms(wall[0]),
            ms(wall[wall.len() / 2]),
            ms(cpus[0]),
            ms(cpus[cpus.len() / 2]),
            size,
            ms(reads[2])
        );
    }
}
