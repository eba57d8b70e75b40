"""Benchmark: registry-tool build vs the hashing+verification floor vs python-tuf.

Generates synthetic indexes (N releases, small or large wasm, every release signed by a
bench maintainer key), then measures in ONE run, on the same files:

* floor        sha256 of every published file + the Ed25519 checks of every signature
               (minisign: BLAKE2b-512 prehash, signature, trusted-comment signature):
               the physical minimum for "check every digest and signature";
* full         `build_site` from scratch (no cache): validate, verify, hash, write, sign;
  full j2      the same with `--jobs 2` (the build and one worker process, for 1,000 releases or more);
* core         the full build with the manifest rules (`check_release`) replaced by a plain parse
               and read: what the build itself (verify, hash, write the site, sign) costs over the floor;
* cpu          process CPU time of the single-process floor and full build: on a machine shared with
               other jobs, wall times swing with the load and the disk, CPU time much less;
* incremental  one release added, cache warm, files untouched (stat fast path);
* fresh-clone  one release added, cache warm, every file's mtime/ctime new (content-key path,
               what a CI job sees after `git clone` with a restored cache);
* python-tuf   a tuf.api.metadata Targets role with one TargetFile per published file
               (hashes sha256 + length, computed from the files), signed with an Ed25519
               securesystemslib signer and written to disk: the peer doing the same job;
  tuf+checks   the same plus the floor's signature checks of every release (the goal's peer);
* incr files   site files the one-change rebuild wrote (the goal: O(changed), not O(N)).

Smoke runs are off (`smoke=False`): the floor has no equivalent and they are cached per
digest anyway.  Run: `.venv/bin/python bench/bench_build.py [--sizes 1000,10000] [--large-kib 1024]`;
`--quick` runs only the full build and the one-change rebuild side by side (small wasm),
`--quick --profile FILE` writes the rebuild's cProfile stats to FILE.

`--before DIR` (DIR holds another version of the code, e.g. `git archive main` extracted) compares
full builds instead: on the same index, `--reps` interleaved rounds of floor, fl+copy, fl+libs
(fl+copy plus the TOML parse, the compiled schema and wasmtime's validation per release), the full
build of this code and of DIR in one process and with `--jobs N` (each build in a fresh process
with that code on PYTHONPATH, timed around `build_site`, CPU time including its workers) and
tuf+checks; the best round of each is printed (the machine's load moves every figure).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.signing import SecretKey, Signature, sign_bytes
from registry_tool.signing.release import release_trusted_comment
from registry_tool.trust.editing import add_maintainer, edit_root_dir, init_root_dir, new_root, sign_root_dir

NOW = datetime.now(UTC).replace(microsecond=0)
REGISTRY_TOML = """\
[registry]
name = "bench"
description = "synthetic benchmark registry"
base_url = "http://127.0.0.1:8765/"

[host]
name = "ferrite"
versions = ">=0.2.0, <1.0.0"

[abis]
allowed = ["core"]

[limits.default]
fuel = 50_000_000
memory = "16MiB"
wall_time = "2s"

[limits.max]
fuel = 1_000_000_000
memory = "256MiB"
wall_time = "10s"
module_size = "32MiB"

[index]
validity = "7d"
"""

MANIFEST = """\
[plugin]
name = "{name}"
version = "{version}"
description = "synthetic plugin {i}"
authors = ["bench"]
license = "MIT"
abi = "core"
min_host_version = "0.2.0"

[artifact]
file = "{name}.wasm"
sha256 = "{sha}"
size = {size}

[exports]
functions = ["run"]

