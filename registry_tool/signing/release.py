"""Signing a plugin release: pin the artifact into plugin.toml, then sign the manifest's exact bytes.

The maintainer signs exactly the manifest they wrote (formatting and comments preserved by tomlkit),
and the manifest pins the binary by sha256 and size, so one signature covers both.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from registry_tool._files import no_regular_file, read_bounded, write_replacing
from registry_tool._toml import BOM_FIX, BOM_MESSAGE
from registry_tool.errors import CheckFailed, Location, RegistryToolError, UsageError
from registry_tool.format import toml
from registry_tool.format.rules import MANIFEST as MANIFEST
from registry_tool.format.rules import (
    MAX_MANIFEST_BYTES,
    MAX_MODULE_BYTES,
    MAX_SIGNATURE_BYTES,
    SIG_SUFFIX,
    is_file_name,
    is_signature_of,
    root_file_version,
    signature_key_id,
)
from registry_tool.format.rules import YANK as YANK
from registry_tool.signing.minisign import SecretKey, Signature, sign_bytes


class SignatureNameError(CheckFailed):
    """A keyed signature file (``F.<KEYID>.minisig``) holds a signature another key made."""

    code = "signature-name"


def check_signature_name(name: str, signed_name: str, text: str, *, where: str | None = None) -> None:
    """Refuse a keyed signature file of ``signed_name`` whose signature another key made.

    Verifiers fetch ``F.<KEYID>.minisig`` by the id of a key that signed F
    (``format.rules.signature_names``): under another id the signature is never found, so the
    release (or root version) would verify for the build and ci check and for no client.  A text
    that is no minisign signature is left to the signature checks, which count it as none.

    Raises:
        SignatureNameError: the signature's key id is not the one in ``name``.
    """
    named = signature_key_id(name, signed_name)
    if named is None:
        return
    try:
        signer = Signature.parse(text).key_id
    except CheckFailed:
        return
    if signer != named:
        plain = f" (or to {signed_name}{SIG_SUFFIX} if that name is free)"
        if root_file_version(signed_name):
            plain = ""  # root versions use only the keyed name (read_root_signatures)
        raise SignatureNameError(
            f"{name} holds a signature by key {signer}, not by key {named}: verifiers look a signature "
            f"up by its signer's key id, and would never find this one",
            where=where or name,
            fix=f"rename it to {signed_name}.{signer}{SIG_SUFFIX}{plain}",
        )


class ReleaseSigningError(UsageError):
    """The release directory cannot be signed as it is (missing manifest, artifact, fields)."""

    code = "release-signing"


class ArtifactMismatchError(CheckFailed):
    """The artifact's sha256 or size differs from what plugin.toml pins."""

    code = "artifact-mismatch"


class TrustedCommentMismatchError(CheckFailed):
    """The signature's trusted comment names another plugin or version than the signed manifest."""

    code = "trusted-comment-mismatch"


