"""What changed between a base ref and HEAD, read with plain git subprocesses.

The PR check needs three things from git: the list of changed paths (``git diff --name-status -z
REF...HEAD``, i.e. against the merge base, so commits that landed on the base branch meanwhile
are not blamed on the PR), the bytes of a file as it is at REF (``git show REF:path``), and the
names under a directory at REF (``git ls-tree``).  The HEAD side is the working tree.

Renames are disabled on purpose: moving a published release is a removal plus an addition, and
both halves must be judged.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from registry_tool.errors import CheckFailed, UsageError


class GitError(UsageError):
    """git is missing, the directory is not a repository, or a ref does not resolve."""

    code = "git"


class UnrelatedHistoryError(CheckFailed):
    """HEAD shares no commit with the base: the pull request's branch was not made from it (exit 1)."""

    code = "unrelated-history"


class ChangeKind(StrEnum):
    """How a file changed between the base and HEAD."""

    added = "A"
    modified = "M"
    deleted = "D"
    type_changed = "T"


@dataclass(frozen=True, order=True)
class Change:
    """One changed file, path relative to the repository root (POSIX separators)."""

    path: str
    kind: ChangeKind

    @property
    def line(self) -> int | None:
        """The line a finding about this change points at: 1, or none when the file was deleted."""
        return None if self.kind is ChangeKind.deleted else 1


