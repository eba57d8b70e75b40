"""Run every benchmark in one go (`make bench`) and print their tables.

Each script measures its own peer side by side in the same run and prints ratios:
- bench_smoke.py  harness overhead vs bare wasmtime-py, cold vs cached start of a ~20 MB module,
                  Extism-ABI host vs the official Extism SDK
- bench_build.py  full build vs the hashing + signature-verification floor, incremental rebuild,
                  the python-tuf peer (1k and 10k releases)
- bench_ci.py     `ci check` cost on a small vs a large index (O(changed))
- bench_scale.py  format 2 vs format 1 from 100 to 100k releases (install, update, search, rebuild)
- bench_perf.py   CLI start-up vs `python -c pass`, a 32 MiB signature vs `minisign -V`, verifying
                  a site and `client verify` vs their hashing + Ed25519 floor, install into a full
                  folder vs an empty one
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_smoke.py", "bench_build.py", "bench_ci.py", "bench_scale.py", "bench_perf.py"]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    print(f"machine: {machine()}\n", flush=True)
    failed = 0
    for script in SCRIPTS:
        print(f"=== {script}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / script)], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
