//! Benchmark (not a test): install from a registry of 10,000 releases (1,000 plugins x 10
//! versions, the shape of bench/bench_build.py) and verify 100 installed plugins.
//!
//! `cargo run --release --example bench -- [WORKDIR] [--site SITE]`: without `--site`, a
//! format-2 site is generated in WORKDIR (signed with keys derived from fixed seeds, tree
//! leaves of at most 64 plugins like the Python build); with `--site`, any format-2 site
//! (e.g. one the Python build wrote) is used, its root/1.root.json pinned. Everything is read
//! through `file://`, so the figures are the verifier's own work (hashing, signatures,
//! parsing, writing), not a network's.

#[path = "../tests/sitegen/mod.rs"]
mod sitegen;

use registry_verifier::{names, verify_installed, FileTransport, InstallOptions, Verifier};
use sitegen::NOW;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PLUGINS: usize = 1000;
const VERSIONS: usize = 10;

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
            sitegen::generate(&site, PLUGINS, VERSIONS, &[]);
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