[[tests]]
call = "run"
args = [1]
expect = [2]
"""


def key() -> SecretKey:
    return SecretKey.generate()


def module_template(payload: int) -> tuple[bytes, int]:
    """A valid core module with a ``payload``-byte data segment; returns (bytes, payload offset)."""
    import wasmtime

    marker = b"BENCHMARK-PAYLOAD"
    filler = marker + b"\x00" * max(0, payload - len(marker))
    escaped = "".join(f"\\{b:02x}" for b in filler)
    pages = payload // 65536 + 1
    wat = (
        f'(module (memory (export "memory") {pages}) (data (i32.const 0) "{escaped}")'
        ' (func (export "run") (param i32) (result i32) local.get 0 i32.const 1 i32.add))'
    )
    data = bytes(wasmtime.wat2wasm(wat))
    return data, data.index(marker)


def generate(root: Path, n: int, payload: int) -> tuple[Path, SecretKey, SecretKey, list[Path]]:
    index = root / "index"
    (index / "plugins").mkdir(parents=True)
    (index / "registry.toml").write_text(REGISTRY_TOML)
    root_key, index_key, maint = key(), key(), key()
    data = new_root("bench", [root_key.public_key], [index_key.public_key], expires=NOW + timedelta(days=30))
    init_root_dir(index / "root", data)
    sign_root_dir(index / "root", root_key)
    edit_root_dir(index / "root", add_maintainer("bench", [maint.public_key], ["*"]), now=NOW)
    sign_root_dir(index / "root", root_key)
    template, offset = module_template(payload)
    releases = []
    for i in range(n):
        name, version = f"plugin-{i // 10:05d}", f"1.0.{i % 10}"
        releases.append(write_release(index, name, version, i, template, offset, maint))
    old = time.time() - 3600  # a checkout made an hour ago: the stat cache may trust these files
    for folder in releases:
        for f in folder.iterdir():
            os.utime(f, (old, old))
    return index, index_key, maint, releases


def write_release(
    index: Path, name: str, version: str, i: int, template: bytes, offset: int, maint: SecretKey
) -> Path:
    folder = index / "plugins" / name / version
    folder.mkdir(parents=True)
    wasm = bytearray(template)
    wasm[offset : offset + 8] = i.to_bytes(8, "little")  # distinct bytes per release
    (folder / f"{name}.wasm").write_bytes(wasm)
    text = MANIFEST.format(
        name=name, version=version, i=i, sha=hashlib.sha256(wasm).hexdigest(), size=len(wasm)
    )
    (folder / "plugin.toml").write_text(text)
    comment = release_trusted_comment(name, version, timestamp=int(NOW.timestamp()))
    (folder / "plugin.toml.minisig").write_text(sign_bytes(maint, text.encode(), trusted_comment=comment))
    return folder


def _floor_chunk(releases: list[Path], public_key: bytes) -> int:
    """Read + sha256 every file of the releases, the two Ed25519 checks of each minisign signature."""
    pub = Ed25519PublicKey.from_public_bytes(public_key)
    for folder in releases:
        manifest = b""
        sig_text = ""
        for f in sorted(folder.iterdir()):
            data = f.read_bytes()
            hashlib.sha256(data).digest()
            if f.name == "plugin.toml":
                manifest = data
            elif f.name == "plugin.toml.minisig":
                sig_text = data.decode()
        sig = Signature.parse(sig_text)
        pub.verify(sig.signature, hashlib.blake2b(manifest, digest_size=64).digest())
        pub.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
    return len(releases)


def floor(releases: list[Path], maint: SecretKey, jobs: int = 1) -> float:
    """The floor in one process, or in ``jobs`` spawned processes (started inside the timing, as the
    build's workers are) on a few large chunks: the same split the build uses."""
    t = time.perf_counter()
    if jobs <= 1:
        cpu = time.process_time()
        _floor_chunk(releases, maint.public_key.raw)
        CPU["floor"] = time.process_time() - cpu
        return time.perf_counter() - t
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(releases) // (jobs * 4))
    chunks = [releases[i : i + size] for i in range(0, len(releases), size)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = sum(pool.map(_floor_chunk, chunks, [maint.public_key.raw] * len(chunks)))
    assert done == len(releases)
    return time.perf_counter() - t


def floor_with_copy(releases: list[Path], maint: SecretKey, out: Path) -> float:
    """The floor plus writing every file once to a new folder: the least a build that publishes
    the bytes it verified can do (the floor itself writes nothing)."""
    t = time.perf_counter()
    _floor_chunk(releases, maint.public_key.raw)
    for folder in releases:
        dst = out / folder.parent.name / folder.name
        dst.mkdir(parents=True)
        for f in folder.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())
    return time.perf_counter() - t


def floor_with_libraries(releases: list[Path], maint: SecretKey, out: Path) -> float:
    """fl+copy plus what the rules need from libraries per release, nothing of ours: the TOML parse
    (tomli), plugin.toml's compiled JSON schema (fastjsonschema) and wasmtime's module validation."""
    import tomli
    import wasmtime

    from registry_tool.manifest.source import compiled_schema
    from registry_tool.manifest.wasm import make_engine

    schema, engine = compiled_schema("plugin.schema.json"), make_engine({})
    t = time.perf_counter()
    _floor_chunk(releases, maint.public_key.raw)
    for folder in releases:
        dst = out / folder.parent.name / folder.name
        dst.mkdir(parents=True)
        for f in folder.iterdir():
            data = f.read_bytes()
            (dst / f.name).write_bytes(data)
            if f.name == "plugin.toml":
                schema(tomli.loads(data.decode()))
            elif f.suffix == ".wasm":
                wasmtime.Module.validate(engine, data)
    return time.perf_counter() - t


def tuf_peer(releases: list[Path], index: Path, out: Path, maint: SecretKey | None = None) -> float:
    """python-tuf: Targets metadata with a TargetFile per published file, Ed25519-signed, written.

    With ``maint``, each release's maintainer signature is checked too (the floor's two Ed25519
    checks per minisign signature): python-tuf building the same targets plus the same checks.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
    from tuf.api.metadata import Metadata, TargetFile, Targets  # type: ignore[attr-defined]
    from tuf.api.serialization.json import JSONSerializer

    signer = CryptoSigner(Ed25519PrivateKey.generate())
    t = time.perf_counter()
    targets = Targets(expires=NOW + timedelta(days=7))
    out.mkdir(parents=True)
    public = Ed25519PublicKey.from_public_bytes(maint.public_key.raw) if maint is not None else None
    for folder in releases:
        rel = folder.relative_to(index).as_posix()
        if public is not None:
            sig = Signature.parse((folder / "plugin.toml.minisig").read_text())
            prehash = hashlib.blake2b((folder / "plugin.toml").read_bytes(), digest_size=64).digest()
            public.verify(sig.signature, prehash)
            public.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
        for f in sorted(folder.iterdir()):
            path = f"{rel}/{f.name}"
            targets.targets[path] = TargetFile.from_file(path, str(f), ["sha256"])
            dst = out / path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
    md = Metadata(targets)
    md.sign(signer)
    md.to_file(str(out / "targets.json"), JSONSerializer(compact=False))
    return time.perf_counter() - t


def run(
    n: int, payload: int, workdir: Path, quick: bool = False, profile: str | None = None
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{n}-", dir=workdir))
    try:
        index, index_key, maint, releases = generate(work, n, payload)
        if quick:
            return _quick(work, index, index_key, maint, n, payload, profile)
        jobs = JOBS
        figures = {"floor": floor(releases, maint), "floor-jN": floor(releases, maint, jobs)}
        figures["floor+copy"] = floor_with_copy(releases, maint, work / "copy")
        shutil.rmtree(work / "copy")

        def build(out: str, cache: Path | None, previous: bool = False, jobs: int = 1) -> float:
            """One build; its wall time (CPU time and files written kept in CPU / FILES)."""
            t, cpu = time.perf_counter(), time.process_time()
            opts = BuildOptions(
                index=index,
                out=work / out,
                keys=[index_key],
                now=datetime.now(UTC).replace(microsecond=0),
                smoke=False,
                cache_path=cache,
                previous=str(work / out) if previous else None,
                jobs=jobs,
            )
            FILES["written"] = int(build_site(opts).site_files["written"])
            CPU["build"] = time.process_time() - cpu
            return time.perf_counter() - t

        figures["full"] = build("site-nocache", None)
        figures["full-cpu"], figures["floor-cpu"] = CPU["build"], CPU["floor"]
        figures["full-jN"] = build("site-nocache-jN", None, jobs=jobs)
        # The same build with the manifest rules (SPDX, host range, artifact, wasmtime validation,
        # imports/exports, tests) replaced by a plain parse of plugin.toml and a read of the
        # module: what the build itself adds to the floor.
        import registry_tool.manifest.validate as validate_mod

        real_check = validate_mod.check_release
        validate_mod.check_release = _rules_off  # type: ignore[assignment]
        try:
            figures["core"] = build("site-core", None)
        finally:
            validate_mod.check_release = real_check
        cache = work / "cache.json"
        build("site", cache)  # warm the cache (cold-cache build, not reported separately)
        template, offset = module_template(payload)
        new = write_release(index, "plugin-new", "1.0.0", n + 1, template, offset, maint)
        figures["incremental"] = build("site", cache, previous=True)
        figures["incr-files"] = FILES["written"]
        for folder in [*releases, new]:
            for f in folder.iterdir():
                os.utime(f)  # new mtime and ctime everywhere: a fresh checkout
        time.sleep(RACY_WAIT)
        figures["fresh-clone"] = build("site", cache, previous=True)
        figures["python-tuf"] = tuf_peer(releases, index, work / "tuf")
        figures["tuf+checks"] = tuf_peer(releases, index, work / "tuf-checks", maint)
        figures["bytes"] = sum(f.stat().st_size for r in releases for f in r.iterdir())
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quick(
    work: Path, index: Path, index_key: SecretKey, maint: SecretKey, n: int, payload: int, profile: str | None
) -> dict[str, float]:
    """Only the full build and the one-change rebuild, side by side (``--quick``).

    With ``profile``, the one-change rebuild runs under cProfile and its stats go to that file.
    """

    def build(out: str, cache: Path | None, previous: bool = False) -> float:
        t, cpu = time.perf_counter(), time.process_time()
        opts = BuildOptions(
            index=index,
            out=work / out,
            keys=[index_key],
            now=datetime.now(UTC).replace(microsecond=0),
            smoke=False,
            cache_path=cache,
            previous=str(work / out) if previous else None,
            jobs=1,
        )
        FILES["written"] = int(build_site(opts).site_files["written"])
        CPU["build"] = time.process_time() - cpu
        return time.perf_counter() - t

    figures = {"full": build("site-nocache", None)}
    figures["full-cpu"] = CPU["build"]
    cache = work / "cache.json"
    build("site", cache)  # warm the cache
    template, offset = module_template(payload)
    write_release(index, "plugin-new", "1.0.0", n + 1, template, offset, maint)
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    figures["incremental"] = build("site", cache, previous=True)
    if profile:
        prof.disable()
        prof.dump_stats(profile)
    figures["incr-files"] = FILES["written"]
    figures["incr-cpu"] = CPU["build"]
    return figures


# One build in a fresh process, for ``--compare`` (the code under test is on PYTHONPATH, ``-P``
# keeps the working directory off sys.path): its wall and CPU time, and the files it wrote.
_BUILD_ONE = """
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from registry_tool.registry.build import BuildOptions, build_site
from registry_tool.signing import SecretKey
index, out, cache, previous, keyfile = sys.argv[1:6]
key = SecretKey.load(Path(keyfile).read_bytes(), None)
opts = BuildOptions(
    index=Path(index), out=Path(out), keys=[key], now=datetime.now(UTC).replace(microsecond=0),
    smoke=False, cache_path=Path(cache) if cache else None, previous=out if previous == "1" else None, jobs=1,
)
t, cpu = time.perf_counter(), time.process_time()
result = build_site(opts)
wall, cpu = time.perf_counter() - t, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "written": result.site_files["written"]}))
"""


def _build_in(
    code: str, index: Path, out: Path, cache: Path | None, previous: bool, keyfile: Path
) -> dict[str, float]:
    """One build by the registry_tool found in folder ``code``, in its own process."""
    env = dict(os.environ, PYTHONPATH=code)
    args = [str(index), str(out), str(cache or ""), "1" if previous else "0", str(keyfile)]
    done = subprocess.run(
        [sys.executable, "-P", "-c", _BUILD_ONE, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"build with {code} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def compare(n: int, workdir: Path, codes: dict[str, str], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Full build and one-change rebuild of each code folder on the same index, interleaved.

    Each round builds the index from scratch once per code (no cache), then adds one release and
    rebuilds each code's own site with its own warm cache and ``--previous SITE``; the order of
    the codes alternates between rounds.  Returns per code the rounds' figures.
    """
    work = Path(tempfile.mkdtemp(prefix=f"bench-cmp-{n}-", dir=workdir))
    try:
        index, index_key, maint, _ = generate(work, n, 1024)
        keyfile = work / "index.key"
        keyfile.write_bytes(index_key.dump(None))
        template, offset = module_template(1024)
        # generate() set every file's mtime an hour back, which made their ctime now: a build within
        # the cache's racy window (2 s) of that would trust no stat print (as it should).
        time.sleep(2.5)
        for code in codes.values():
            # Both trees run from bytecode, as an installed package does: with PYTHONDONTWRITEBYTECODE
            # set, a source tree would compile what the build imports lazily inside the timed call.
            compileall.compile_dir(Path(code) / "registry_tool", quiet=1)
        for name, code in codes.items():  # warm each code's cache and site
            _build_in(code, index, work / f"site-{name}", work / f"cache-{name}", False, keyfile)
        out: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
        for r in range(rounds):
            order = list(codes) if r % 2 == 0 else list(reversed(codes))
            full = {}
            for name in order:
                full[name] = _build_in(codes[name], index, work / f"full-{name}", None, False, keyfile)
                shutil.rmtree(work / f"full-{name}")
            folder = write_release(index, "plugin-new", f"1.0.{r}", n + 1 + r, template, offset, maint)
            old = time.time() - 3600  # as generated: a checkout made an hour ago
            for f in folder.iterdir():
                os.utime(f, (old, old))
            for name in order:
                incr = _build_in(
                    codes[name], index, work / f"site-{name}", work / f"cache-{name}", True, keyfile
                )
                out[name].append(
                    {
                        "full": full[name]["wall"],
                        "full-cpu": full[name]["cpu"],
                        "incremental": incr["wall"],
                        "incr-cpu": incr["cpu"],
                        "incr-files": incr["written"],
                        "load": os.getloadavg()[0],
                    }
                )
                f = out[name][-1]
                print(
                    f"  round {r + 1} {name}: full {f['full']:.2f} s (CPU {f['full-cpu']:.2f}), rebuild "
                    f"{f['incremental']:.3f} s (CPU {f['incr-cpu']:.3f}) = "
                    f"{f['incremental'] / f['full'] * 100:.1f} % "
                    f"wall, {f['incr-cpu'] / f['full-cpu'] * 100:.1f} % CPU, {f['incr-files']:.0f} files "
                    f"(load average {f['load']:.1f})",
                    flush=True,
                )
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


