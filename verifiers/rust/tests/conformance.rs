//! The conformance suite (conformance/, FORMAT 2 section 10) against this crate's runner
//! binary: `python3 conformance/run.py -j 2 -- registry-verifier`. Every case must pass.

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

/// The repository's virtualenv after `make setup`, else the system's python3 (run.py needs
/// only the standard library of Python 3.11+).
fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[test]
fn the_whole_conformance_suite_passes() {
    let out = Command::new(python())
        .current_dir(repo())
        .args(["conformance/run.py", "-j", "2", "--"])
        .arg(binary())
        .output()
        .expect("python3 runs conformance/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let passed: usize = last.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 200, "only {} cases ran: {}", passed, last);
}
