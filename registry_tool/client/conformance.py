"""The Python verifier of the conformance protocol (conformance/README.md).

``python -m registry_tool.client.conformance pin|refresh|install|verify ...`` runs one step of a
case against a site the runner serves on 127.0.0.1 and prints one JSON object on stdout:
``{"ok": true, ...}`` or ``{"ok": false, "error": "<class>", "message": "..."}``.  Exit code 0 on
success, 1 when the checked thing is bad, 2 for usage/environment classes.  The clock is injected
(``--now``); ``--deadline-ms`` bounds the whole operation's transfers.

Every client error maps to exactly one class of the fixed list, in ``error_class`` (one table).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from registry_tool.client import errors as ce
from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.format import errors as fe
from registry_tool.format import parse_time_strict
from registry_tool.format.ranges import NoMatchingVersionError, RangeSyntaxError, Requirement, UnsafeNameError
from registry_tool.resolve import DependencyConflictError, DependencyCycleError, UnknownPluginError

#: The protocol's error classes and exit codes, read from the suite's one list
#: (conformance/error-classes.json; conformance/README.md explains each class).
CLASSES_FILE = Path(__file__).resolve().parents[2] / "conformance" / "error-classes.json"


def _load_classes(path: Path) -> dict[str, int]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        classes = doc["error_classes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"cannot read the conformance error classes from {path}: {exc}; "
            "run the adapter from a registry-tool source tree (conformance/ next to registry_tool/)"
        ) from exc
    if not isinstance(classes, dict) or not all(
        isinstance(k, str) and v in (1, 2) for k, v in classes.items()
    ):
        raise RuntimeError(f"{path}: error_classes must map class names to exit code 1 or 2")
    return classes


EXIT_CODES: dict[str, int] = _load_classes(CLASSES_FILE)
CLASSES = frozenset(EXIT_CODES)
USAGE_CLASSES = frozenset(name for name, code in EXIT_CODES.items() if code == 2)

# Most specific first: the first isinstance match wins.
_BY_TYPE: list[tuple[type[BaseException], str]] = [
    (ce.RollbackAttackError, "rollback"),
    (ce.DroppedReleaseError, "rollback"),
    (ce.FreezeAttackError, "freeze"),
    (ce.IndexSignatureError, "bad-signature"),
    (ce.RootFingerprintMismatchError, "bad-signature"),
    (ce.WrongRegistryError, "wrong-registry"),
    (ce.MalformedRegistryError, "malformed"),
    (ce.DigestMismatchError, "digest-mismatch"),
    (ce.DownloadTooLargeError, "endless-data"),
    (ce.SlowRetrievalError, "slow-retrieval"),
    (ce.MixAndMatchError, "mix-and-match"),
    (ce.RepublishedReleaseError, "republished"),
    (ce.WrongSoftwareError, "wrong-software"),
    (ce.RootNotPinnedError, "not-pinned"),
    (ce.PluginNotFoundError, "not-found"),
    (NoMatchingVersionError, "no-matching-version"),
    (RangeSyntaxError, "bad-requirement"),
    (UnsafeNameError, "bad-requirement"),
    (ce.ApprovalRequiredError, "permission-required"),  # and PermissionEscalationError
    (ce.InstalledFileTamperedError, "installed-tampered"),
    (ce.LockfileError, "lockfile"),
    (ce.FetchError, "network"),  # 404 of a pinned file, 5xx, refused redirect, connection refused
    (fe.UnsupportedFormatError, "unsupported-format"),
    (fe.PathTraversalError, "path-traversal"),
    (fe.TreeMismatchError, "mix-and-match"),
    (fe.WrongDocumentError, "wrong-software"),
    (fe.DocumentError, "malformed"),
    # Resolution (decision 16): a dependency the registry does not list has no release, so no set
    # of releases satisfies every requirement either.
    (DependencyCycleError, "dependency-cycle"),
    (DependencyConflictError, "dependency-conflict"),
    (UnknownPluginError, "dependency-conflict"),
]


def error_class(err: BaseException, phase: str) -> str:
    """The protocol's class for ``err`` raised during ``phase`` (pin, session, release, verify).

    Trust-rule failures (thresholds, delegations, revocations, root format) are raised by the same
    functions for root steps and for maintainer signatures: the phase tells which rule failed.
    """
    for kind, name in _BY_TYPE:
        if isinstance(err, kind):
            return name
    code = str(getattr(err, "code", ""))
    if isinstance(err, CheckFailed) and type(err).__module__.startswith(_TRUST_MODULES):
        if phase in ("pin", "session"):
            return "root-expired" if code == "root-expired" else "root-chain"
        return "maintainer-signature"
    if code in CLASSES:  # e.g. unsafe-path: errors named after their class
        return code
    return "network" if isinstance(err, OSError) else "malformed"


# Errors of the trust rules and of signature checking: which rule failed depends on the phase.
_TRUST_MODULES = ("registry_tool.trust", "registry_tool.signing")


class _DeadlineFetcher:
    """One deadline for a whole operation: each download gets only the time that is left."""

    def __init__(self, deadline_s: float) -> None:
        from registry_tool.client.fetch import FetchPolicy, HttpFetcher

        self._policy = FetchPolicy(deadline=deadline_s)
        self._inner = HttpFetcher(self._policy)
        self._end = time.monotonic() + deadline_s

    def fetch(self, url: str, *, max_size: int) -> bytes:
        left = max(0.001, self._end - time.monotonic())
        self._inner.policy = replace(
            self._policy,
            deadline=left,
            connect_timeout=min(self._policy.connect_timeout, left),
            read_timeout=min(self._policy.read_timeout, left),
        )
        return self._inner.fetch(url, max_size=max_size)


def _now(text: str) -> datetime:
    moment = parse_time_strict(text)
    if moment is None:
        raise UsageError(f"--now {text!r} is not YYYY-MM-DDTHH:MM:SSZ", fix="pass --now 2026-11-27T12:00:00Z")
    return moment


def _pin(args: argparse.Namespace, fetcher: Any) -> dict[str, Any]:
    from registry_tool.client.fetch import Sources
    from registry_tool.client.store import StateStore, normalise_url
    from registry_tool.client.trust_state import pin_root
    from registry_tool.trust import Root

    url = normalise_url(args.url)
    root_bytes = Path(args.root).read_bytes()
    root = Root.parse(root_bytes, where=args.root)
    sigs = Sources(url, fetcher).root_signatures(
        url, f"root/{root.version}.root.json", {k.key_id for k in root.role("root").keys}
    )
    state = pin_root(url, root_bytes, [d.decode("utf-8", "surrogateescape") for _, d in sorted(sigs.items())])
    store = StateStore(Path(args.state))
    try:
        current = store.load(url)
    except RegistryToolError:
        current = None  # unreadable: replaced
    # The very root pinned before, pinned again (a host pinning its bundled root at every start):
    # what the sessions learned stays (decision 1). Any other root (a recovery root) replaces it.
    pinned = Path(args.state) / "pinned-root.sha256"
    digest = hashlib.sha256(root_bytes).hexdigest()
    if current is not None and pinned.is_file() and pinned.read_text().strip() == digest:
        return {"root_version": current.root_version}
    store.save(state, replace=True)
    pinned.write_text(digest + "\n")
    return {"root_version": root.version}


def _vocabulary() -> dict[str, Any]:
    """The permission vocabulary the suite fixes (conformance/README.md decision 11.7).

    The Go and Rust verifiers hold the same table; without it the client's import rule is the
    part that holds for every vocabulary (any grant allows a gated import), which is weaker.
    """
    from registry_tool.manifest.config import ImportPattern, Permission

    gated = {
        "keys": (ImportPattern("ferrite:keys"),),
        # The Extism host's own HTTP functions reach the network as much as ferrite:net does.
        "network": (ImportPattern("ferrite:net"), ImportPattern("extism:host/env", "http_*")),
        "extism_user": (ImportPattern("extism:host/user"),),
    }
    return {name: Permission(name, "", patterns) for name, patterns in gated.items()}


def _open(args: argparse.Namespace, fetcher: Any, now: datetime) -> Any:
    from registry_tool.client import Registry

    reg = Registry.open(args.url, state_dir=Path(args.state), fetcher=fetcher, clock=lambda: now)
    reg.vocabulary = _vocabulary()
    return reg


def _refresh(args: argparse.Namespace, fetcher: Any, now: datetime, phase: list[str]) -> dict[str, Any]:
    reg = _open(args, fetcher, now)
    reg._commit()
    return {"registry_version": reg.top.version, "root_version": reg.root.version}


def _install(args: argparse.Namespace, fetcher: Any, now: datetime, phase: list[str]) -> dict[str, Any]:
    reg = _open(args, fetcher, now)
    phase[0] = "release"
    allow = {a for a in (args.allow or "").split(",") if a}
    result = reg.install_plan([args.spec], Path(args.dir), allow=allow, host_version=args.host_version)
    name = Requirement.parse(args.spec).name
    entry = result.entries[name]
    # The resolved graph: the requested plugin and everything it needs, transitively.
    graph, todo = {}, [name]
    while todo:
        current = result.entries[todo.pop()]
        if current.name not in graph:
            graph[current.name] = {
                "version": current.version,
                "manifest_sha256": current.manifest_sha256,
                "wasm_sha256": current.wasm_sha256,
            }
            todo += [d for d in current.dependencies if d in result.entries]
    return {
        "registry_version": reg.top.version,
        "root_version": reg.root.version,
        "name": entry.name,
        "version": entry.version,
        "wasm_sha256": entry.wasm_sha256,
        "manifest_sha256": entry.manifest_sha256,
        "resolved": graph,
    }


class _Refused(Exception):
    def __init__(self, error: RegistryToolError) -> None:
        self.error = error


def _verify(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    from registry_tool.client import verify_installed

    report = verify_installed(Path(args.dir), state_dir=Path(args.state), clock=lambda: now)
    for result in report.results:
        for finding in result.findings:
            if finding.severity.value == "error":
                err = CheckFailed(finding.message, where=result.subject)
                err.code = finding.rule
                raise _Refused(err)
    # Results without an entry (the plugin directory's leftover-files warning) are not plugins.
    return {"plugins": sorted(r.data["name"] for r in report.results if "name" in r.data)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m registry_tool.client.conformance")
    sub = p.add_subparsers(dest="op", required=True)
    for op in ("pin", "refresh", "install", "verify"):
        s = sub.add_parser(op)
        s.add_argument("--state", required=True)
        s.add_argument("--now", required=True)
        s.add_argument("--format", default="json", choices=["json"])
        if op != "verify":
            s.add_argument("--url", required=True)
            s.add_argument("--deadline-ms", type=int, default=10000)
        if op == "pin":
            s.add_argument("--root", required=True)
        if op in ("install", "verify"):
            s.add_argument("--dir", required=True)
        if op == "install":
            s.add_argument("--spec", required=True)
            s.add_argument("--host-version")
            s.add_argument("--allow")
    return p


def run(argv: Sequence[str], out: Callable[[str], None] = print) -> int:
    """One protocol step; prints the JSON answer and returns the exit code."""
    args = _parser().parse_args(list(argv))
    phase = ["pin" if args.op == "pin" else "verify" if args.op == "verify" else "session"]
    try:
        now = _now(args.now)
        if args.op == "verify":
            body = _verify(args, now)
        else:
            fetcher = _DeadlineFetcher(args.deadline_ms / 1000)
            if args.op == "pin":
                body = _pin(args, fetcher)
            elif args.op == "refresh":
                body = _refresh(args, fetcher, now, phase)
            else:
                body = _install(args, fetcher, now, phase)
    except _Refused as refused:
        return _refusal(refused.error, phase[0], out)
    except (RegistryToolError, OSError) as err:
        return _refusal(err, phase[0], out)
    out(json.dumps({"ok": True, **body}, sort_keys=True))
    return 0


def _refusal(err: BaseException, phase: str, out: Callable[[str], None]) -> int:
    name = error_class(err, phase)
    message = err.diagnostics() if isinstance(err, RegistryToolError) else str(err)
    out(json.dumps({"ok": False, "error": name, "message": " ".join(message.split())}, sort_keys=True))
    return 2 if name in USAGE_CLASSES else 1


def batch(lines: Iterable[str], out: Callable[[str], None]) -> int:
    """Batch mode (conformance/README.md, "Batch mode"): one request per line, one answer per line.

    Each request is ``{"args": [op, "--state", ...]}``; the answer is the object :func:`run` prints
    for those arguments plus ``"exit"``, its exit code.  Nothing is kept between requests (each
    opens its registry, trust state and plugin directory afresh), so a batch answers exactly as
    one process per step would.

    Args:
        lines: The request lines (stdin).
        out: Where each answer line goes (flushed by the caller's ``out``).

    Returns:
        0 when the input ended.
    """
    from registry_tool.client.install import forget_parsed

    for line in lines:
        if not line.strip():
            continue
        answers: list[str] = []
        try:
            request = json.loads(line)
            argv = request["args"]
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise TypeError("args must be a list of strings")
            forget_parsed()  # as a fresh process: the lockfile is parsed in full, not reused
            code = run(argv, answers.append)
        except SystemExit as stop:  # argparse refuses the arguments
            answers, code = [], stop.code if isinstance(stop.code, int) else 2
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # a line nested 10,000 deep
            answers, code = [], 2
            answers.append(
                json.dumps({"ok": False, "error": "usage", "message": f"bad batch request: {exc}"})
            )
        answer = (
            json.loads(answers[-1]) if answers else {"ok": False, "error": "usage", "message": "no answer"}
        )
        out(json.dumps({**answer, "exit": code}, sort_keys=True))
    return 0


def main() -> None:
    """The command: ``capabilities``, ``batch`` or one protocol step (exit code as the protocol says)."""
    argv = sys.argv[1:]
    if argv == ["capabilities"]:
        print(json.dumps({"ok": True, "batch": True}))
        sys.exit(0)
    if argv == ["batch"]:

        def emit(text: str) -> None:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

        sys.exit(batch(iter(sys.stdin.readline, ""), emit))
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