RACY_WAIT = 0.0
CPU: dict[str, float] = {}  # process CPU time of the last single-process floor / build
ROUNDS: list[dict[str, float]] = []  # ``compare_full``: each round's figures
FILES: dict[str, int] = {}  # site files the last build wrote
JOBS = os.cpu_count() or 1


def _rules_off(release_dir: Path, config: object, *, resolved: Path | None = None) -> object:
    from registry_tool.manifest.model import parse_manifest
    from registry_tool.manifest.validate import CheckedRelease
    from registry_tool.report import CheckResult

    path = release_dir / "plugin.toml"
    manifest, _ = parse_manifest(path, path.read_bytes(), str(path))
    assert manifest is not None
    wasm = (release_dir / manifest.artifact.file).read_bytes()
    return CheckedRelease(
        CheckResult(subject=str(release_dir)), manifest, wasm, hashlib.sha256(wasm).hexdigest()
    )


_BUILD_RUNNER = """
import json, pickle, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path

import wasmtime  # noqa: F401  (imported by the bench's index generator in the in-process columns too)

from registry_tool.registry.build import BuildOptions, build_site

index, key, out, jobs = pickle.loads(sys.stdin.buffer.read())
now = datetime.now(UTC).replace(microsecond=0)
opts = BuildOptions(
    index=Path(index), out=Path(out), keys=[key], now=now, smoke=False, cache_path=None, jobs=jobs
)
t, cpu = time.perf_counter(), time.process_time()
build_site(opts)
wall = time.perf_counter() - t
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": time.process_time() - cpu + children.ru_utime + children.ru_stime}))
"""