class GitRepo:
    """A git checkout; every call is one short git subprocess."""

    def __init__(self, root: Path) -> None:
        """Use the repository whose work tree is ``root``."""
        self.root = root

    @classmethod
    def discover(cls, path: Path) -> GitRepo:
        """The repository holding ``path`` (a ``GitError`` when there is none)."""
        top = _run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path,
            what=f"{path} is not in a git checkout",
            fix="run ci check inside the index repository (a clone with the base branch fetched)",
        )
        return cls(Path(top.decode().strip()))

    def git(self, *args: str, what: str) -> bytes:
        """Run ``git args`` in the repository; a ``GitError`` naming ``what`` when it fails."""
        return _run(["git", *args], cwd=self.root, what=what)

    def resolve(self, ref: str) -> str:
        """The full commit id of ``ref``; a usage error naming the ref when it does not exist."""
        if ref.startswith("-"):
            raise GitError(f"base ref {ref!r} looks like an option", fix="pass a branch, tag or commit id")
        out = self.git(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{ref}^{{commit}}",
            what=f"base ref {ref!r} does not name a commit in {self.root}",
        )
        return out.decode().strip()

    def changes(self, base: str, pathspecs: list[str]) -> list[Change]:
        """Files changed on HEAD since its merge base with ``base``, sorted by path."""
        try:
            out = self.git(
                "-c",
                "core.quotepath=off",
                "diff",
                "--name-status",
                "-z",
                "--no-renames",
                "--no-ext-diff",
                f"{base}...HEAD",
                "--",
                *pathspecs,
                what=f"cannot diff {base}...HEAD",
            )
        except GitError:
            self._no_merge_base(base)
            raise
        fields = out.split(b"\0")
        changes: list[Change] = []
        for status, path in zip(fields[0::2], fields[1::2], strict=False):
            if not status:
                continue
            kind = ChangeKind(status.decode()[0])
            changes.append(Change(path.decode("utf-8", "surrogateescape"), kind))
        return sorted(changes)

    def _no_merge_base(self, base: str) -> None:
        """Say why ``base...HEAD`` has no merge base, when that is why it failed.

        A shallow clone lacks the history (the job's checkout: exit 2); a complete one whose HEAD
        shares no commit with the base holds a pull request not made from the base (exit 1).
        """
        try:
            found = subprocess.run(
                ["git", "merge-base", "--end-of-options", base, "HEAD"], cwd=self.root, capture_output=True
            )
            shallow = subprocess.run(
                ["git", "rev-parse", "--is-shallow-repository"], cwd=self.root, capture_output=True
            )
        except OSError:
            return
        if found.returncode != 1 or found.stdout.strip() or shallow.stdout.strip() != b"false":
            return  # a merge base exists, git failed otherwise, or the clone is shallow (the default fix)
        raise UnrelatedHistoryError(
            f"HEAD shares no commit with the base {base}: the pull request's branch was not made from it",
            where=str(self.root),
            fix="rebase the branch onto the base branch (git rebase --root --onto <base>), or open the "
            "pull request from a branch of the index repository",
        )

    def behind(self, base: str, pathspecs: list[str]) -> list[str]:
        """Paths ``base`` changed since its merge base with HEAD: what HEAD's tree does not have."""
        out = self.git(
            "-c",
            "core.quotepath=off",
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            f"HEAD...{base}",
            "--",
            *pathspecs,
            what=f"cannot diff HEAD...{base}",
        )
        return sorted(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)

    def uncommitted(self, pathspecs: list[str]) -> list[str]:
        """Paths with uncommitted changes (staged, unstaged or untracked) under ``pathspecs``."""
        out = self.git(
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--",
            *pathspecs,
            what="cannot read the working tree status",
        )
        entries = out.split(b"\0")
        paths: list[str] = []
        i = 0
        while i < len(entries):
            entry = entries[i]
            if len(entry) > 3:
                paths.append(entry[3:].decode("utf-8", "surrogateescape"))
                if entry[:1] in (b"R", b"C"):
                    i += 1  # a rename/copy is followed by its source path
            i += 1
        return sorted(paths)

    def tracked_files(self, pathspecs: list[str]) -> list[str]:
        """Files of HEAD's index under ``pathspecs`` (repo-relative)."""
        out = self.git("ls-files", "-z", "--", *pathspecs, what="cannot list the tracked files")
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    def check_attributes(self, paths: list[str], attributes: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """(path, attribute, value) for every path and attribute, as .gitattributes files set them.

        The value is "unspecified" when none does.
        """
        if not paths:
            return []
        proc = subprocess.run(
            ["git", "check-attr", "-z", "--stdin", *attributes],
            cwd=self.root,
            input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in paths) + b"\0",
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise GitError("cannot read git attributes", where=str(self.root), fix="check the git install")
        fields = proc.stdout.split(b"\0")
        return [
            (path.decode("utf-8", "surrogateescape"), attr.decode(), value.decode())
            for path, attr, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
            if path
        ]

    def show(self, ref: str, path: str) -> bytes | None:
        """The bytes of ``path`` at ``ref``, or None when it does not exist there."""
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{ref}:{path}"], cwd=self.root, capture_output=True, check=False
        )
        return proc.stdout if proc.returncode == 0 else None

    def list_files(self, ref: str, directory: str) -> list[str]:
        """Every file under ``directory`` at ``ref`` (recursive, repo-relative paths)."""
        entries = self._ls_tree(
            ref, [directory.rstrip("/") + "/"], "--name-only", what=f"cannot list {directory} at {ref}"
        )
        return sorted(p.decode("utf-8", "surrogateescape") for p in entries)

    def gitlinks(self, ref: str, pathspecs: list[str]) -> set[str]:
        """Submodule entries (mode 160000, "gitlinks") under ``pathspecs`` at ``ref``.

        The working tree shows one as an empty folder, so only git's own modes reveal it.
        """
        found: set[str] = set()
        for entry in self._ls_tree(ref, pathspecs, what=f"cannot list the tree at {ref}"):
            meta, _, path = entry.partition(b"\t")
            if meta.startswith(b"160000 "):
                found.add(path.decode("utf-8", "surrogateescape"))
        return found

    def _ls_tree(self, ref: str, pathspecs: list[str], *options: str, what: str) -> list[bytes]:
        """``git ls-tree -r`` entries under ``pathspecs`` at ``ref`` (paths unquoted, NUL-separated)."""
        out = self.git(
            "-c", "core.quotepath=off", "ls-tree", "-r", "-z", *options, ref, "--", *pathspecs, what=what
        )
        return [entry for entry in out.split(b"\0") if entry]

    def list_dirs(self, ref: str, directory: str) -> list[str]:
        """Names of the immediate subdirectories of ``directory`` at ``ref``."""
        out = self.git(
            "ls-tree",
            "-z",
            "-d",
            "--name-only",
            ref,
            "--",
            directory.rstrip("/") + "/",
            what=f"cannot list {directory} at {ref}",
        )
        return sorted(PurePosixPath(p.decode()).name for p in out.split(b"\0") if p)

    def export(self, ref: str, directory: str, dest: Path) -> list[Path]:
        """Write the files under ``directory`` at ``ref`` into ``dest`` (same relative layout)."""
        written: list[Path] = []
        prefix = directory.rstrip("/") + "/"
        for path in self.list_files(ref, directory):
            data = self.show(ref, path)
            if data is None:  # a submodule or symlink entry; nothing we would verify
                continue
            target = dest / path[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(target)
        return written


def _run(
    cmd: list[str],
    *,
    cwd: Path,
    what: str,
    fix: str = "fetch the base branch (actions/checkout with fetch-depth: 0) and check the ref name",
) -> bytes:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError as err:
        raise GitError("git is not installed or not on PATH", fix="install git") from err
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(
            what + (f" ({detail[-1]})" if detail else ""),
            where=str(cwd),
            fix=fix,
        )
    return proc.stdout
