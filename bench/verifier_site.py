"""A format-2 site with N releases for the verifier benchmarks (Go, Rust, Python clients).

Reuses bench_build.generate (N releases: plugin-00000 .. as 10 versions 1.0.0-1.0.9 each, signed by
one delegated maintainer) and builds the site with registry-tool build (no smoke run).
Prints one JSON line: {"site": ..., "root": ..., "releases": N, "build_s": ...}.
Run: `.venv/bin/python bench/verifier_site.py --releases 10000 --out /tmp/vsite`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_build import generate

from registry_tool.registry.build import BuildOptions, build_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=10000)
    parser.add_argument("--out", type=Path, required=True, help="work folder (replaced)")
    parser.add_argument("--wasm-kib", type=float, default=1, help="payload of each module (KiB)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    index, index_key, _maint, _releases = generate(args.out, args.releases, int(args.wasm_kib * 1024))
    started = time.perf_counter()
    build_site(
        BuildOptions(
            index=index,
            out=args.out / "site",
            keys=[index_key],
            now=datetime.now(UTC).replace(microsecond=0),
            smoke=False,
            cache_path=None,
            jobs=2,
        )
    )
    print(
        json.dumps(
            {
                "site": str(args.out / "site"),
                "root": str(index / "root" / "1.root.json"),
                "releases": args.releases,
                "build_s": round(time.perf_counter() - started, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