def build_in_process(code: str, index: Path, key: SecretKey, out: Path, jobs: int) -> tuple[float, float]:
    """A cold full build by the code at ``code`` (on PYTHONPATH) in a fresh process: (wall, CPU) seconds."""
    import json
    import pickle
    import sys

    env = dict(os.environ, PYTHONPATH=code)
    done = subprocess.run(
        [sys.executable, "-P", "-c", _BUILD_RUNNER],  # -P: never the current directory's code
        input=pickle.dumps((str(index), key, str(out), jobs)),
        env=env,
        capture_output=True,
        check=True,
    )
    shutil.rmtree(out)
    figures = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures["wall"], figures["cpu"]


def compare_full(n: int, payload: int, workdir: Path, before: str, reps: int) -> dict[str, float]:
    """Floor, fl+copy, full builds of this code and of ``before`` (1 process, ``JOBS``), tuf+checks.

    Interleaved ``reps`` times on one index; the best of each (wall and CPU) is returned, and in
    ``ROUNDS`` each round's figures (the load moves between rounds: ratios within a round compare
    runs made under about the same load).
    """
    work = Path(tempfile.mkdtemp(prefix=f"bench-cmp-{n}-", dir=workdir))
    here = str(Path(__file__).resolve().parents[1])
    best: dict[str, float] = {}
    ROUNDS[:] = []

    def keep(name: str, wall: float, cpu: float | None = None) -> None:
        best[name] = min(best.get(name, wall), wall)
        ROUNDS[-1][name] = wall
        if cpu is not None:
            best[f"{name}-cpu"] = min(best.get(f"{name}-cpu", cpu), cpu)
            ROUNDS[-1][f"{name}-cpu"] = cpu

    try:
        index, index_key, maint, releases = generate(work, n, payload)
        for _ in range(reps):
            ROUNDS.append({})
            cpu = time.process_time()
            keep("floor", floor(releases, maint), time.process_time() - cpu)
            cpu = time.process_time()
            keep("fl+copy", floor_with_copy(releases, maint, work / "copy"), time.process_time() - cpu)
            shutil.rmtree(work / "copy")
            cpu = time.process_time()
            keep("fl+libs", floor_with_libraries(releases, maint, work / "copy"), time.process_time() - cpu)
            shutil.rmtree(work / "copy")
            for label, code in (("new", here), ("old", before)):
                keep(f"{label}-j1", *build_in_process(code, index, index_key, work / "site", 1))
                keep(f"{label}-jN", *build_in_process(code, index, index_key, work / "site", JOBS))
            keep("tuf+checks", tuf_peer(releases, index, work / "tuf", maint))
            shutil.rmtree(work / "tuf")
            ROUNDS[-1]["load"] = os.getloadavg()[0]
        best["load"] = os.getloadavg()[0]
        return best
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_compare(n: int, f: dict[str, float]) -> None:
    """One block of ``compare`` figures with the ratios of the goal."""
    print(
        f"releases {n}: floor {f['floor']:.2f} s (CPU {f['floor-cpu']:.2f}), fl+copy {f['fl+copy']:.2f} s "
        f"(CPU {f['fl+copy-cpu']:.2f}), fl+libs {f['fl+libs']:.2f} s (CPU {f['fl+libs-cpu']:.2f}), "
        f"tuf+checks {f['tuf+checks']:.2f} s"
    )
    for label in ("new", "old"):
        for jobs in ("j1", "jN"):
            wall, cpu = f[f"{label}-{jobs}"], f[f"{label}-{jobs}-cpu"]
            print(
                f"  {label} {jobs}: {wall:.2f} s (CPU {cpu:.2f} s) = {wall / f['fl+copy']:.2f}x fl+copy, "
                f"{wall / f['tuf+checks']:.2f}x tuf+checks, {wall / f['fl+libs']:.2f}x fl+libs; "
                f"CPU {cpu / f['fl+copy-cpu']:.2f}x fl+copy's, {cpu / f['fl+libs-cpu']:.2f}x fl+libs'"
            )
    print(f"  (best of the rounds; load average {f['load']:.1f})", flush=True)
    if not ROUNDS:
        return
    loads = sorted(r["load"] for r in ROUNDS)
    print(f"  per round ({len(ROUNDS)}, load average {loads[0]:.1f}-{loads[-1]:.1f}): min / median / max")
    for label in ("new", "old"):
        for jobs in ("j1", "jN"):
            cells = []
            for base in ("fl+copy", "fl+libs", "tuf+checks"):
                ratios = sorted(r[f"{label}-{jobs}"] / r[base] for r in ROUNDS)
                cells.append(f"{_spread(ratios)} {base}")
            cpus = sorted(r[f"{label}-{jobs}-cpu"] / r["fl+copy-cpu"] for r in ROUNDS)
            print(f"  {label} {jobs}: " + ", ".join(cells) + f"; CPU {_spread(cpus)} fl+copy's", flush=True)


