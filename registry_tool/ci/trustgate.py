"""The root of trust as it is at the base ref, and the two questions the PR check asks it.

1. Is this release (or yank) signed by enough maintainers the BASE root delegates the plugin to?
   A PR that adds its own key to the root gains nothing: its releases are judged by the old root.
2. Is a new root version proposed by the PR a valid next step of the chain (continuity, the
   old and the new root thresholds)?  Either way the PR is reported as a root change.

The base chain itself is verified from version 1 (self-signed) step by step, so a corrupted base
fails closed instead of silently trusting whatever is newest.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from registry_tool._files import read_bounded
from registry_tool.ci.gitdiff import GitRepo
from registry_tool.errors import CheckFailed, RegistryToolError, UsageError
from registry_tool.format import MAX_ROOT_BYTES, MAX_SIGNATURE_BYTES, root_file_version
from registry_tool.report import Finding, Severity
from registry_tool.signing.release import (
    SignatureNameError,
    check_signature_name,
    read_root_signatures,
    signature_paths,
)
from registry_tool.trust.policy import ThresholdNotMetError
from registry_tool.trust.root import (
    Root,
    verify_release_signatures,
    verify_root_step,
    verify_threshold,
    verify_yank_signatures,
)
from registry_tool.trust.summary import future_revocations, revocation_text, root_changes


class BaseRootError(UsageError):
    """The root at the base ref is missing or does not verify: nothing can be judged against it."""

    code = "base-root"


@dataclass
class Verdict:
    """The signature check of one file: its findings and the keys that signed it."""

    findings: list[Finding] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    # Signature files that are no valid signature by a delegated maintainer on their own: why.
    uncounted: dict[str, str] = field(default_factory=dict)


def uncounted_findings(
    folder_rel: str, verdicts: list[Verdict], only: frozenset[str] | None = None
) -> list[Finding]:
    """A finding for each signature file that counts under none of ``verdicts`` (base root, new root).

    ``only``: judge just these file names.
    """
    names = set.intersection(*(set(v.uncounted) for v in verdicts)) if verdicts else set()
    if only is not None:
        names &= only
    return [
        Finding(
            rule="signature",
            message=f"{name} is not a signature that counts: {verdicts[0].uncounted[name]}",
            file=f"{folder_rel}/{name}",
            line=1,
            fix="remove the file; only valid signatures by maintainers delegated for the plugin belong "
            "in the release folder",
        )
        for name in sorted(names)
    ]


@dataclass
class RootChange:
    """What a pull request does to the root chain: findings, a summary, the accepted new root."""

    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    # The newest proposed root when every new version is a valid, unexpired step of the chain.
    accepted: Root | None = None


def _root_versions(names: list[str]) -> list[int]:
    """The versions of the ``<N>.root.json`` among ``names`` (file names directly in the root folder)."""
    return sorted(v for n in names if (v := root_file_version(n)) is not None)


class TrustGate:
    """Signature checks against the root at the base ref (never the pull request's own root)."""

    def __init__(self, root: Root, now: datetime, whose: str = "at the base ref") -> None:
        """Judge signatures with ``root`` at time ``now`` (``whose`` root it is, for messages)."""
        self.root = root
        self.now = now
        self.whose = whose

    @classmethod
    def at_ref(cls, repo: GitRepo, ref: str, root_dir: str, now: datetime) -> TrustGate:
        """Export ``root_dir`` at ``ref`` and verify its chain 1 -> N (expiry is judged per use)."""
        folder = root_dir.rstrip("/") + "/"
        # Only the folder's own files: a nested root/x/3.root.json is no root version (ci check
        # refuses adding one; a base holding one is judged without it, as the build reads it).
        versions = _root_versions(
            [p[len(folder) :] for p in repo.list_files(ref, root_dir) if "/" not in p[len(folder) :]]
        )
        if not versions:
            raise BaseRootError(
                f"no root metadata ({root_dir}/1.root.json) at {ref[:12]}",
                where=root_dir,
                fix="initialise the index with `registry-tool init` and commit the root to the base branch",
            )
        with tempfile.TemporaryDirectory(prefix="registry-tool-root-") as tmp:
            base = Path(tmp)
            repo.export(ref, root_dir, base)
            try:
                return cls(_verify_chain(base, versions, root_dir), now)
            except CheckFailed as err:
                raise BaseRootError(
                    f"the root at {ref[:12]} does not verify: {err.what}",
                    where=err.where or root_dir,
                    fix="repair the base branch's root before checking pull requests",
                ) from None
            except OSError as err:  # a root version that is a folder, a link, unreadable
                raise BaseRootError(
                    f"the root at {ref[:12]} cannot be read: {err.strerror or err} "
                    f"({Path(err.filename).name if err.filename else root_dir})",
                    where=root_dir,
                    fix="repair the base branch's root before checking pull requests",
                ) from None

    # ---------------------------------------------------------------- releases and yanks

    def verify_release(
        self, signed_file: Path, rel: str, name: str, version: str, *, published_at: datetime | None = None
    ) -> Verdict:
        """Check the maintainer signatures of ``signed_file`` (plugin.toml or yank.toml) of a release.

        ``published_at``: when the release was published, for revocations that keep prior releases
        (unknown here by default: a pull request's release is new).
        """
        verdict = Verdict()
        sig_paths = signature_paths(signed_file)
        if not sig_paths:
            verdict.findings.append(
                Finding(
                    rule="signature",
                    message=f"{Path(rel).name} has no signature ({Path(rel).name}.minisig)",
                    file=rel,
                    line=1,
                    fix="sign it with a maintainer key delegated for the plugin: `registry-tool sign`",
                )
            )
            return verdict
        folder_rel = PurePosixPath(rel).parent
        sig_rel = str(folder_rel / sig_paths[0].name)
        sigs: list[tuple[str, str]] = []  # (file name, text) of each signature file read
        reading = rel
        try:
            # plugin.toml's own cap is validate's finding; yank.toml's is check_yank's.
            data = read_bounded(signed_file, MAX_SIGNED_BYTES, signed_file.name, follow_symlinks=False)
            for path in sig_paths:
                reading = str(folder_rel / path.name)
                raw = read_bounded(path, MAX_SIGNATURE_BYTES, "signature", follow_symlinks=False)
                sigs.append((path.name, raw.decode("utf-8", "surrogateescape")))
        except RegistryToolError as err:
            verdict.findings.append(
                Finding(rule="signature", message=err.what, file=reading, line=1, fix=err.fix)
            )
            return verdict

        def verify(
            root: Root, plugin: str, signed: bytes, texts: list[str], now: datetime, where: str
        ) -> set[str]:
            if signed_file.name == "yank.toml":
                return verify_yank_signatures(root, plugin, signed, texts, now, where=where)
            return verify_release_signatures(
                root, plugin, signed, texts, now, published_at=published_at, where=where
            )

        for file_name, text in sigs:
            try:
                check_signature_name(file_name, signed_file.name, text)
            except SignatureNameError as err:
                rel_name = str(folder_rel / file_name)
                verdict.findings.append(Finding(err.code, err.what, file=rel_name, line=1, fix=err.fix))
        if verdict.findings:
            return verdict
        # Each file on its own too: every signature file is published beside the release, so one
        # that is no valid signature by a delegated maintainer (junk, a copied key id, a revoked or
        # undelegated key, another file's signature) is an unsigned file in it.
        for file_name, text in sigs:
            try:
                verify(self.root, name, data, [text], self.now, where=str(folder_rel / file_name))
            except ThresholdNotMetError:
                pass  # valid, and below the threshold alone
            except RegistryToolError as err:
                verdict.uncounted[file_name] = f"{err.what} (root version {self.root.version} {self.whose})"
        try:
            signers = verify(self.root, name, data, [t for _, t in sigs], self.now, where=sig_rel)
            verdict.signers = sorted(signers)
        except RegistryToolError as err:
            verdict.findings.append(
                Finding(
                    rule="signature",
                    message=f"[{err.code}] {err.what} (checked against root version {self.root.version} "
                    f"{self.whose})",
                    file=sig_rel,
                    line=1,
                    fix=err.fix,
                )
            )
        return verdict

    # ---------------------------------------------------------------- root changes

    def check_new_root(self, head_root_dir: Path, root_rel: str) -> RootChange:
        """Judge the root versions above the base's, as they are in the working tree."""
        change = RootChange()
        names = [p.name for p in head_root_dir.iterdir()] if head_root_dir.is_dir() else []
        new_versions = [v for v in _root_versions(names) if v > self.root.version]
        if not new_versions:
            change.summary = f"root files changed, version stays {self.root.version}"
            return change
        current = self.root
        steps: list[str] = []  # each step's description: a later step must not hide an earlier one
        for version in new_versions:
            path = head_root_dir / f"{version}.root.json"
            rel = f"{root_rel}/{version}.root.json"
            try:
                if version != current.version + 1:
                    # 7.root.json after 2 (even holding a valid version 3): merged, the chain would
                    # have a gap, and every later check and build would refuse it.
                    raise CheckFailed(
                        f"the root folder has no version {current.version + 1}",
                        where=rel,
                        fix=f"add root versions one at a time: {current.version + 1}.root.json next",
                    )
                # verify_root_step requires the content's version to be current + 1, so a validly
                # signed step copied under another file number is refused too.
                nxt = verify_root_step(current, _read_root(path), read_root_signatures(path), where=rel)
            except RegistryToolError as err:
                change.findings.append(
                    Finding(
                        rule="root-signature",
                        message=f"[{err.code}] root version {version} is not a valid successor of "
                        f"version {current.version}: {err.what}",
                        file=rel,
                        line=1,
                        fix=err.fix
                        or f"sign {version}.root.json with a threshold of the root keys of version "
                        f"{current.version} AND of version {version}",
                    )
                )
                change.summary = f"root {self.root.version} -> {version} (INVALID)"
                try:  # still say what the rejected version would change, for the reviewers
                    proposed = Root.parse(_read_root(path), where=rel)
                    steps.append(_step(current, proposed, self.now, len(new_versions) > 1, version))
                except RegistryToolError:
                    pass
                if steps:
                    change.summary += ": " + " ".join(steps)
                break
            ahead = future_revocations(current, nxt, self.now)
            if ahead:
                # The chain accepts a revocation dated up to the version's expiry; until revoked_at
                # the key still signs what the revocation keeps, so a pull request may not bring one.
                change.findings.append(
                    Finding(
                        rule="root-signature",
                        message=f"root version {version} revokes a key as of a time still ahead: "
                        f"{revocation_text(ahead[0], self.now)}",
                        file=rel,
                        line=1,
                        fix="a revocation takes effect when it is made: set revoked_at to the time of "
                        "the revocation (`registry-tool root revoke` does) and re-sign",
                    )
                )
            steps.append(_step(current, nxt, self.now, len(new_versions) > 1, version))
            change.summary = f"root {self.root.version} -> {nxt.version}: " + " ".join(steps)
            current = nxt
        else:
            if any(f.rule == "root-signature" for f in change.findings):
                pass  # a step brings a revocation dated ahead: not accepted
            elif current.is_expired(self.now):
                change.findings.append(
                    Finding(
                        rule="root-signature",
                        message=f"root version {current.version} is already expired",
                        file=f"{root_rel}/{current.version}.root.json",
                        line=1,
                        fix="set a future `expires` and re-sign",
                    )
                )
            else:
                change.accepted = current
        change.findings.append(
            Finding(
                rule="root-change",
                message=f"ROOT CHANGE: {change.summary}",
                severity=Severity.warning,
                file=f"{root_rel}/{new_versions[0]}.root.json",
                line=1,
                fix="a registry owner must review every key, delegation and threshold change",
            )
        )
        return change


# plugin.toml is at most 256 KiB (validate's manifest-too-large) and yank.toml 64 KiB; a larger file
# is refused by those checks, and is not read whole here.
MAX_SIGNED_BYTES = 256 * 1024


def _read_root(path: Path) -> bytes:
    """A pull request's root file: a regular file, never through a link, at most MAX_ROOT_BYTES.

    A directory or a gitlink named ``3.root.json`` is an UnreadableFileError (a finding), not a crash.
    """
    return read_bounded(path, MAX_ROOT_BYTES, "root metadata", follow_symlinks=False)


def _verify_chain(base: Path, versions: list[int], root_dir: str) -> Root:
    if versions != list(range(1, versions[-1] + 1)):
        raise CheckFailed(f"root versions {versions} are not consecutive from 1", where=root_dir)
    first = base / "1.root.json"
    root = Root.parse(first.read_bytes(), where=f"{root_dir}/1.root.json")
    verify_threshold(root.role("root"), root.raw, read_root_signatures(first), subject="root version 1")
    for version in versions[1:]:
        path = base / f"{version}.root.json"
        root = verify_root_step(
            root, path.read_bytes(), read_root_signatures(path), where=f"{root_dir}/{path.name}"
        )
    return root


def _step(old: Root, new: Root, now: datetime, several: bool, version: int) -> str:
    """One step's description; with several new versions each is prefixed with its version."""
    text = _describe(old, new, now)
    return f"[version {version}] {text}." if several else text


def _describe(old: Root, new: Root, now: datetime | None = None) -> str:
    """What ``new`` changes against ``old``, the lines of ``trust.summary.root_changes`` joined.

    The same lines `root sign` printed to each signer and `root verify` shows.
    """
    return "; ".join(root_changes(old, new, now=now))
