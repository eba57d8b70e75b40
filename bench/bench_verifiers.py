"""The Python, Go and Rust verifiers side by side, in one run, on the same site (not a timed test).

Each verifier is driven through the conformance protocol (conformance/README.md) against the
suite's `sites/deps` snapshot served on 127.0.0.1 by the runner's own server, in two modes:

* cold: one process per operation (what a host's CLI or the per-process protocol costs);
* warm: one `batch` process started beforehand (what a host that links the verifier pays per
  operation: no interpreter or binary start-up).

Operations, each on a fresh state and plugin folder (pinned first, not timed):

* install of one release (`validate_email@1.1.0`);
* install of a four-release dependency graph (`visit_counter@2.0.0`: adler32, validate_email,
  semver-lab), reported per release;
* `verify` of those four installed releases, reported per release.

Prints the median over --repeat runs in milliseconds, the ratios Python/Go, Python/Rust and
Go/Rust, and the load average.  Builds the Go binary (go build) and the Rust binary (cargo build
--release) unless --go/--rust name existing binaries; a verifier whose toolchain is missing is
shown as n/a.

    .venv/bin/python bench/bench_verifiers.py [--repeat 15] [--go BIN] [--rust BIN]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance"
sys.path.insert(0, str(SUITE))

import run as runner  # noqa: E402  (conformance/run.py: site overlays and the fault-free server)

NOW = "2026-11-27T12:00:00Z"
SITE = "sites/deps"
ONE = "validate_email@1.1.0"
GRAPH = "visit_counter@2.0.0"
GRAPH_SIZE = 4


def build_go(work: Path) -> list[str] | None:
    """Build the Go runner binary into ``work`` (None when Go is missing)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        return None
    out = work / "go-verifier"
    subprocess.run(
        [go, "build", "-o", str(out), "./cmd/registry-verifier"], cwd=ROOT / "verifiers/go", check=True
    )
    return [str(out)]


def build_rust() -> list[str] | None:
    """Build the Rust runner binary, release profile (None when cargo is missing)."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    if not Path(cargo).exists():
        return None
    env = dict(os.environ, CARGO_REGISTRIES_CRATES_IO_PROTOCOL="sparse")
    version = subprocess.run([cargo, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.split(".")[1]) < 68:  # Debian's old cargo: sparse index behind the unstable flag
        env |= {"RUSTC_BOOTSTRAP": "1", "CARGO_UNSTABLE_SPARSE_REGISTRY": "true"}
    crate = ROOT / "verifiers/rust"
    subprocess.run([cargo, "build", "--release", "--locked"], cwd=crate, env=env, check=True)
    return [str(crate / "target/release/registry-verifier")]


class Cold:
    """One process per operation."""

    def __init__(self, verifier: list[str]) -> None:
        """Drive ``verifier``."""
        self.verifier = verifier

    def __call__(self, args: list[str]) -> tuple[float, dict[str, Any]]:
        """Run one operation: seconds taken and the JSON answer."""
        start = time.perf_counter()
        proc = subprocess.run([*self.verifier, *args], capture_output=True, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        return elapsed, json.loads(proc.stdout)

    def close(self) -> None:
        """Release what the mode holds."""
        return None


class Warm:
    """One batch process for every operation (started before the first timed one)."""

    def __init__(self, verifier: list[str]) -> None:
        """Drive ``verifier``."""
        self.proc = subprocess.Popen(
            [*verifier, "batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    def __call__(self, args: list[str]) -> tuple[float, dict[str, Any]]:
        """Run one operation: seconds taken and the JSON answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        start = time.perf_counter()
        self.proc.stdin.write((json.dumps({"args": args}) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        elapsed = time.perf_counter() - start
        return elapsed, json.loads(line)

    def close(self) -> None:
        """Release what the mode holds."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def measure(
    step: Callable[[list[str]], tuple[float, dict[str, Any]]], url: str, root: Path, repeat: int
) -> dict[str, float]:
    """Median seconds of each operation over ``repeat`` fresh state/plugin folders."""
    times: dict[str, list[float]] = {"install-one": [], "install-graph": [], "verify": []}
    for _ in range(repeat):
        for spec, key in ((ONE, "install-one"), (GRAPH, "install-graph")):
            with tempfile.TemporaryDirectory(prefix="bench-verifiers-") as tmp:
                state, plugins = Path(tmp, "state"), Path(tmp, "plugins")
                state.mkdir()
                plugins.mkdir()
                common = ["--state", str(state)]
                _, answer = step(["pin", *common, "--url", url, "--root", str(root), "--now", NOW])
                assert answer.get("ok"), answer
                install = ["install", *common, "--url", url, "--dir", str(plugins), "--spec", spec]
                seconds, answer = step([*install, "--now", NOW, "--deadline-ms", "10000"])
                assert answer.get("ok"), answer
                times[key].append(seconds)
                if key == "install-graph":
                    assert len(answer["resolved"]) == GRAPH_SIZE, answer
                    seconds, answer = step(["verify", *common, "--dir", str(plugins), "--now", NOW])
                    assert answer.get("ok") and len(answer["plugins"]) == GRAPH_SIZE, answer
                    times["verify"].append(seconds)
    return {key: statistics.median(values) for key, values in times.items()}


ROWS = [
    ("install 1 release", "install-one", 1),
    (f"install a {GRAPH_SIZE}-release graph, per release", "install-graph", GRAPH_SIZE),
    (f"verify {GRAPH_SIZE} installed, per release", "verify", GRAPH_SIZE),
]


def main() -> None:
    """Build, measure every verifier in both modes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per operation (median)")
    parser.add_argument("--go", help="the Go registry-verifier binary (default: go build)")
    parser.add_argument("--rust", help="the Rust registry-verifier binary (default: cargo build --release)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verifiers-bin-") as work:
        verifiers: dict[str, list[str] | None] = {
            "python": [sys.executable, "-m", "registry_tool.client.conformance"],
            "go": [args.go] if args.go else build_go(Path(work)),
            "rust": [args.rust] if args.rust else build_rust(),
        }
        files = runner.site_files(SUITE, SITE)
        results: dict[tuple[str, str], dict[str, float]] = {}
        with runner.serving() as server:
            server.files = files
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            for name, verifier in verifiers.items():
                if verifier is None:
                    continue
                for mode, kind in (("cold", Cold), ("warm", Warm)):
                    step = kind(verifier)
                    try:
                        results[(name, mode)] = measure(step, url, files["root/1.root.json"], args.repeat)
                    finally:
                        step.close()
    print(f"load average {os.getloadavg()[0]:.1f}, {args.repeat} runs each, median ms; site {SITE}")
    names = list(verifiers)
    header = ["operation", "mode", *names, "python/go", "python/rust", "go/rust"]
    print(" | ".join(header))
    for label, key, per in ROWS:
        for mode in ("cold", "warm"):
            ms = {n: results[(n, mode)][key] * 1000 / per if (n, mode) in results else None for n in names}

            def ratio(a: str, b: str) -> str:
                x, y = ms[a], ms[b]  # noqa: B023  (used right here, in this iteration)
                return f"{x / y:.1f}x" if x is not None and y else "n/a"

            cells = [f"{ms[n]:.1f}" if ms[n] is not None else "n/a" for n in names]
            mode_text = "process per operation" if mode == "cold" else "warm batch process"
            print(
                " | ".join(
                    [
                        label,
                        mode_text,
                        *cells,
                        ratio("python", "go"),
                        ratio("python", "rust"),
                        ratio("go", "rust"),
                    ]
                )
            )


if __name__ == "__main__":
    main()
