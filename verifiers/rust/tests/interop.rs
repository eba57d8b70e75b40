//! Lockfile interoperability with the Python client: the suite's install, installed-state,
//! lockfile and update cases, with one implementation installing and the other verifying
//! (tests/interop.py splits each case). Runs once the Python client writes lockfile version 2
//! (`registry_tool.client.install.LOCKFILE_VERSION`); until then it says so and checks nothing.

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

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

const CASES: &str = "^(install|installed|verify|lockfile|update)-";

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

fn python_client_available() -> bool {
    let probe = "import sys, registry_tool.client.conformance, registry_tool.client.install as i; \
                 sys.exit(0 if getattr(i, 'LOCKFILE_VERSION', 1) >= 2 else 1)";
    Command::new(python()).current_dir(repo()).args(["-c", probe]).status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn python_installs_and_rust_verifies() {
    if !python_client_available() {
        eprintln!("skipped: the Python client does not write lockfile version 2 yet");
        return;
    }
    split_suite("python-installs");
}

#[test]
fn rust_installs_and_python_verifies() {
    if !python_client_available() {
        eprintln!("skipped: the Python client does not write lockfile version 2 yet");
        return;
    }
    split_suite("rust-installs");
}
