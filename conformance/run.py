"""Run the conformance suite against any verifier (protocol: conformance/README.md).

    python conformance/run.py [-j N] [--filter REGEX] [--without FEATURE] [--list] [--no-batch]
                              -- VERIFIER [ARGS...]

For every case the runner keeps one state directory and one plugin directory (temporary), serves
each step's site on http://127.0.0.1:<ephemeral port>/ (with the step's `serve` faults), runs
`VERIFIER <op> ...` once per verifier step, performs tamper/symlink steps itself, and compares
the JSON answer and the exit-code class with the step's `expect`.  The last line is exactly
`N passed, M failed`; the exit code is 1 if any case failed (2 on usage errors).

Standard library only, so any implementation can run it with a plain python3.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.server
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OVERLAY = "_site.json"
LOCKFILE = "registry-tool.lock.json"
DEFAULT_DEADLINE_MS = 10_000
STEP_TIMEOUT_S = 60.0  # a verifier step that runs longer fails the case (the slowest legit step is ~2 s)
STALL_S = 120.0  # a "slow" response stalls this long (or until the case ends): far beyond any deadline
ENDLESS_CAP = 1 << 30  # an "endless" response stops after 1 GiB even if nobody hangs up
CHUNK = 1 << 16

# The error classes and their exit codes: one list, conformance/error-classes.json (README.md,
# "Error classes"), which the verifiers' own tests read too.
CLASSES_FILE = HERE / "error-classes.json"
EXIT_CODES: dict[str, int] = json.loads(CLASSES_FILE.read_text())["error_classes"]
ERROR_CLASSES = frozenset(EXIT_CODES)
USAGE_ERRORS = frozenset(name for name, code in EXIT_CODES.items() if code == 2)
VERIFIER_OPS = ("pin", "refresh", "install", "verify")


class StepFailed(Exception):
    """The verifier's answer differs from the case's expectation (the message says how)."""


# --------------------------------------------------------------------------- sites


def site_files(suite: Path, site: str) -> dict[str, Path]:
    """Site path -> file, resolving an overlay site (`_site.json`: base site + deleted paths)."""
    folder = suite / site
    files: dict[str, Path] = {}
    overlay = folder / OVERLAY
    if overlay.is_file():
        spec = json.loads(overlay.read_text())
        files = site_files(suite, f"sites/{spec['base']}")
        for path in spec.get("deleted", []):
            files.pop(path, None)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != OVERLAY:
            files[path.relative_to(folder).as_posix()] = path
    return files


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Path] = {}
        self.faults: dict[str, str] = {}
        self.stop = threading.Event()
        self.log: list[str] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        self.server.log.append(path)
        fault = self.server.faults.get(path)
        file = self.server.files.get(path)
        try:
            if fault == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # no status line: the connection just ends
            elif fault == "500":
                self._status(500, b"internal server error\n", body)
            elif fault == "404" or (file is None and fault is None):
                self._status(404, b"not found\n", body)
            elif fault == "endless":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                sent, chunk = 0, b"\0" * CHUNK
                while body and sent < ENDLESS_CAP and not self.server.stop.is_set():
                    self.wfile.write(chunk)
                    sent += CHUNK
            elif fault == "slow":
                data = file.read_bytes() if file else b"{}"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data[:1])
                    self.wfile.flush()
                    self.server.stop.wait(STALL_S)
            else:
                assert file is not None
                data = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the verifier hung up (as it must on endless or slow data)

    def _status(self, code: int, text: bytes, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)


@contextmanager
def serving() -> Iterator[_Server]:
    """Serve files on 127.0.0.1 (ephemeral port) for one case; stopped on exit."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- steps


