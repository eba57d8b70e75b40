//! Lockfile interoperability with the Python client: the suite's install, installed-state,
//! lockfile, update and dependency cases, with one implementation installing and the other
//! verifying (tests/interop.py splits each case). Python installs and Rust verifies whenever
//! the Python client writes a lockfile version this crate reads (2 or 3); Rust installs and
//! Python verifies once the client is on this crate's version
//! (`registry_tool.client.install.LOCKFILE_VERSION` equal to `lockfile::LOCKFILE_VERSION`);
//! until then that direction says so and checks nothing.

use registry_verifier::lockfile::LOCKFILE_VERSION;
use std::path::PathBuf;
use std::process::Command;

/// The runner binary cargo built for this test (older cargo does not always export
/// CARGO_BIN_EXE_*; the binary then sits two levels above the test executable).
fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_registry-verifier") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("registry-verifier")
        }
    }
}

/// The registry-tool checkout whose conformance suite (and, for interop, Python client) runs:
/// this repository, or the one `REGISTRY_TOOL_REPO` names (another checkout's suite against
/// this verifier, e.g. while the suite and this crate change together).
fn repo() -> PathBuf {
    match std::env::var_os("REGISTRY_TOOL_REPO") {
        Some(other) => PathBuf::from(other).canonicalize().expect("REGISTRY_TOOL_REPO is a directory"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap(),
    }
}

fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

const CASES: &str = "^(install|installed|verify|lockfile|update|dep)-";

fn split_suite(mode: &str) {
    let out = Command::new(python())
        .current_dir(repo())
        .args(["conformance/run.py", "-j", "2", "--filter", CASES, "--", python().to_str().unwrap()])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop.py"))
        .arg(mode)
        .arg(binary())
        .args([python().to_str().unwrap(), "--"])
        .output()
        .expect("the runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "{}: {}\n{}",
        mode,
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 20, "{}: only {} cases ran: {}", mode, passed, last);
}

/// The lockfile version the Python client writes (`registry_tool.client.install.LOCKFILE_VERSION`),
/// `None` when the client or its conformance entry point is not there.
fn python_lockfile_version() -> Option<i64> {
    let probe = "import registry_tool.client.conformance, registry_tool.client.install as i; \
                 print(getattr(i, 'LOCKFILE_VERSION', 1))";
    let out = Command::new(python()).current_dir(repo()).args(["-c", probe]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Python writes a version this verifier reads (2 or 3): Rust verifies what Python installs.
#[test]
fn python_installs_and_rust_verifies() {
    match python_lockfile_version() {
        Some(v) if v > LOCKFILE_VERSION => {
            panic!("the Python client writes lockfile version {}, newer than this crate's {}", v, LOCKFILE_VERSION)
        }
        Some(v) if v >= 2 => split_suite("python-installs"),
        other => eprintln!("skipped: the Python client does not write lockfile version 2 or 3 ({:?})", other),
    }
}

/// Python reads what this verifier writes once both are on the same version.
#[test]
fn rust_installs_and_python_verifies() {
    match python_lockfile_version() {
        Some(v) if v == LOCKFILE_VERSION => split_suite("rust-installs"),
        Some(v) if v > LOCKFILE_VERSION => {
            panic!("the Python client writes lockfile version {}, newer than this crate's {}", v, LOCKFILE_VERSION)
        }
        other => eprintln!(
            "skipped: the Python client does not read lockfile version {} yet ({:?})",
            LOCKFILE_VERSION, other
        ),
    }
}
