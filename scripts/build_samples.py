#!/usr/bin/env python3
"""Rebuild every sample plugin's wasm from samples/src and pin its digest in plugin.toml.

    python scripts/build_samples.py            # build into index/plugins/<name>/<version>/
    python scripts/build_samples.py --check    # rebuild in a temp dir; exit 1 if anything differs

WAT is assembled with wasmtime.wat2wasm; C is compiled with clang --target=wasm32-wasi.
Builds are reproducible: sources are compiled from their own directory under a fixed
prefix map, debug info is stripped and wasm-ld writes no build id, so the same clang
gives the same bytes (tests/manifest/test_samples.py proves the committed files match).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "samples" / "src"
# The clang the committed C samples were built with; other versions emit different code.
REFERENCE_CLANG = "14.0.6"
INDEX = ROOT / "index"

# Flags shared by every C build: fixed paths in any remaining metadata, no debug info.
C_COMMON = ["--target=wasm32-wasi", "-O2", "-Wall", "-ffile-prefix-map=.=.", "-Wl,--strip-debug"]
C_FLAGS = {
    # A freestanding module: no libc, no entry point, only the imports the source declares.
    "c-freestanding": ["-nostdlib", "-Wl,--no-entry"],
    # A WASI command: wasi-libc's crt1 provides _start and calls main.
    "c-wasi-command": [],
}


@dataclass(frozen=True)
class Sample:
    name: str
    version: str
    source: str  # relative to samples/src
    kind: str  # wat | c-freestanding | c-wasi-command

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


def build(sample: Sample) -> bytes:
    """Build one sample and return the wasm bytes (nothing is written outside a temp dir)."""
    source = SRC / sample.source
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
    args = parser.parse_args(argv)
    status = 0
    for sample in SAMPLES:
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
