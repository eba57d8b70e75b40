#!/usr/bin/env python3
"""Rebuild every sample plugin's wasm from samples/src and pin its digest in plugin.toml.

    python scripts/build_samples.py            # build into index/plugins/<name>/<version>/
    python scripts/build_samples.py --check    # rebuild in a temp dir; exit 1 if anything differs

WAT is assembled with wasmtime.wat2wasm; C is compiled with clang --target=wasm32-wasi; Go
(GOOS=wasip1) with the go command, its module versions pinned by each sample's go.mod/go.sum.
Builds are reproducible: sources are compiled from their own directory under a fixed
prefix map (-trimpath for Go), debug info is stripped and no build id is written, so the same
clang / Go release gives the same bytes (tests/manifest/test_samples.py proves the committed
files match).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "samples" / "src"
# The clang and Go the committed samples were built with; other versions emit different code.
REFERENCE_CLANG = "14.0.6"
REFERENCE_GO = "go1.26.8"
GO_FALLBACK = Path("/usr/local/go/bin/go")
INDEX = ROOT / "index"

# Flags shared by every C build: fixed paths in any remaining metadata, no debug info.
C_COMMON = ["--target=wasm32-wasi", "-O2", "-Wall", "-ffile-prefix-map=.=.", "-Wl,--strip-debug"]
C_FLAGS = {
    # A freestanding module: no libc, no entry point, only the imports the source declares.
    "c-freestanding": ["-nostdlib", "-Wl,--no-entry"],
    # A WASI command: wasi-libc's crt1 provides _start and calls main.
    "c-wasi-command": [],
    # A WASI reactor: wasi-libc's crt1-reactor provides _initialize (runs the constructors).
    "c-reactor": ["-mexec-model=reactor"],
}
# Go builds: -buildmode per kind; module versions come from go.mod/go.sum only (-mod=readonly).
GO_BUILDMODE = {"go-c-shared": "c-shared", "go-wasip1": "default"}
# -buildvcs=false: no VCS stamp, so the bytes do not depend on the commit or the checkout's state.
GO_FLAGS = ["-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="]


@dataclass(frozen=True)
class Sample:
    name: str
    version: str
    source: str  # relative to samples/src
    kind: str  # wat | c-freestanding | c-wasi-command | c-reactor | go-c-shared | go-wasip1

    @property
    def release_dir(self) -> Path:
        return INDEX / "plugins" / self.name / self.version

    @property
    def wasm_name(self) -> str:
        return f"{self.name}.wasm"


SAMPLES = (
    Sample("validate_email", "1.0.0", "validate_email/validate_email.c", "c-freestanding"),
    Sample("adler32", "1.0.0", "adler32/adler32.wat", "wat"),
    Sample("uppercase", "1.0.0", "uppercase/uppercase.c", "c-wasi-command"),
    Sample("count_vowels", "1.0.0", "count_vowels/count_vowels.c", "c-freestanding"),
    Sample("visit_counter", "1.0.0", "visit_counter/visit_counter.c", "c-freestanding"),
    Sample("healthcheck", "1.0.0", "healthcheck/healthcheck.wat", "wat"),
    Sample("email_domain", "1.0.0", "email_domain/email_domain.c", "c-freestanding"),
    Sample("tally", "1.0.0", "tally/tally.c", "c-reactor"),
    Sample("greet_go", "1.0.0", "greet_go/main.go", "go-c-shared"),
    Sample("greet_go_std", "1.0.0", "greet_go/main.go", "go-wasip1"),
    Sample("header_gate", "1.0.0", "header_gate/main.go", "go-c-shared"),
    Sample("jsonl_prices", "1.0.0", "jsonl_prices/main.go", "go-wasip1"),
)


class BuildError(RuntimeError):
    pass


def clang_version() -> str | None:
    """The clang version string ("14.0.6"), or None when clang is not installed."""
    clang = shutil.which("clang")
    if clang is None:
        return None
    out = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"clang version (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def go_command() -> str | None:
    """The go command (PATH, else the standard /usr/local/go install), or None."""
    found = shutil.which("go")
    if found:
        return found
    return str(GO_FALLBACK) if GO_FALLBACK.is_file() else None


def go_version() -> str | None:
    """The Go release ("go1.26.8"), or None when Go is not installed."""
    go = go_command()
    if go is None:
        return None
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout
    return out.strip() or None


def build_go(sample: Sample) -> bytes:
    go = go_command()
    if go is None:
        raise BuildError("go is not installed (Go >= 1.24 builds the Go samples)")
    source = SRC / sample.source
    env = dict(os.environ, GOOS="wasip1", GOARCH="wasm", CGO_ENABLED="0", GOFLAGS="-mod=readonly",
               GOTOOLCHAIN="local")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / sample.wasm_name
        cmd = [go, "build", f"-buildmode={GO_BUILDMODE[sample.kind]}", *GO_FLAGS, "-o", str(out), "."]
        proc = subprocess.run(cmd, cwd=source.parent, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        return out.read_bytes()


def build(sample: Sample) -> bytes:
    """Build one sample and return the wasm bytes (nothing is written outside a temp dir)."""
    source = SRC / sample.source
    if sample.kind in GO_BUILDMODE:
        return build_go(sample)
    if sample.kind == "wat":
        import wasmtime

        return bytes(wasmtime.wat2wasm(source.read_text(encoding="utf-8")))
    if clang_version() is None:
        raise BuildError("clang is not installed: apt-get install clang lld wasi-libc")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / sample.wasm_name
        cmd = ["clang", *C_COMMON, *C_FLAGS[sample.kind], "-o", str(out), source.name]
        proc = subprocess.run(cmd, cwd=source.parent, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        return out.read_bytes()


def pin(sample: Sample, data: bytes) -> bool:
    """Write artifact.sha256/size into the sample's plugin.toml (format-preserving); True if changed."""
    import tomlkit

    manifest = sample.release_dir / "plugin.toml"
    if not manifest.exists():
        return False
    doc = tomlkit.parse(manifest.read_text(encoding="utf-8"))
    artifact = doc["artifact"]
    digest = hashlib.sha256(data).hexdigest()
    if artifact.get("sha256") == digest and artifact.get("size") == len(data):  # type: ignore[union-attr]
        return False
    artifact["sha256"] = digest  # type: ignore[index]
    artifact["size"] = len(data)  # type: ignore[index]
    manifest.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify committed wasm files, write nothing")
    parser.add_argument("names", nargs="*", help="build only these samples (default: all)")
    args = parser.parse_args(argv)
    status = 0
    for sample in SAMPLES:
        if args.names and sample.name not in args.names:
            continue
        try:
            data = build(sample)
        except BuildError as err:
            print(f"error: {sample.name}: {err}", file=sys.stderr)
            return 2
        target = sample.release_dir / sample.wasm_name
        if args.check:
            same = target.exists() and target.read_bytes() == data
            print(f"{'ok  ' if same else 'DIFF'} {target.relative_to(ROOT)}")
            status |= 0 if same else 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        repinned = pin(sample, data)
        print(f"built {target.relative_to(ROOT)} ({len(data)} bytes){' and re-pinned' if repinned else ''}")
    return status


if __name__ == "__main__":
    sys.exit(main())