class Batch:
    """One long-lived `VERIFIER batch` process (README.md, "Batch mode").

    A request line in, one answer line out.  A step that times out or breaks the protocol kills
    the process; the next step starts a fresh one.
    """

    def __init__(self, verifier: list[str]) -> None:
        """Remember the verifier command; the process starts with the first step."""
        self.verifier = verifier
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.err_path: Path | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        fd, name = tempfile.mkstemp(prefix="conformance-batch-", suffix=".stderr")
        self.err_path = Path(name)
        proc = subprocess.Popen(
            [*self.verifier, "batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd
        )
        os.close(fd)
        lines: queue.Queue[bytes] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, b""):
                lines.put(line)
            lines.put(b"")  # end of output: the process exited

        threading.Thread(target=pump, daemon=True).start()
        self.proc, self.lines = proc, lines
        return proc

    def ask(self, args: list[str]) -> tuple[int, bytes, bytes]:
        """Run one step; returns (exit code, answer without "exit", stderr written meanwhile)."""
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        assert proc.stdin is not None and self.err_path is not None
        err_from = self.err_path.stat().st_size
        try:
            proc.stdin.write((json.dumps({"args": args}) + "\n").encode())
            proc.stdin.flush()
            line = self.lines.get(timeout=STEP_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise StepFailed(f"the verifier ran longer than {STEP_TIMEOUT_S:.0f} s") from None
        except OSError:
            line = b""
        err = self.err_path.read_bytes()[err_from:]
        try:
            answer = json.loads(line)
            code = answer.pop("exit")
            if not isinstance(answer, dict) or not isinstance(code, int):
                raise ValueError("no exit code")
        except (ValueError, KeyError, AttributeError, TypeError):
            self.close()
            raise StepFailed(
                f"batch answer is not one JSON object with an integer exit: {line[:300]!r}"
            ) from None
        return code, json.dumps(answer).encode(), err

    def close(self) -> None:
        """End the batch process (stdin closed, then killed if it lingers) and drop its stderr file."""
        if self.proc is not None:
            if self.proc.stdin is not None:
                with suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.err_path is not None:
            self.err_path.unlink(missing_ok=True)
            self.err_path = None


def supports_batch(verifier: list[str]) -> bool:
    """Whether `VERIFIER capabilities` declares batch mode (anything else: one process per step)."""
    try:
        proc = subprocess.run(
            [*verifier, "capabilities"], capture_output=True, timeout=STEP_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
        answer = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and isinstance(answer, dict) and answer.get("batch") is True


@dataclass
class Context:
    """One case's temporary folders, server, verifier (and batch process) and transcript."""

    suite: Path
    verifier: list[str]
    tmp: Path
    server: _Server
    verbose: bool
    transcript: list[str] = field(default_factory=list)
    batch: Batch | None = None

    @property
    def state(self) -> Path:
        """The state directory S of the case."""
        return self.tmp / "state"

    @property
    def plugins(self) -> Path:
        """The plugin directory D of the case."""
        return self.tmp / "plugins"

    @property
    def url(self) -> str:
        """The URL the case's sites are served at."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/"


def command(ctx: Context, step: dict[str, Any]) -> list[str]:
    """The step's arguments, without the verifier command in front."""
    op = step["op"]
    args = [op, "--state", str(ctx.state)]
    if op in ("pin", "refresh", "install"):
        args += ["--url", ctx.url]
    if op == "pin":
        files = site_files(ctx.suite, step["site"])
        root = step["root"].removeprefix(step["site"] + "/")
        if root not in files:
            raise StepFailed(f"case error: {step['root']} is not in {step['site']}")
        args += ["--root", str(files[root])]
    if op in ("install", "verify"):
        args += ["--dir", str(ctx.plugins)]
    if op == "install":
        args += ["--spec", step["spec"]]
        if step.get("host_version"):
            args += ["--host-version", step["host_version"]]
        if step.get("allow"):
            args += ["--allow", step["allow"]]
    args += ["--now", step["now"]]
    if op in ("refresh", "install"):
        args += ["--deadline-ms", str(step.get("deadline_ms", DEFAULT_DEADLINE_MS))]
    return args


def exit_class(expect: dict[str, Any]) -> int:
    """The exit code a step's expectation implies (0, or the class's code)."""
    if expect.get("ok"):
        return 0
    return 2 if expect.get("error") in USAGE_ERRORS else 1


def run_verifier(ctx: Context, step: dict[str, Any]) -> None:
    """Run one verifier step and compare its answer, exit code and fetches with the expectation."""
    if "site" in step:
        ctx.server.files = site_files(ctx.suite, step["site"])
    ctx.server.faults = dict(step.get("serve", {}))
    ctx.server.log = []
    ctx.server.stop.clear()
    args = command(ctx, step)
    ctx.transcript.append(
        ("batch> " if ctx.batch else "$ ") + " ".join(_quote(a) for a in [*ctx.verifier, *args])
    )
    try:
        if ctx.batch is not None:
            returncode, stdout, stderr = ctx.batch.ask(args)
        else:
            proc = subprocess.run(
                [*ctx.verifier, *args], capture_output=True, timeout=STEP_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        raise StepFailed(f"the verifier ran longer than {STEP_TIMEOUT_S:.0f} s") from None
    finally:
        ctx.server.stop.set()  # release a stalled "slow" response
    out = stdout.decode("utf-8", "replace").strip()
    ctx.transcript.append(out)
    if stderr.strip():
        ctx.transcript.append("stderr: " + stderr.decode("utf-8", "replace").strip()[-2000:])
    try:
        answer = json.loads(out)
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except ValueError:
        raise StepFailed(f"stdout is not one JSON object (exit {returncode}): {out[:300]!r}") from None
    expect = step["expect"]
    problems = []
    for key, want in expect.items():
        if answer.get(key, _MISSING) != want:
            problems.append(f"{key}: expected {want!r}, got {answer.get(key, _MISSING)!r}")
    if answer.get("ok") is False and answer.get("error") not in ERROR_CLASSES:
        problems.append(f"error {answer.get('error')!r} is not an error class")
    want_code = exit_class(expect)
    if returncode != want_code:
        problems.append(f"exit code {returncode}, expected {want_code}")
    if "may_fetch" in step:
        allowed = [re.compile(p) for p in step["may_fetch"]]
        extra = sorted({p for p in ctx.server.log if not any(a.fullmatch(p) for a in allowed)})
        if extra:
            problems.append(f"fetched {extra} (this step may only fetch {step['may_fetch']})")
    if problems:
        message = "; ".join(problems)
        if answer.get("message"):
            message += f" (verifier said: {str(answer['message'])[:300]})"
        raise StepFailed(message)


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


_MISSING = _Missing()


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else json.dumps(arg)


def inside(ctx: Context, rel: str) -> Path:
    """``rel`` below the plugin directory (a case may not name a path outside it)."""
    if rel.startswith("/") or ".." in rel.split("/"):
        raise StepFailed(f"case error: path {rel!r} leaves the plugin directory")
    return ctx.plugins / rel


def canonical_line(doc: Any) -> bytes:
    """One lockfile line in the canonical form (README.md, "The lockfile")."""
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def fold_lockfile(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The lockfile as ``{"lockfile_version": V, "plugins": {name: ENTRY}}`` and its complete lines.

    Version 3: the base line, then each change line applied in order; bytes after the last
    newline (an unfinished write) are ignored.  A version 2 file (one document) is returned as
    it is.  Raises ValueError when the file cannot be folded.
    """
    with suppress(ValueError):
        doc = json.loads(data)
        if isinstance(doc, dict) and doc.get("lockfile_version") == 2:
            return doc, data.splitlines(keepends=True)
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines(keepends=True)
    if not lines:
        raise ValueError("the lockfile holds no complete line")
    base = json.loads(lines[0])
    if not isinstance(base, dict) or not isinstance(base.get("plugins"), dict):
        raise ValueError("line 1 is not a base line")
    plugins = dict(base["plugins"])
    for number, line in enumerate(lines[1:], start=2):
        change = json.loads(line)
        if not isinstance(change, dict) or not isinstance(change.get("plugins"), dict):
            raise ValueError(f"line {number} is not a change line")
        for name, entry in change["plugins"].items():
            if entry is not None:
                plugins[name] = entry
            elif plugins.pop(name, None) is None:
                raise ValueError(f"line {number} removes {name!r}, which the lockfile does not hold")
    return {"lockfile_version": base.get("lockfile_version"), "plugins": plugins}, lines


def read_lockfile(ctx: Context) -> dict[str, Any]:
    """The plugin directory's lockfile, folded (a StepFailed when it cannot be)."""
    try:
        return fold_lockfile((ctx.plugins / LOCKFILE).read_bytes())[0]
    except (OSError, ValueError) as exc:
        raise StepFailed(f"lockfile unreadable: {exc}") from None


def write_base(ctx: Context, doc: dict[str, Any]) -> None:
    """Rewrite the lockfile as one base line holding ``doc`` (a hostile writer's whole new state)."""
    (ctx.plugins / LOCKFILE).write_bytes(canonical_line(doc))


def tamper(ctx: Context, step: dict[str, Any]) -> None:
    """Change an installed file as the step says (README.md, Cases: ``tamper``)."""
    path = inside(ctx, step["path"])
    action = step["action"]
    if not path.is_file():
        raise StepFailed(f"cannot tamper with {step['path']}: the verifier did not install that file")
    is_lock = step["path"] == LOCKFILE
    if action == "append":
        with path.open("ab") as f:
            f.write(b"\n")
    elif action == "append-text":
        with path.open("ab") as f:
            f.write(step["content"].encode())
    elif action == "as-version-2" and is_lock:
        doc = {"lockfile_version": 2, "plugins": read_lockfile(ctx)["plugins"]}
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    elif action == "json-set" and is_lock:
        doc = read_lockfile(ctx)
        target = doc
        for key in step["pointer"][:-1]:
            target = target[key]
        target[step["pointer"][-1]] = step["value"]
        if step.get("change"):  # one change line replacing the entry the pointer is in
            name = step["pointer"][1]
            with path.open("ab") as f:
                f.write(canonical_line({"plugins": {name: doc["plugins"][name]}}))
        else:
            write_base(ctx, doc)
    elif action == "flip":
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    elif action == "delete":
        path.unlink()
    elif action == "write":
        path.write_bytes(step["content"].encode())
    elif action == "json-set":
        doc = json.loads(path.read_bytes())
        target = doc
        for key in step["pointer"][:-1]:
            target = target[key]
        target[step["pointer"][-1]] = step["value"]
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        raise StepFailed(f"case error: unknown tamper action {action!r}")
    if step.get("relock"):
        relock(ctx, step["path"], path.read_bytes())


def relock(ctx: Context, rel: str, data: bytes) -> None:
    """Make the lockfile agree with a tampered file (an attacker who rewrites both)."""
    import hashlib

    doc = read_lockfile(ctx)
    for entry in doc["plugins"].values():
        for kind in ("manifest", "wasm"):
            if entry.get(kind) == rel:
                entry[f"{kind}_sha256"] = hashlib.sha256(data).hexdigest()
                entry[f"{kind}_size"] = len(data)
    write_base(ctx, doc)


def symlink(ctx: Context, step: dict[str, Any]) -> None:
    """Replace a path below the plugin dir by a symlink to an identical copy outside it."""
    path = inside(ctx, step["path"])
    outside = ctx.tmp / "outside" / step["path"].replace("/", "_")
    outside.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or not path.exists():
        outside.mkdir(exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
    else:
        shutil.move(str(path), str(outside))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(outside)


def subset(want: Any, got: Any, where: str) -> list[str]:
    """Differences of ``got`` from ``want`` (objects compared as subsets, the rest exactly)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {got!r}"]
        out: list[str] = []
        for key, value in want.items():
            if key not in got:
                out.append(f"{where}.{key}: missing")
            else:
                out += subset(value, got[key], f"{where}.{key}")
        return out
    return [] if want == got else [f"{where}: expected {want!r}, got {got!r}"]


def check_lockfile(ctx: Context, step: dict[str, Any]) -> None:
    """The folded lockfile holds the expected JSON; every line is canonical (and, if given, their number)."""
    try:
        data = (ctx.plugins / LOCKFILE).read_bytes()
        doc, lines = fold_lockfile(data)
    except (OSError, ValueError) as exc:
        raise StepFailed(f"lockfile unreadable: {exc}") from None
    problems = subset(step["expect"], doc, "lockfile")
    if not data.endswith(b"\n"):
        problems.append("the lockfile does not end with a newline")
    for number, line in enumerate(lines, start=1):
        try:
            canonical = canonical_line(json.loads(line))
        except ValueError:
            canonical = b""
        if line != canonical:
            problems.append(
                f"line {number} is not written as json.dumps(obj, sort_keys=True, separators=(',', ':')) "
                "+ newline"
            )
            break
    if "lines" in step and len(lines) != step["lines"]:
        problems.append(f"the lockfile has {len(lines)} line(s), expected {step['lines']}")
    if problems:
        raise StepFailed("; ".join(problems))


def run_step(ctx: Context, step: dict[str, Any]) -> None:
    """Run one step of a case (the verifier's or the runner's own)."""
    op = step["op"]
    if op in VERIFIER_OPS:
        run_verifier(ctx, step)
    elif op == "tamper":
        tamper(ctx, step)
    elif op == "symlink":
        symlink(ctx, step)
    elif op == "mkdir":
        inside(ctx, step["path"]).mkdir(parents=True, exist_ok=True)
    elif op == "lockfile":
        check_lockfile(ctx, step)
    elif op == "absent":
        if os.path.lexists(inside(ctx, step["path"])):
            raise StepFailed(f"{step['path']} still exists in the plugin directory")
    else:
        raise StepFailed(f"case error: unknown op {op!r}")


# --------------------------------------------------------------------------- cases


@dataclass
class Result:
    """One case's verdict, with the transcript of its steps."""

    case_id: str
    ok: bool
    detail: str = ""
    transcript: list[str] = field(default_factory=list)


def run_case(
    suite: Path, case: dict[str, Any], verifier: list[str], verbose: bool, batch: Batch | None = None
) -> Result:
    """Run every step of one case in fresh folders with its own server; the first failure ends it."""
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp, serving() as server:
        ctx = Context(suite, verifier, Path(tmp), server, verbose, batch=batch)
        ctx.state.mkdir()
        ctx.plugins.mkdir()
        for n, step in enumerate(case["steps"], start=1):
            try:
                run_step(ctx, step)
            except StepFailed as exc:
                return Result(case["id"], False, f"step {n} ({step['op']}): {exc}", ctx.transcript)
            except (OSError, KeyError, ValueError) as exc:
                return Result(
                    case["id"], False, f"step {n} ({step['op']}): runner error {exc!r}", ctx.transcript
                )
        return Result(case["id"], True, transcript=ctx.transcript)


def load_cases(suite: Path) -> list[dict[str, Any]]:
    """Every case of the suite, sorted by file name."""
    return [json.loads(p.read_text()) for p in sorted((suite / "cases").glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    """The command line: run the selected cases and print the verdicts; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verifier: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, verifier = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], usage=__doc__.split("\n\n")[1].strip()
    )
    parser.add_argument("--filter", help="only cases whose id matches this regular expression (re.search)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="cases run in parallel (default 1)")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FEATURE",
        help="skip cases that require FEATURE (e.g. import-check); repeatable",
    )
    parser.add_argument("--suite", type=Path, default=HERE, help="the suite folder (default: this folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing case's transcript")
    parser.add_argument(
        "--no-batch",
        action="store_true",
        help="one verifier process per step even if the verifier declares batch mode",
    )
    args = parser.parse_args(argv)
    cases = load_cases(args.suite)
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c["id"])]
    skipped = [c for c in cases if set(c.get("requires", [])) & set(args.without)]
    cases = [c for c in cases if c not in skipped]
    if args.list:
        for c in cases:
            print(f"{c['id']}\t{c['threat']}\t{c['description']}")
        return 0
    if not verifier:
        parser.error("give the verifier command after --")
    results: list[Result] = []
    lock = threading.Lock()
    use_batch = not args.no_batch and supports_batch(verifier)
    local = threading.local()
    batches: list[Batch] = []

    def one(c: dict[str, Any]) -> Result:
        batch = None
        if use_batch:
            batch = getattr(local, "batch", None)
            if batch is None:
                batch = local.batch = Batch(verifier)
                with lock:
                    batches.append(batch)
        result = run_case(args.suite, c, verifier, args.verbose, batch)
        with lock:
            print(
                ("PASS " if result.ok else "FAIL ")
                + result.case_id
                + ("" if result.ok else f": {result.detail}"),
                flush=True,
            )
            if not result.ok and args.verbose:
                for line in result.transcript:
                    print("    " + line.replace("\n", "\n    "))
        return result

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, cases))
    finally:
        for batch in batches:
            batch.close()
    failed = [r for r in results if not r.ok]
    if skipped:
        print(f"{len(skipped)} skipped (requires {', '.join(sorted(set(args.without)))})")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
