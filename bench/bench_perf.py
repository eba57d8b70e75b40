"""Benchmark: costs that must stay flat in the work around them and near their floor, side by side.

One run prints, each as a ratio to its peer measured in the same run, interleaved:

* start-up      `registry-tool --help` and `validate` of one release vs `python -c pass` (whole
                processes; medians of interleaved runs);
* signature     the library's check of a 32 MiB file's minisign signature (``verify_file``,
                streamed BLAKE2b prehash) vs the `minisign -V` binary on the same files;
* site verify   ``verify_releases`` (`registry-tool verify SITE --root SITE/root`) over every
                release of a built site vs the floor: sha256 of every release file + the two
                Ed25519 checks of every signature (BLAKE2b prehash, signature, trusted comment);
* client verify ``verify_installed`` of N installed plugins with the trust state vs the floor
                (sha256 of each installed manifest and module + the Ed25519 checks of each
                stored signature);
* client site   ``verify_site`` (`registry-tool client verify-site SITE --root ROOT`): every release
                of the site checked as ``install`` checks it (plugin documents, manifest pins,
                maintainer signatures, module pins) vs the same floor as site verify;
* install       installing one plugin into a folder holding N plugins vs into an empty folder
                (wall and CPU time).

The build-vs-floor, scale and sandbox figures are bench_build.py, bench_scale.py and
bench_smoke.py (run_all.py runs them all).  Run:
`.venv/bin/python bench/bench_perf.py [--releases 1000] [--installed 1000] [--reps 7]`.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import bench_build  # noqa: E402  (the synthetic index generator and the floor's definition)

from registry_tool.signing import Signature  # noqa: E402

PY = sys.executable
TOOL = str(Path(PY).with_name("registry-tool"))


def interleaved(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Median seconds of each function, run in turn so the load hits every one alike.

    The median CPU time of each (this process's, user + system) is left in ``CPU``: on the
    loaded machine it moves less than wall time.  A function returning a (wall, CPU) pair has
    timed itself (a worker process: the pipe is not counted).
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            own = fn()
            elapsed, used = time.perf_counter() - t, time.process_time() - c
            if isinstance(own, tuple):
                elapsed, used = own
            times[name].append(elapsed)
            cpu[name].append(used)
    CPU.clear()
    CPU.update({k: statistics.median(v) for k, v in cpu.items()})
    return {k: statistics.median(v) for k, v in times.items()}


CPU: dict[str, float] = {}


def cpu_row(measure: str, ours: str, peer: str, goal: str) -> None:
    """``row`` for the CPU medians of the last ``interleaved`` run."""
    row(f"{measure}, CPU", CPU[ours], CPU[peer], "floor", goal)


def proc(*argv: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    return run


def row(measure: str, ours: float, peer: float, peer_name: str, goal: str) -> None:
    print(
        f"| {measure} | {ours * 1000:.1f} ms | {peer_name} {peer * 1000:.1f} ms"
        f" | {ours / peer:.2f}x | {goal} |",
        flush=True,
    )


# --------------------------------------------------------------------------- start-up


def _tool(*argv: str, env: Callable[[], dict[str, str]] | None = None) -> Callable[[], None]:
    """A `registry-tool` process; ``env`` builds extra environment variables for each run."""

    def run() -> None:
        extra = env() if env else {}
        subprocess.run(
            [TOOL, *argv],
            cwd=REPO,
            env={**os.environ, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )

    return run


def _with_cpu(fn: Callable[[], None], cpu: list[float]) -> Callable[[], None]:
    """``fn``, appending the CPU seconds (user + system) its child processes used to ``cpu``."""

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fn()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    return run


def startup(reps: int) -> None:
    """`--help` and `validate` of one release, whole processes, against `python -c pass`.

    ``validate`` runs with its cache warm (remembered verdicts, what every run after the first
    sees) and cold (a fresh, empty cache directory for each run: a fresh CI runner).  With
    ``REGISTRY_TOOL_BENCH_BEFORE=DIR`` (an export of an older commit) the same commands also
    run on that code (``PYTHONPATH=DIR``), interleaved with the rest.  Each row also gives the
    median CPU time of the process (user + system), which the load moves less than wall time.
    """
    release = "index/plugins/adler32/1.0.0"
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    runs = iter(range(1 << 30))

    def fresh_cache() -> dict[str, str]:
        return {"XDG_CACHE_HOME": str(scratch / str(next(runs)))}

    plain: dict[str, Callable[[], None]] = {
        "pass": proc(PY, "-c", "pass"),
        "help": _tool("--help"),
        "validate": _tool("validate", release),
        "validate json": _tool("validate", release, "--format", "json"),
        "validate cold": _tool("validate", release, env=fresh_cache),
    }
    before = os.environ.get("REGISTRY_TOOL_BENCH_BEFORE")
    if before:
        plain["help before"] = _tool("--help", env=lambda: {"PYTHONPATH": before})
        plain["validate before"] = _tool("validate", release, env=lambda: {"PYTHONPATH": before})
        plain["validate cold before"] = _tool(
            "validate", release, env=lambda: {"PYTHONPATH": before, **fresh_cache()}
        )
    # Both trees run from bytecode, as an installed package does (with PYTHONDONTWRITEBYTECODE set,
    # an export or an editable install would otherwise compile every module in every run).
    for tree in [REPO, *([Path(before)] if before else [])]:
        compileall.compile_dir(tree / "registry_tool", quiet=1)
    cpu: dict[str, list[float]] = {name: [] for name in plain}
    fns: dict[str, Callable[[], Any]] = {name: _with_cpu(fn, cpu[name]) for name, fn in plain.items()}
    _tool("validate", release)()  # fill the cache the warm rows read
    if before:
        plain["validate before"]()
    try:
        m = interleaved(fns, reps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    goal_help, goal_validate = "<= 120 ms or <= 8x", "<= 250 ms or <= 15x"
    py = "`python -c pass`"
    rows = [
        ("`registry-tool --help`", "help", goal_help),
        ("`registry-tool validate` one release (cache warm)", "validate", goal_validate),
        ("the same, `--format json`", "validate json", goal_validate),
        ("the same, cache cold (first run)", "validate cold", goal_validate),
    ]
    if before:
        rows += [
            ("`registry-tool --help`, before", "help before", goal_help),
            ("`registry-tool validate`, before", "validate before", goal_validate),
            ("the same, cache cold, before", "validate cold before", goal_validate),
        ]
    for measure, name, goal in rows:
        row(measure, m[name], m["pass"], py, goal)
    print(
        "\nCPU (user + system, median): "
        + ", ".join(f"{name} {statistics.median(cpu[name]) * 1000:.0f} ms" for name in plain),
        flush=True,
    )


# --------------------------------------------------------------------------- signature


def signature(work: Path, reps: int) -> None:
    from registry_tool.signing import SecretKey, sign_file, verify_file
    from registry_tool.signing.minisign import PublicKey

    minisign = shutil.which("minisign")
    if minisign is None:
        print("| 32 MiB signature | minisign not installed | | | |")
        return
    big = work / "big.bin"
    with big.open("wb") as f:
        for i in range(32):
            f.write(hashlib.sha512(i.to_bytes(4, "big")).digest() * (1 << 14))
    secret = SecretKey.generate()
    (work / "k.pub").write_text(secret.public_key.to_text())
    sig = sign_file(big, secret, trusted_comment="bench")
    public = PublicKey.parse((work / "k.pub").read_text())
    sig_text = sig.read_bytes()
    m = interleaved(
        {
            "ours": lambda: verify_file(public, big, sig_text),
            "minisign": proc(minisign, "-Vq", "-p", str(work / "k.pub"), "-m", str(big)),
        },
        reps,
    )
    row("library check of a 32 MiB signature", m["ours"], m["minisign"], "`minisign -V`", "<= 1.0x")


# --------------------------------------------------------------------------- site and client


def _release_floor(folders: list[Path], public: Ed25519PublicKey) -> None:
    """sha256 of every file of each release, the two Ed25519 checks of each plugin.toml signature."""
    for folder in folders:
        manifest, sigs = b"", []
        for f in sorted(folder.iterdir()):
            data = f.read_bytes()
            hashlib.sha256(data).digest()
            if f.name == "plugin.toml":
                manifest = data
            elif f.name.startswith("plugin.toml") and f.name.endswith(".minisig"):
                sigs.append(data.decode())
        prehash = hashlib.blake2b(manifest, digest_size=64).digest()
        for text in sigs:
            s = Signature.parse(text)
            public.verify(s.signature, prehash)
            public.verify(s.global_signature, s.signature + s.trusted_comment.encode())


def build_site(work: Path, releases: int) -> tuple[Path, Any]:
    from registry_tool.registry.build import BuildOptions
    from registry_tool.registry.build import build_site as build

    index, index_key, maint, _ = bench_build.generate(work, releases, 1024)
    site = work / "site"
    build(BuildOptions(index=index, out=site, keys=[index_key], now=bench_build.NOW, smoke=False, jobs=1))
    return site, maint


def site_verify(site: Path, maint: Any, reps: int) -> None:
    from registry_tool.trust.check import release_dirs, verify_release_dir, verify_releases

    folders = release_dirs(site)
    public = Ed25519PublicKey.from_public_bytes(maint.public_key.raw)
    now = bench_build.NOW + timedelta(minutes=1)

    def ours() -> None:
        report = verify_releases(site, site / "root", now)
        assert report.ok and len(report.results) == len(folders), report.to_json()

    fns: dict[str, Callable[[], Any]] = {"floor": lambda: _release_floor(folders, public), "ours": ours}
    if BEFORE is not None:
        fns["before"] = BEFORE.timed("dir")
    m = interleaved(fns, reps)
    row(f"verify a site of {len(folders):,} releases", m["ours"], m["floor"], "floor", "<= 1.5x")
    cpu_row("the same", "ours", "floor", "<= 1.5x")
    if "before" in m:
        row("the same, before", m["before"], m["floor"], "floor", "<= 1.5x")
        cpu_row("the same, before", "before", "floor", "<= 1.5x")
    sample = folders[:300]  # a root-chain walk per release: the whole site would take minutes

    def one_by_one() -> None:  # what verifying release by release costs: a root-chain walk each
        for folder in sample:
            assert verify_release_dir(folder, site / "root", now).ok

    m = interleaved({"floor": lambda: _release_floor(sample, public), "each": one_by_one}, max(1, reps // 3))
    row(
        f"the same, release by release (`verify_release_dir`, {len(sample)} releases)",
        m["each"],
        m["floor"],
        "floor",
        "(reference)",
    )


def install_rows(
    reg: Any, names: list[str], full: Path, empty: Path, installed: int, reps: int, state: Path
) -> None:
    """Install + remove one plugin in a host process: a folder of ``installed`` plugins vs an empty one.

    With ``REGISTRY_TOOL_BENCH_BEFORE`` the older code does the same in its worker process, on
    copies of both folders and of the client state, in the same repetitions.
    """
    from registry_tool.client import list_installed, remove

    started = time.perf_counter()
    for name in names[:installed]:
        reg.install(name, full)
    fill = time.perf_counter() - started
    print(f"(installed {min(installed, len(names)):,} plugins one by one in {fill:.1f} s)", flush=True)
    target = names[-1] if len(names) > installed else names[0]
    if target in {e.name for e in list_installed(full)}:
        return
    if BEFORE is not None:
        copies = [full.with_name(f"before-{p.name}") for p in (full, empty, state)]
        shutil.copytree(full, copies[0], symlinks=True)
        copies[1].mkdir()
        shutil.copytree(state, copies[2], symlinks=True)
        BEFORE.ask("install-dirs " + "\t".join([reg.url, *map(str, copies), target]))
    # The set-up (a 10,000-release site's documents, 1,000 installs) leaves a heap of millions of
    # objects that a fresh `registry-tool client` process does not have; without this, every
    # garbage collection a measured call triggers walks it and is charged to that call.
    gc.collect()
    gc.freeze()

    def install_into(dest: Path) -> Callable[[], None]:
        def run() -> None:
            reg.install(target, dest)
            remove(dest, target)

        return run

    runs: dict[str, Callable[[], Any]] = {"empty": install_into(empty), "full": install_into(full)}
    for run in runs.values():  # the first install in a process parses the root's schema etc.
        run()
    pairs = [("empty", "full")]
    if BEFORE is not None:
        runs["before empty"] = BEFORE.timed("install empty")
        runs["before full"] = BEFORE.timed("install full")
        pairs.append(("before empty", "before full"))
    # Each pair runs back to back, its order swapped every repetition: the first call after the
    # other process ran finds cold caches, and that must not always be the same folder's.
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for rep in range(reps):
        for pair in pairs:
            for name in pair[:: -1 if rep % 2 else 1]:
                t, c = time.perf_counter(), time.process_time()
                own = runs[name]()
                elapsed, used = (
                    own if isinstance(own, tuple) else (time.perf_counter() - t, time.process_time() - c)
                )
                wall[name].append(elapsed)
                cpu[name].append(used)
    m = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    label = f"install + remove into a folder with {installed:,} plugins"
    row(f"{label} (wall)", m["full"], m["empty"], "empty folder", "<= 1.2x")
    row("the same, CPU time of the process", c["full"], c["empty"], "empty folder", "<= 1.2x")
    if BEFORE is not None:
        row("the same, before (wall)", m["before full"], m["before empty"], "empty folder", "<= 1.2x")
        row("the same, before, CPU", c["before full"], c["before empty"], "empty folder", "<= 1.2x")


def client(site: Path, maint: Any, work: Path, installed: int, reps: int, verify_rows: bool = True) -> None:
    from registry_tool.client import Registry, list_installed, trust, verify_installed
    from registry_tool.client import install as client_install

    url = site.resolve().as_uri()

    def clock() -> Any:
        return bench_build.NOW + timedelta(minutes=2)

    state = work / "state"
    trust(url, root_bytes=(site / "root/1.root.json").read_bytes(), state_dir=state, clock=clock)
    reg = Registry.open(url, state_dir=state, clock=clock)
    names = sorted({p.parent.parent.name for p in (site / "plugins").glob("*/*/plugin.toml")})
    full = work / "full"
    install_rows(reg, names, full, work / "empty", installed, reps, state)
    if not verify_rows:
        return
    public = Ed25519PublicKey.from_public_bytes(maint.public_key.raw)
    entries = list_installed(full)
    folders = [full / e.release_dir for e in entries]

    def ours(cold: bool) -> Callable[[], None]:
        def run() -> None:
            if cold:  # as a fresh `client verify` process: the lockfile is parsed, not reused
                client_install._PARSED.clear()
            report = verify_installed(full, state_dir=state, clock=clock)
            assert report.ok and len(report.results) == len(entries), report.to_json()

        return run

    floor = lambda: _release_floor(folders, public)  # noqa: E731
    fns: dict[str, Callable[[], Any]] = {"floor": floor, "cold": ours(True), "warm": ours(False)}
    if BEFORE is not None:
        BEFORE.setup_client(full, state)
        fns["before cold"] = BEFORE.timed("client cold")
        fns["before warm"] = BEFORE.timed("client warm")
    m = interleaved(fns, reps)
    row(f"`client verify` of {len(entries):,} installed plugins", m["cold"], m["floor"], "floor", "<= 1.5x")
    cpu_row("the same", "cold", "floor", "<= 1.5x")
    row("the same, lockfile parse reused (a host process)", m["warm"], m["floor"], "floor", "(reference)")
    cpu_row("the same, lockfile parse reused", "warm", "floor", "(reference)")
    if BEFORE is not None:
        row("`client verify`, before", m["before cold"], m["floor"], "floor", "<= 1.5x")
        cpu_row("`client verify`, before", "before cold", "floor", "<= 1.5x")
        row("the same, lockfile parse reused, before", m["before warm"], m["floor"], "floor", "(reference)")
        cpu_row("the same, lockfile parse reused, before", "before warm", "floor", "(reference)")
    client_site(site, maint, max(1, reps // 3))


def client_site(site: Path, maint: Any, reps: int) -> None:
    """`client verify-site`: every release as `install` verifies it, from the built folder (file://)."""
    from registry_tool.client import verify_site
    from registry_tool.trust.check import release_dirs

    folders = release_dirs(site)
    public = Ed25519PublicKey.from_public_bytes(maint.public_key.raw)
    root = (site / "root/1.root.json").read_bytes()

    def ours() -> None:
        report = verify_site(site, root_bytes=root, clock=lambda: bench_build.NOW + timedelta(minutes=2))
        assert report.ok and len(report.results) == len(folders), report.to_json()

    fns: dict[str, Callable[[], Any]] = {"floor": lambda: _release_floor(folders, public), "ours": ours}
    if BEFORE is not None:
        fns["before"] = BEFORE.timed("site")
    m = interleaved(fns, reps)
    row(f"`client verify-site` of {len(folders):,} releases", m["ours"], m["floor"], "floor", "<= 1.5x")
    cpu_row("the same", "ours", "floor", "<= 1.5x")
    if "before" in m:
        row("the same, before", m["before"], m["floor"], "floor", "<= 1.5x")
        cpu_row("the same, before", "before", "floor", "<= 1.5x")


class Before:
    """The site and client verifications of older code, in a worker process run on it.

    ``REGISTRY_TOOL_BENCH_BEFORE=DIR`` (an export of an older commit, e.g. ``git archive main``):
    the worker imports ``registry_tool`` from DIR and times one call per request, so its rows
    interleave with the current code's in the same run (only the call is timed, not the pipe).
    """

    def __init__(self, code: str, site: Path) -> None:
        self.proc = subprocess.Popen(
            [PY, __file__, "--worker", str(site)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": code},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError(f"the before-worker failed on {line!r}: {answer}")
        return answer

    def setup_client(self, full: Path, state: Path) -> None:
        self.ask(f"client-dirs {full}\t{state}")

    def timed(self, what: str) -> Callable[[], tuple[float, float]]:
        """A call that runs ``what`` in the worker: the wall and CPU seconds the worker measured."""

        def run() -> tuple[float, float]:
            wall, cpu = self.ask(what).split()
            return float(wall), float(cpu)

        return run

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


BEFORE: Before | None = None


def worker(site: Path) -> int:
    """Serve ``Before``: run what each line asks with the registry_tool on PYTHONPATH."""
    from registry_tool.client import Registry, verify_installed, verify_site
    from registry_tool.client import install as client_install
    from registry_tool.trust.check import verify_releases

    root = (site / "root/1.root.json").read_bytes()
    later = bench_build.NOW + timedelta(minutes=2)
    dirs: list[Path] = []
    frozen = False
    installing: dict[str, Any] = {}

    def run(what: str) -> None:
        if what.startswith("install "):
            dest = installing["empty" if what.endswith("empty") else "full"]
            installing["reg"].install(installing["target"], dest)
            client_install.remove_plugin(dest, installing["target"])
        elif what == "dir":
            assert verify_releases(site, site / "root", bench_build.NOW + timedelta(minutes=1)).ok
        elif what == "site":
            assert verify_site(site, root_bytes=root, clock=lambda: later).ok
        elif what.startswith("client"):
            if what.endswith("cold"):
                client_install._PARSED.clear()
            assert verify_installed(dirs[0], state_dir=dirs[1], clock=lambda: later).ok
        else:
            raise ValueError(what)

    for line in sys.stdin:
        what = line.strip()
        try:
            if what.startswith("install-dirs "):  # url, full, empty, state, target; warmed in both
                url, full, empty, state, target = what.split(" ", 1)[1].split("\t")
                reg = Registry.open(url, state_dir=Path(state), clock=lambda: later)
                installing.update(reg=reg, full=Path(full), empty=Path(empty), target=target)
                run("install empty")
                run("install full")
                print("0", flush=True)
                continue
            if what.startswith("client-dirs "):
                dirs[:] = [Path(p) for p in what.split(" ", 1)[1].split("\t")]
                print("0", flush=True)
                continue
            if not frozen:  # as the main process: warm imports and caches, then freeze the heap
                run(what)
                gc.collect()
                gc.freeze()
                frozen = True
            started, cpu = time.perf_counter(), time.process_time()
            run(what)
            print(time.perf_counter() - started, time.process_time() - cpu, flush=True)
        except Exception as err:  # reported to the parent, which stops
            print(f"error {type(err).__name__}: {err}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000, help="releases in the verified site")
    parser.add_argument("--installed", type=int, default=1000, help="plugins installed for the client rows")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--only", default="startup,signature,site,client", help="comma list; also: install")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        return worker(args.worker)
    only = set(args.only.split(","))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"machine: {bench_build.machine()}; load average {' '.join(load)}\n")
    print("| measure | registry-tool | peer | ratio | goal |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        work = Path(tmp)
        if "startup" in only:
            startup(args.reps)
        if "signature" in only:
            signature(work, args.reps)
        if only & {"site", "client", "install"}:
            # bench_build gives 10 releases (versions) per plugin: enough plugins for the client rows.
            wanted = args.installed * 10 + 10 if only & {"client", "install"} else 0
            site, maint = build_site(work, max(args.releases, wanted))
            global BEFORE
            before = os.environ.get("REGISTRY_TOOL_BENCH_BEFORE")
            BEFORE = Before(before, site) if before else None
            try:
                if "site" in only:
                    site_verify(site, maint, args.reps)
                if only & {"client", "install"}:
                    client(site, maint, work, args.installed, args.reps, verify_rows="client" in only)
            finally:
                if BEFORE is not None:
                    BEFORE.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