def signature_paths(signed_file: Path) -> list[Path]:
    """Every signature file for ``signed_file``: ``F.minisig`` then ``F.<KEYID>.minisig`` sorted by key id."""
    plain_name = signed_file.name + SIG_SUFFIX
    plain: list[Path] = []
    keyed: list[str] = []
    # One scandir (its entries know their type) instead of a stat per candidate: a batch verify
    # lists every release folder once.
    try:
        with os.scandir(signed_file.parent) as entries:
            for entry in entries:
                # Not through a link: it could lead anywhere (a device, another folder's file).
                if not is_signature_of(entry.name, signed_file.name):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.name == plain_name:
                    plain.append(signed_file.parent / entry.name)
                else:
                    keyed.append(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return plain + [signed_file.parent / name for name in sorted(keyed)]


def read_signatures(signed_file: Path) -> list[str]:
    """The text of every signature file for ``signed_file`` (see ``signature_paths``).

    Each is read bounded (``MAX_SIGNATURE_BYTES``) and never through a link: a "signature" of 2 GiB
    was read whole.

    Raises:
        FileTooLargeError: a signature file is larger than a minisign signature can be.
        SignatureNameError: a keyed signature file holds another key's signature.
    """
    texts = []
    for p in signature_paths(signed_file):
        text = read_bounded(p, MAX_SIGNATURE_BYTES, "signature file", follow_symlinks=False).decode(
            "utf-8", errors="surrogateescape"
        )
        check_signature_name(p.name, signed_file.name, text, where=str(p))
        texts.append(text)
    return texts


def read_root_signatures(root_file: Path) -> list[str]:
    """The text of every signature file of a root version: ``<N>.root.json.<KEYID>.minisig`` only.

    Root versions use only the keyed name (trust.md section 4): every client fetches a root
    version's signatures by the ids of the root keys it knows, never ``<N>.root.json.minisig``.
    Counted here, such a file would let the build and ci check pass a root version that no
    client can verify, so it is refused by name.

    Raises:
        FileTooLargeError: a signature file is larger than a minisign signature can be.
        SignatureNameError: a keyed file holds another key's signature, or ``<N>.root.json.minisig``
            exists.
    """
    paths = signature_paths(root_file)
    plain = root_file.name + SIG_SUFFIX
    if paths and paths[0].name == plain:
        signer = ""
        try:
            text = read_bounded(paths[0], MAX_SIGNATURE_BYTES, "signature file", follow_symlinks=False)
            signer = Signature.parse(text.decode("utf-8", errors="surrogateescape")).key_id
        except (CheckFailed, UsageError):
            pass
        raise SignatureNameError(
            f"{plain}: root versions are signed only under the keyed name {root_file.name}.<KEYID>"
            f"{SIG_SUFFIX}, which is the only one clients fetch",
            where=str(paths[0]),
            fix=f"rename it to {root_file.name}.{signer or '<KEYID>'}{SIG_SUFFIX}, or sign the root version "
            "with `registry-tool root sign`, which writes that name",
        )
    return read_signatures(root_file)


def keyed_signature_path(signed_file: Path, key_id: str) -> Path:
    """``F.<KEYID>.minisig``: where a further key's signature of ``signed_file`` goes."""
    return signed_file.with_name(f"{signed_file.name}.{key_id}.minisig")


# --------------------------------------------------------------------------- trusted comments


def release_trusted_comment(
    name: str, version: str, file: str = MANIFEST, *, timestamp: int | None = None
) -> str:
    """minisign-style ``key:value`` fields separated by tabs, naming the plugin and version."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"timestamp:{ts}\tfile:{file}\tplugin:{name}\tversion:{version}"


def comment_fields(trusted_comment: str) -> dict[str, str]:
    """The ``key:value`` fields of a tab-separated trusted comment (the first of each key wins)."""
    fields: dict[str, str] = {}
    for part in trusted_comment.split("\t"):
        key, sep, value = part.partition(":")
        if sep and key and key not in fields:
            fields[key] = value
    return fields


def check_trusted_comment(trusted_comment: str, name: str, version: str, *, where: str | None = None) -> None:
    """If the trusted comment names a plugin/version (as ours do), it must be the manifest's (pure).

    A plain ``minisign -S`` comment (timestamp, file) names neither and is accepted.
    """
    fields = comment_fields(trusted_comment)
    for key, expected in (("plugin", name), ("version", version)):
        if key in fields and fields[key] != expected:
            raise TrustedCommentMismatchError(
                f"the trusted comment says {key} '{fields[key]}' but the manifest says '{expected}'",
                where=where,
                fix="the signature belongs to another release; re-sign this release",
            )


# --------------------------------------------------------------------------- manifests (pure helpers)


def _load_toml(data: bytes, where: str | None) -> dict[str, Any]:
    """Parse TOML that is not trusted yet: every failure is a ``CheckFailed``."""
    try:
        return toml.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, toml.TOMLDecodeError) as exc:
        raise CheckFailed(f"cannot parse the TOML: {exc}", where=where, fix="fix the TOML syntax") from None
    except ValueError:  # Python's integer conversion limit: a literal of more than 4300 digits
        raise CheckFailed(
            "cannot parse the TOML: an integer is too long", where=where, fix="use a shorter number"
        ) from None
    except RecursionError:  # the parser recurses into nested arrays and inline tables
        raise CheckFailed(
            "cannot parse the TOML: arrays or tables nested too deeply", where=where, fix="fix the TOML"
        ) from None


@dataclass(frozen=True)
class ParsedIdentity:
    """``[table]`` name and version that a caller already read from ``source``, the exact bytes.

    The build's manifest parser reads plugin.toml once; handing the verifier this instead of
    letting it parse the bytes again is only sound for the very bytes whose signatures are
    checked, so the verifier compares ``source`` with them (``identity_of``).
    """

    name: str
    version: str
    source: bytes = field(repr=False)
    table: str = "plugin"


class IdentityMismatchError(CheckFailed):
    """A caller's parsed identity was read from other bytes (or another table) than those verified."""

    code = "identity-mismatch"


def identity_of(
    data: bytes, parsed: ParsedIdentity | None, *, where: str | None = None, table: str = "plugin"
) -> tuple[str, str]:
    """(name, version) of ``data``: ``parsed`` when it was read from these exact bytes, else parsed here.

    A ``parsed`` identity from other bytes or another table is refused, never silently used.
    """
    if parsed is None:
        return manifest_identity(data, where=where, table=table)
    # ``is`` first: the build hands over the very object it parsed (no byte comparison then).
    if parsed.table != table or not (parsed.source is data or parsed.source == data):
        raise IdentityMismatchError(
            f"the {parsed.table}.toml identity handed to the verifier was not read from the verified bytes",
            where=where,
            fix="pass the identity parsed from the same bytes, or none (the verifier parses them)",
        )
    return parsed.name, parsed.version


def manifest_identity(
    manifest_bytes: bytes, *, where: str | None = None, table: str = "plugin"
) -> tuple[str, str]:
    """(name, version) from a plugin.toml (or yank.toml with ``table='yank'``)."""
    return identity_from_doc(_load_toml(manifest_bytes, where), where=where, table=table)


def parse_signed_toml(data: bytes, *, where: str | None = None) -> dict[str, Any]:
    """Parse a manifest or yank file once, for callers that need several of its fields."""
    return _load_toml(data, where)


def identity_from_doc(
    doc: dict[str, Any], *, where: str | None = None, table: str = "plugin"
) -> tuple[str, str]:
    """``manifest_identity`` of an already parsed document."""
    section = doc.get(table)
    name = section.get("name") if isinstance(section, dict) else None
    version = section.get("version") if isinstance(section, dict) else None
    if not isinstance(name, str) or not isinstance(version, str):
        raise CheckFailed(
            f"[{table}] name and version are required strings",
            where=Location(file=where, field=f"{table}.name"),
            fix=f"add name and version to the [{table}] table",
        )
    return name, version


def _artifact_table(doc: dict[str, Any], where: str) -> dict[str, Any]:
    artifact = doc.get("artifact")
    if not isinstance(artifact, dict) or not isinstance(artifact.get("file"), str):
        raise ReleaseSigningError(
            "plugin.toml has no [artifact] file",
            where=Location(file=where, field="artifact.file"),
            fix='add `[artifact]` with `file = "<name>.wasm"`',
        )
    return artifact


def artifact_path(release_dir: Path, file: str, *, where: str) -> Path:
    """The artifact named by the manifest; it must be a plain relative path inside the release dir."""
    rel = Path(file)
    if rel.is_absolute() or ".." in rel.parts or file.startswith(("/", "\\")) or "\\" in file:
        raise CheckFailed(
            f"artifact file '{file}' is not a relative path inside the release directory",
            where=Location(file=where, field="artifact.file"),
            fix="name a file next to plugin.toml",
        )
    return release_dir / rel


def check_artifact_pin(manifest_bytes: bytes, artifact_bytes: bytes, *, where: str | None = None) -> None:
    """The artifact's sha256 and size must be exactly what the (signed) manifest pins (pure)."""
    check_artifact_doc(_load_toml(manifest_bytes, where), artifact_bytes, where=where)


def check_artifact_doc(doc: dict[str, Any], artifact_bytes: bytes, *, where: str | None = None) -> None:
    """``check_artifact_pin`` against an already parsed manifest."""
    artifact = doc.get("artifact")
    if not isinstance(artifact, dict):
        raise ArtifactMismatchError(
            "the manifest has no [artifact] table", where=where, fix="sign the release"
        )
    digest = hashlib.sha256(artifact_bytes).hexdigest()
    if artifact.get("sha256") != digest:
        raise ArtifactMismatchError(
            f"artifact sha256 is {digest}, the manifest pins {artifact.get('sha256')!r}",
            where=Location(file=where, field="artifact.sha256"),
            fix="the wasm file was modified or replaced; restore it or re-sign the release",
        )
    if artifact.get("size") != len(artifact_bytes):
        raise ArtifactMismatchError(
            f"artifact size is {len(artifact_bytes)}, the manifest pins {artifact.get('size')!r}",
            where=Location(file=where, field="artifact.size"),
            fix="restore the wasm file or re-sign the release",
        )


# --------------------------------------------------------------------------- signing (I/O edge)


_TABLE_FIX = 'write it as [artifact] with file = "module.wasm"'


def pin_artifact(release_dir: Path) -> bool:
    """Write ``[artifact] sha256`` and ``size`` into plugin.toml; True if the file changed."""
    original, updated = _pinned(release_dir)
    if updated == original:
        return False
    write_replacing(release_dir / MANIFEST, updated)
    return True


def _pinned(release_dir: Path) -> tuple[bytes, bytes]:
    """plugin.toml's bytes, and the same with ``[artifact] sha256`` and ``size`` of the module."""
    manifest = release_dir / MANIFEST
    if not os.path.lexists(manifest):
        raise ReleaseSigningError(f"no {MANIFEST} in {release_dir}", fix="point at a release directory")
    # Never through a link (validate refuses one in a release): a signature pins these very bytes.
    original = _release_file(manifest, MAX_MANIFEST_BYTES, MANIFEST)
    if original.startswith(b"\xef\xbb\xbf"):
        raise ReleaseSigningError(f"cannot parse the TOML: {BOM_MESSAGE}", where=str(manifest), fix=BOM_FIX)
    try:
        doc = tomlkit.parse(original.decode("utf-8"))
    except (UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ReleaseSigningError(
            f"cannot parse the TOML: {exc}", where=str(manifest), fix="fix the syntax"
        ) from None
    artifact = _artifact_table(doc.unwrap(), str(manifest))
    wasm = artifact_path(release_dir, artifact["file"], where=str(manifest))
    if not is_file_name(str(artifact["file"])):
        # A folder on the way could be a link out of the release (only the last component is
        # opened without following one); the build publishes plain names only anyway.
        raise ReleaseSigningError(
            f"artifact.file {artifact['file']!r} is not a plain file name in the release folder",
            where=Location(file=str(manifest), field="artifact.file"),
            fix="put the module next to plugin.toml and name it there, e.g. my_plugin.wasm",
        )
    if not os.path.lexists(wasm):
        raise ReleaseSigningError(
            f"artifact {wasm} does not exist",
            where=Location(file=str(manifest), field="artifact.file"),
            fix="build the plugin first or fix [artifact] file",
        )
    data = _release_file(wasm, MAX_MODULE_BYTES, "artifact")
    table = doc["artifact"]
    # [artifact] as a section, or artifact = { file = ... } inline: both take the two keys.
    if not isinstance(table, (tomlkit.items.Table, tomlkit.items.InlineTable)):
        raise ReleaseSigningError(
            "artifact must be a table", where=Location(file=str(manifest), field="artifact"), fix=_TABLE_FIX
        )
    table["sha256"] = hashlib.sha256(data).hexdigest()
    table["size"] = len(data)
    return original, tomlkit.dumps(doc).encode("utf-8")


def _release_file(path: Path, cap: int, what: str) -> bytes:
    """A release file's bytes: a regular file, not a link, at most ``cap`` bytes."""
    try:
        return read_bounded(path, cap, what, follow_symlinks=False)
    except RegistryToolError as err:
        raise ReleaseSigningError(err.what, where=str(path), fix=err.fix) from None


def _signature_target(signed_file: Path, secret: SecretKey) -> Path:
    """``F.minisig`` unless another key's signature is already there; then ``F.<KEYID>.minisig``."""
    plain = signed_file.with_name(signed_file.name + ".minisig")
    if plain.is_file() and not plain.is_symlink():
        try:
            existing = Signature.parse(
                read_bounded(plain, MAX_SIGNATURE_BYTES, "signature file", follow_symlinks=False)
            )
        except CheckFailed:
            return plain  # garbage: replaced (never written through)
        if existing.keynum != secret.keynum:
            return keyed_signature_path(signed_file, secret.key_id)
    return plain


def sign_file(
    path: Path, secret: SecretKey, *, trusted_comment: str | None = None, output: Path | None = None
) -> Path:
    """Sign ``path`` as is and return the signature file written.

    That is ``path.minisig``, ``path.<KEYID>.minisig`` when another key's signature is already
    there, or ``output``.
    """
    data = path.read_bytes()
    comment = trusted_comment or f"timestamp:{int(time.time())}\tfile:{path.name}\thashed"
    target = output or _signature_target(path, secret)
    write_replacing(target, sign_bytes(secret, data, trusted_comment=comment).encode("utf-8"))
    return target


def _sign_release_file(
    signed: Path, secret: SecretKey, table: str, timestamp: int | None, *, suffix: str = "", data: bytes
) -> Path:
    """Sign ``data``: the bytes of plugin.toml or yank.toml already read, never read again.

    A file swapped in between would be signed otherwise.  The trusted comment names the release
    its ``[table]`` names.
    """
    name, version = manifest_identity(data, where=str(signed), table=table)
    target = _signature_target(signed, secret)
    comment = release_trusted_comment(name, version, signed.name, timestamp=timestamp) + suffix
    write_replacing(target, sign_bytes(secret, data, trusted_comment=comment).encode("utf-8"))
    return target


def _check_folder_identity(release_dir: Path, data: bytes) -> None:
    """In an index (``plugins/<name>/<version>/``), plugin.toml must name that release.

    A folder handed to a co-signer as ``plugins/hello_world/0.1.0`` whose manifest says
    ``validate_email 9.9.9`` was signed as validate_email 9.9.9, which verifies once moved.
    """
    folder = release_dir.resolve()
    index = folder.parent.parent
    if index.name != "plugins" or not (index.parent / "registry.toml").is_file():
        return  # not a release folder of an index (a maintainer's plugins/<name>/dist/): nothing to compare
    manifest = release_dir / MANIFEST
    name, version = manifest_identity(data, where=str(manifest), table="plugin")
    if (name, version) != (folder.parent.name, folder.name):
        raise ReleaseSigningError(
            f"plugin.toml names {name} {version}, but the folder is "
            f"plugins/{folder.parent.name}/{folder.name}",
            where=Location(file=str(manifest), field="plugin.name"),
            fix="sign only a release whose plugin.toml names its own folder; move or fix it first",
        )


def sign_release(
    release_dir: Path, secret: SecretKey, *, timestamp: int | None = None, notes: list[str] | None = None
) -> Path:
    """Pin the artifact into plugin.toml and write the maintainer's signature; returns its path.

    If pinning changed the manifest, earlier signatures are over other bytes and are removed;
    ``notes`` gets a line for each (a co-signer must see that the module is not the one pinned).
    """
    original, updated = _pinned(release_dir)
    manifest = release_dir / MANIFEST
    # Read as the maintainer wrote it first: a fault in the pinned bytes was reported on a line
    # shifted by the sha256 and size lines pinning inserts.
    manifest_identity(original, where=str(manifest), table="plugin")
    _check_folder_identity(release_dir, updated)
    if updated != original:
        was, now = _pin_of(original), _pin_of(updated)
        write_replacing(manifest, updated)
        stale = signature_paths(manifest)
        for path in stale:
            path.unlink()
        if notes is not None:
            notes.append(f"pinned [artifact] sha256 {now} (was {was or 'not pinned'})")
            if stale:
                names = ", ".join(p.name for p in stale)
                notes.append(f"removed {len(stale)} signature(s) over the previous plugin.toml: {names}")
    return _sign_release_file(manifest, secret, "plugin", timestamp, data=updated)


def _pin_of(manifest: bytes) -> str | None:
    """``[artifact] sha256`` of plugin.toml bytes, if it reads."""
    try:
        value = toml.loads(manifest.decode("utf-8")).get("artifact", {}).get("sha256")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def sign_yank(release_dir: Path, secret: SecretKey, *, timestamp: int | None = None) -> Path:
    """Sign ``yank.toml`` of a release (a maintainer-signed yank); returns the signature path."""
    yank = release_dir / YANK
    if not os.path.lexists(yank):
        raise ReleaseSigningError(
            f"no {YANK} in {release_dir}", fix="write yank.toml with [yank] name, version, reason"
        )
    data = _release_file(yank, MAX_MANIFEST_BYTES, YANK)
    return _sign_release_file(yank, secret, "yank", timestamp, suffix="\tyank", data=data)


def sign_path(
    path: Path,
    secret: SecretKey,
    *,
    trusted_comment: str | None = None,
    yank: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """`registry-tool sign`: a release dir or its plugin.toml (pin + sign), its yank.toml, or any file."""
    if path.is_file() and path.name in (MANIFEST, YANK):
        # plugin.toml / yank.toml are always signed the release way (pinned, naming the release).
        yank = path.name == YANK
        path = path.parent
    if path.is_dir():
        if trusted_comment:
            raise UsageError(
                "--trusted-comment is for plain files", fix="a release's comment names its plugin and version"
            )
        return sign_yank(path, secret) if yank else sign_release(path, secret, notes=notes)
    if yank:
        raise UsageError("--yank needs a release directory", fix="pass the directory holding yank.toml")
    if not path.is_file():
        raise UsageError(no_regular_file(path, "the file to sign"), fix="give a file or a release directory")
    return sign_file(path, secret, trusted_comment=trusted_comment)
