"""Benchmark (not a test): `ci check` costs O(changed), not O(index size).

Builds two index repositories that differ only in how many unchanged releases the base holds
(SMALL vs LARGE), opens the same one-release pull request on both, and prints the check's wall
time for each and their ratio, measured side by side in one run.  Run:

    .venv/bin/python bench/bench_ci.py [SMALL] [LARGE]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry_tool.ci.check import CheckOptions, check_pull_request
from tests.ci import conftest


def build(root: Path, unchanged: int) -> conftest.IndexRepo:
    path, keys = conftest.make_base_repo(Path(tempfile.mkdtemp(dir=root)) / "index-repo")
    repo = conftest.IndexRepo(path, keys)
    template = path / "index" / "plugins" / "beta" / "1.0.0"
    for i in range(unchanged):  # copies nobody reads: the check must never open them
        shutil.copytree(template, path / "index" / "plugins" / f"filler{i:05d}" / "1.0.0")
    repo.commit("fillers")
    subprocess.run(["git", "checkout", "-q", "-b", "pr"], cwd=path, check=True)
    repo.release("alpha", "1.1.0")
    repo.commit("pr")
    return repo


def timed(repo: conftest.IndexRepo, runs: int = 3) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        report = check_pull_request(repo.path, [repo.index], CheckOptions(base="main"))
        samples.append(time.perf_counter() - began)
        assert report.ok and len(report.results) == 1
    return statistics.median(samples)


def main() -> None:
    small, large = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("10", "2000")))
    with tempfile.TemporaryDirectory() as tmp:
        repos = {n: build(Path(tmp), n) for n in (small, large)}
        times = {n: timed(repo) for n, repo in repos.items()}
    for n, t in times.items():
        print(f"ci check, 1 changed release, {n:>6} unchanged releases: {t * 1000:8.1f} ms (median of 3)")
    print(f"ratio large/small: {times[large] / times[small]:.2f} (1.0 = independent of index size)")


if __name__ == "__main__":
    main()