def _spread(values: list[float]) -> str:
    """``min / median / max`` of sorted ``values`` as ratios."""
    return f"{values[0]:.2f} / {values[len(values) // 2]:.2f} / {values[-1]:.2f}x"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    global JOBS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="release counts, comma separated")
    parser.add_argument("--small-kib", type=float, default=1, help="payload of a small wasm (KiB)")
    parser.add_argument("--large-kib", type=float, default=1024, help="payload of a large wasm (KiB)")
    parser.add_argument(
        "--large-max", type=int, default=1000, help="largest release count run with large wasm"
    )
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--jobs", type=int, default=JOBS, help="processes for the jN columns (CPU count)")
    parser.add_argument(
        "--quick", action="store_true", help="only the full build and the one-change rebuild (small wasm)"
    )
    parser.add_argument(
        "--profile", help="with --quick: cProfile stats of the one-change rebuild to this file"
    )
    parser.add_argument("--before", help="compare full builds with the code in this folder (see above)")
    parser.add_argument("--reps", type=int, default=3, help="with --before: interleaved rounds")
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="with --quick: run the full build and one-change rebuild of this code (a source folder, e.g. "
        "`git archive main` extracted) and of this checkout side by side, each in its own process",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: interleaved repetitions")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    JOBS = args.jobs
    print(f"N = {JOBS} processes for the jN columns")

    def col(name: str, width: int, fn: Callable[[dict[str, float]], str]) -> tuple[str, int, Any]:
        return (name, width, lambda n, label, f: fn(f))

    columns = [
        ("releases", 8, lambda n, label, f: f"{n}"),
        ("wasm", 11, lambda n, label, f: label),
        col("MiB", 7, lambda f: f"{f['bytes'] / 2**20:.1f}"),
        col("floor s", 8, lambda f: f"{f['floor']:.2f}"),
        col("floorN s", 8, lambda f: f"{f['floor-jN']:.2f}"),
        col("fl+copy s", 9, lambda f: f"{f['floor+copy']:.2f}"),
        col("full s", 7, lambda f: f"{f['full']:.2f}"),
        col("full/floor", 10, lambda f: f"{f['full'] / f['floor']:.2f}"),
        col("full/copy", 9, lambda f: f"{f['full'] / f['floor+copy']:.2f}"),
        col("cpu full", 8, lambda f: f"{f['full-cpu']:.2f}"),
        col("cpu f/floor", 11, lambda f: f"{f['full-cpu'] / f['floor-cpu']:.2f}"),
        col("jN s", 7, lambda f: f"{f['full-jN']:.2f}"),
        col("jN/floorN", 9, lambda f: f"{f['full-jN'] / f['floor-jN']:.2f}"),
        col("core s", 7, lambda f: f"{f['core']:.2f}"),
        col("core/floor", 10, lambda f: f"{f['core'] / f['floor']:.2f}"),
        col("incr s", 7, lambda f: f"{f['incremental']:.2f}"),
        col("incr/full", 9, lambda f: f"{f['incremental'] / f['full']:.3f}"),
        col("incr files", 10, lambda f: f"{f['incr-files']:.0f}"),
        col("clone s", 7, lambda f: f"{f['fresh-clone']:.2f}"),
        col("clone/full", 10, lambda f: f"{f['fresh-clone'] / f['full']:.3f}"),
        col("tuf s", 7, lambda f: f"{f['python-tuf']:.2f}"),
        col("full/tuf", 8, lambda f: f"{f['full'] / f['python-tuf']:.2f}"),
        col("jN/tuf", 7, lambda f: f"{f['full-jN'] / f['python-tuf']:.2f}"),
        col("clone/tuf", 9, lambda f: f"{f['fresh-clone'] / f['python-tuf']:.2f}"),
        col("tuf+chk s", 9, lambda f: f"{f['tuf+checks']:.2f}"),
        col("full/tuf+chk", 12, lambda f: f"{f['full'] / f['tuf+checks']:.2f}"),
        col("jN/tuf+chk", 10, lambda f: f"{f['full-jN'] / f['tuf+checks']:.2f}"),
    ]
    if args.before:
        for n in (int(s) for s in args.sizes.split(",")):
            print_compare(
                n, compare_full(n, int(args.small_kib * 1024), Path(args.workdir), args.before, args.reps)
            )
        return
    if args.quick and args.compare:
        codes = {
            "this": str(Path(__file__).resolve().parents[1]),
            "baseline": str(Path(args.compare).resolve()),
        }
        for n in (int(s) for s in args.sizes.split(",")):
            print(
                f"releases {n}: full build and one-change rebuild, {args.rounds} interleaved rounds",
                flush=True,
            )
            figures = compare(n, Path(args.workdir), codes, args.rounds)
            for name, runs in figures.items():
                walls = sorted(f["incremental"] / f["full"] * 100 for f in runs)
                cpus = sorted(f["incr-cpu"] / f["full-cpu"] * 100 for f in runs)
                rebuilds = sorted(f["incremental"] for f in runs)
                fulls = sorted(f["full"] for f in runs)
                rebuild_cpu = sorted(f["incr-cpu"] for f in runs)
                full_cpu = sorted(f["full-cpu"] for f in runs)
                print(
                    f"{name}: rebuild {rebuilds[0]:.3f}-{rebuilds[-1]:.3f} s "
                    f"(CPU {rebuild_cpu[0]:.3f}-{rebuild_cpu[-1]:.3f} s), "
                    f"full {fulls[0]:.2f}-{fulls[-1]:.2f} s (CPU {full_cpu[0]:.2f}-{full_cpu[-1]:.2f} s); "
                    f"rebuild/full {walls[0]:.1f}-{walls[-1]:.1f} % "
                    f"wall (median {walls[len(walls) // 2]:.1f}), {cpus[0]:.1f}-{cpus[-1]:.1f} % CPU "
                    f"(median {cpus[len(cpus) // 2]:.1f})",
                    flush=True,
                )
        return
    if args.quick:
        for n in (int(s) for s in args.sizes.split(",")):
            f = run(n, int(args.small_kib * 1024), Path(args.workdir), quick=True, profile=args.profile)
            print(
                f"releases {n}: full {f['full']:.2f} s, one-change rebuild {f['incremental']:.3f} s "
                f"= {f['incremental'] / f['full'] * 100:.1f} % of full; CPU time full {f['full-cpu']:.2f} s, "
                f"rebuild {f['incr-cpu']:.3f} s = {f['incr-cpu'] / f['full-cpu'] * 100:.1f} %; "
                f"{f['incr-files']:.0f} files written "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        return
    print(" ".join(f"{name:>{width}}" for name, width, _ in columns))
    for n in (int(s) for s in args.sizes.split(",")):
        for label, kib in (("small", args.small_kib), ("large", args.large_kib)):
            if label == "large" and n > args.large_max:
                continue
            f = run(n, int(kib * 1024), Path(args.workdir))
            cells = [fmt(n, f"{label} {kib:g}K", f) for _, _, fmt in columns]
            row = " ".join(f"{c:>{w}}" for c, (_, w, _) in zip(cells, columns, strict=True))
            print(f"{row}  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
