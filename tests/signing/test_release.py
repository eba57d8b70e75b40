"""Release signing: pin the artifact into plugin.toml (formatting kept), sign the exact manifest bytes."""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from pathlib import Path

import pytest

from registry_tool.errors import CheckFailed, RegistryToolError
from registry_tool.signing import (
    ArtifactMismatchError,
    ReleaseSigningError,
    SecretKey,
    check_artifact_pin,
    read_signatures,
    sign_release,
    sign_yank,
    signature_paths,
    verify_bytes,
)
from registry_tool.signing.release import comment_fields, sign_path

MANIFEST = """\
# validate_email: a sample plugin   (comment kept)
[plugin]
name = "validate_email"     # inline comment kept
version = "1.2.0"
description = 'single quotes kept'

[artifact]
file = "validate_email.wasm"
sha256 = "0000"   # stale pin, replaced in place
"""
WASM = b"\x00asm\x01\x00\x00\x00"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    d = tmp_path / "plugins" / "validate_email" / "1.2.0"
    d.mkdir(parents=True)
    (d / "plugin.toml").write_text(MANIFEST)
    (d / "validate_email.wasm").write_bytes(WASM)
    return d


def test_sign_release_pins_and_signs(release: Path, alice: SecretKey) -> None:
    sig_path = sign_release(release, alice, timestamp=1)
    assert sig_path == release / "plugin.toml.minisig"
    text = (release / "plugin.toml").read_text()
    doc = tomllib.loads(text)
    assert doc["artifact"] == {
        "file": "validate_email.wasm",
        "sha256": hashlib.sha256(WASM).hexdigest(),
        "size": 8,
    }
    # formatting and comments are preserved byte for byte outside the pinned values
    assert text.startswith(MANIFEST.split("sha256")[0])
    assert "# stale pin, replaced in place" in text and "'single quotes kept'" in text
    verified = verify_bytes(alice.public_key, (release / "plugin.toml").read_bytes(), sig_path.read_text())
    fields = comment_fields(verified.trusted_comment)
    assert (
        fields["plugin"] == "validate_email"
        and fields["version"] == "1.2.0"
        and fields["file"] == "plugin.toml"
    )


def test_resigning_unchanged_release_keeps_bytes(release: Path, alice: SecretKey) -> None:
    sign_release(release, alice)
    before = (release / "plugin.toml").read_bytes()
    sign_release(release, alice)
    assert (release / "plugin.toml").read_bytes() == before
    assert len(signature_paths(release / "plugin.toml")) == 1


def test_second_maintainer_gets_keyed_signature(release: Path, alice: SecretKey, bob: SecretKey) -> None:
    sign_release(release, alice)
    second = sign_release(release, bob)
    assert second.name == f"plugin.toml.{bob.key_id}.minisig"
    data = (release / "plugin.toml").read_bytes()
    texts = read_signatures(release / "plugin.toml")
    assert len(texts) == 2
    assert verify_bytes(alice.public_key, data, texts[0]) and verify_bytes(bob.public_key, data, texts[1])


def test_changed_artifact_removes_stale_signatures(release: Path, alice: SecretKey, bob: SecretKey) -> None:
    sign_release(release, alice)
    sign_release(release, bob)
    (release / "validate_email.wasm").write_bytes(WASM + b"\x00")
    sign_release(release, bob)
    paths = signature_paths(release / "plugin.toml")
    assert [p.name for p in paths] == ["plugin.toml.minisig"]
    assert verify_bytes(bob.public_key, (release / "plugin.toml").read_bytes(), paths[0].read_text())


def test_plain_minisign_after_pinning_is_accepted(release: Path, alice: SecretKey, minisign: str) -> None:
    """A maintainer may pin with registry-tool and sign with plain `minisign -S -m plugin.toml`."""
    from registry_tool.signing import pin_artifact

    assert pin_artifact(release) is True
    assert pin_artifact(release) is False
    key = release.parent / "k.key"
    key.write_bytes(alice.dump(None))
    out = subprocess.run(
        [minisign, "-S", "-s", str(key), "-m", str(release / "plugin.toml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    data = (release / "plugin.toml").read_bytes()
    assert verify_bytes(alice.public_key, data, read_signatures(release / "plugin.toml")[0])
    check_artifact_pin(data, WASM)


@pytest.mark.parametrize("wasm", [WASM + b"\x01", WASM[:-1], b""])
def test_artifact_pin_mismatch(release: Path, alice: SecretKey, wasm: bytes) -> None:
    sign_release(release, alice)
    with pytest.raises(ArtifactMismatchError):
        check_artifact_pin((release / "plugin.toml").read_bytes(), wasm)


def test_same_size_different_content_detected(release: Path, alice: SecretKey) -> None:
    sign_release(release, alice)
    with pytest.raises(ArtifactMismatchError, match="sha256"):
        check_artifact_pin((release / "plugin.toml").read_bytes(), b"\x00asm\x01\x00\x00\x01")


@pytest.mark.parametrize("file", ["../escape.wasm", "/etc/passwd", "a\\..\\b.wasm"])
def test_artifact_path_must_stay_inside(release: Path, alice: SecretKey, file: str) -> None:
    (release / "plugin.toml").write_text(MANIFEST.replace('"validate_email.wasm"', f"'{file}'"))
    with pytest.raises(CheckFailed, match="inside the release"):
        sign_release(release, alice)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[plugin]\nname = "x"\nversion = "1"\n', "no \\[artifact\\]"),
        ('[plugin]\nname = "x"\nversion = "1"\n[artifact]\nfile = "missing.wasm"\n', "does not exist"),
        ("[plugin\n", "cannot parse"),
        ('\ufeff[plugin]\nname = "x"\n', "byte order mark"),  # tomlkit said "Empty key at line 1 col 0"
    ],
)
def test_unsignable_release(release: Path, alice: SecretKey, text: str, match: str) -> None:
    (release / "plugin.toml").write_text(text)
    with pytest.raises(ReleaseSigningError, match=match):
        sign_release(release, alice)


@pytest.mark.parametrize("kind", ["artifact-link", "manifest-link", "fifo", "too-large"])
def test_sign_reads_only_the_releases_own_regular_files(
    release: Path, alice: SecretKey, tmp_path: Path, kind: str
) -> None:
    """sign pinned and signed /etc/passwd through an artifact link out of the release (validate
    refuses the link), read a 300 MB module whole, and called a FIFO "does not exist"."""
    import os

    from registry_tool.format.rules import MAX_MODULE_BYTES

    wasm, manifest = release / "validate_email.wasm", release / "plugin.toml"
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret bytes")
    if kind == "artifact-link":
        wasm.unlink()
        wasm.symlink_to(outside)
    elif kind == "manifest-link":
        outside.write_bytes(manifest.read_bytes())
        manifest.unlink()
        manifest.symlink_to(outside)
    elif kind == "fifo":
        wasm.unlink()
        os.mkfifo(wasm)
    else:
        with wasm.open("r+b") as fh:
            fh.truncate(MAX_MODULE_BYTES + 1)  # sparse
    said = {"fifo": "a FIFO", "too-large": "more than the 256 MiB"}.get(kind, "is a symbolic link")
    with pytest.raises(ReleaseSigningError, match=said):
        sign_release(release, alice)
    assert not list(release.glob("*.minisig"))


def test_sign_never_follows_a_folder_link_on_the_artifacts_path(
    release: Path, alice: SecretKey, tmp_path: Path
) -> None:
    """file = "sub/validate_email.wasm" with sub a link out of the release: the outside file was
    pinned and signed (O_NOFOLLOW guards the last component only)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "validate_email.wasm").write_bytes(b"\0asm\1\0\0\0 outside")
    (release / "sub").symlink_to(outside)
    text = MANIFEST.replace('"validate_email.wasm"', '"sub/validate_email.wasm"')
    (release / "plugin.toml").write_text(text)
    with pytest.raises(ReleaseSigningError, match="not a plain file name"):
        sign_release(release, alice)
    assert not list(release.glob("*.minisig"))


def test_sign_yank_reads_no_link(release: Path, alice: SecretKey, tmp_path: Path) -> None:
    victim = tmp_path / "victim.toml"
    victim.write_text('[yank]\nname = "validate_email"\nversion = "1.2.0"\nreason = "CVE"\n')
    (release / "yank.toml").symlink_to(victim)
    with pytest.raises(ReleaseSigningError, match="symbolic link"):
        sign_yank(release, alice)


def test_sign_yank(release: Path, alice: SecretKey) -> None:
    (release / "yank.toml").write_text('[yank]\nname = "validate_email"\nversion = "1.2.0"\nreason = "CVE"\n')
    path = sign_yank(release, alice)
    verified = verify_bytes(alice.public_key, (release / "yank.toml").read_bytes(), path.read_text())
    assert comment_fields(verified.trusted_comment)["file"] == "yank.toml"


def test_sign_path_plain_file(tmp_path: Path, alice: SecretKey) -> None:
    f = tmp_path / "registry.json"
    f.write_bytes(b"{}")
    out = sign_path(f, alice, trusted_comment="index")
    assert out == tmp_path / "registry.json.minisig"
    assert verify_bytes(alice.public_key, b"{}", out.read_text()).trusted_comment == "index"


def test_signature_paths_ignore_lookalikes(tmp_path: Path) -> None:
    f = tmp_path / "plugin.toml"
    f.write_text("x")
    for name in [
        "plugin.toml.minisig",
        "plugin.toml.0123456789ABCDEF.minisig",
        "plugin.toml.0123456789abcdef.minisig",
        "plugin.toml.012.minisig",
        "plugin.tomlx.0123456789ABCDEF.minisig",
        "plugin.toml.0123456789ABCDEF.minisig\n",  # `$` would match before the newline
        "other.toml.minisig",
    ]:
        (tmp_path / name).write_text("s")
    assert [p.name for p in signature_paths(f)] == [
        "plugin.toml.minisig",
        "plugin.toml.0123456789ABCDEF.minisig",
    ]


@pytest.mark.parametrize("target", ["dir", "plugin.toml"])
def test_sign_path_routes_manifest_to_release_signing(release: Path, alice: SecretKey, target: str) -> None:
    path = release if target == "dir" else release / "plugin.toml"
    out = sign_path(path, alice)
    assert out == release / "plugin.toml.minisig"
    check_artifact_pin((release / "plugin.toml").read_bytes(), WASM)


def test_sign_path_yank_toml(release: Path, alice: SecretKey) -> None:
    (release / "yank.toml").write_text('[yank]\nname = "validate_email"\nversion = "1.2.0"\nreason = "x"\n')
    assert sign_path(release / "yank.toml", alice) == release / "yank.toml.minisig"


def test_every_byte_of_the_signature_file_matters(alice: SecretKey) -> None:
    """Attack sweep: any single-bit change outside the untrusted comment line is rejected."""
    from registry_tool.signing.minisign import KeyMismatchError

    data = b"manifest bytes\n"
    text = sign_bytes_for(alice, data).encode()
    first_line_end = text.index(b"\n") + 1
    accepted = []
    for i in range(first_line_end, len(text)):
        for bit in (0x01, 0x20, 0x80):
            mutated = bytearray(text)
            mutated[i] ^= bit
            try:
                verify_bytes(alice.public_key, data, bytes(mutated))
            except (CheckFailed, KeyMismatchError):
                continue
            accepted.append((i, bit))
    # Every line but the untrusted comment is covered by a signature or by strict parsing.
    assert accepted == []


def sign_bytes_for(key: SecretKey, data: bytes) -> str:
    from registry_tool.signing import sign_bytes

    return sign_bytes(key, data, trusted_comment="timestamp:1\tfile:plugin.toml\tplugin:p\tversion:1")


def test_non_utf8_signature_file_is_malformed(tmp_path: Path, alice: SecretKey) -> None:
    from registry_tool.signing import MalformedSignatureError, sign_bytes

    f = tmp_path / "plugin.toml"
    f.write_bytes(b"x")
    text = sign_bytes(alice, b"x", trusted_comment="tc").encode().replace(b"tc", b"t\xff")
    (tmp_path / "plugin.toml.minisig").write_bytes(text)
    (sig,) = read_signatures(f)
    with pytest.raises(MalformedSignatureError, match="UTF-8"):
        verify_bytes(alice.public_key, b"x", sig)


@pytest.mark.parametrize(
    "manifest",
    [
        b"a = " + b"[" * 50_000,  # nested arrays: tomllib recurses until RecursionError
        b"a = " + b"{ b = " * 50_000,
        b"\xff\xfe not utf-8",
    ],
)
def test_hostile_manifest_is_a_named_error(manifest: bytes) -> None:
    """The manifest is read before any signature over it is checked (to learn the plugin name and
    version), so its parsing must fail with a named error, never an unexpected exception."""
    from registry_tool.errors import CheckFailed
    from registry_tool.signing import check_artifact_pin, manifest_identity

    with pytest.raises(CheckFailed):
        manifest_identity(manifest)
    with pytest.raises(CheckFailed):
        check_artifact_pin(manifest, b"")


@pytest.mark.parametrize("planted", ["plugin.toml.minisig", "plugin.toml"])
def test_sign_never_writes_through_a_planted_link(
    release: Path, alice: SecretKey, tmp_path: Path, planted: str
) -> None:
    """A link at the signature's (or the manifest's) name in a folder handed to a maintainer made
    `sign` overwrite the link's target, any file the maintainer can write."""
    victim = tmp_path / "victim"
    if planted == "plugin.toml":
        victim.write_text(MANIFEST)
        (release / "plugin.toml").unlink()
    else:
        victim.write_text("precious\n")
    (release / planted).symlink_to(victim)
    before = victim.read_bytes()
    if planted == "plugin.toml":  # not read through either (validate refuses a link in a release)
        with pytest.raises(ReleaseSigningError, match="is a symbolic link"):
            sign_release(release, alice, timestamp=1)
    else:
        sign_release(release, alice, timestamp=1)
        assert not (release / planted).is_symlink()
    assert victim.read_bytes() == before


def test_sign_refuses_a_manifest_naming_another_release_than_its_folder(
    release: Path, alice: SecretKey
) -> None:
    """plugins/validate_email/1.2.0 saying 9.9.9 was signed as 9.9.9 (it verifies once moved)."""
    (release.parents[2] / "registry.toml").write_text("")  # the folder is in an index
    manifest = release / "plugin.toml"
    manifest.write_text(MANIFEST.replace('version = "1.2.0"', 'version = "9.9.9"'))
    with pytest.raises(RegistryToolError, match=r"names validate_email 9\.9\.9, but the folder is"):
        sign_release(release, alice, timestamp=1)
    assert not (release / "plugin.toml.minisig").exists()


def test_sign_outside_an_index_does_not_compare_folder_names(tmp_path: Path, alice: SecretKey) -> None:
    """A maintainer's own repository, plugins/<name>/dist/, is no index release folder."""
    dist = tmp_path / "plugins" / "validate_email" / "dist"
    dist.mkdir(parents=True)
    (dist / "plugin.toml").write_text(MANIFEST)
    (dist / "validate_email.wasm").write_bytes(WASM)
    assert sign_release(dist, alice, timestamp=1).is_file()


def test_signing_keeps_the_manifests_file_mode(release: Path, alice: SecretKey) -> None:
    manifest = release / "plugin.toml"
    manifest.chmod(0o600)
    sign_release(release, alice, timestamp=1)  # re-pins: plugin.toml is written again
    assert manifest.stat().st_mode & 0o777 == 0o600


def test_a_re_pin_and_the_signatures_it_voids_are_told(
    release: Path, alice: SecretKey, bob: SecretKey
) -> None:
    """A co-signer signing a folder whose module changed re-pinned it and deleted the other
    signatures with nothing said but "wrote"."""
    sign_release(release, alice, timestamp=1)
    (release / "validate_email.wasm").write_bytes(WASM + b"\0")  # another module since
    notes: list[str] = []
    sign_release(release, bob, timestamp=2, notes=notes)
    new = hashlib.sha256(WASM + b"\0").hexdigest()
    assert notes[0] == f"pinned [artifact] sha256 {new} (was {hashlib.sha256(WASM).hexdigest()})"
    assert notes[1] == "removed 1 signature(s) over the previous plugin.toml: plugin.toml.minisig"
    quiet: list[str] = []
    sign_release(release, bob, timestamp=3, notes=quiet)  # nothing changed: nothing to tell
    assert quiet == []


def test_a_toml_fault_is_reported_on_the_line_the_maintainer_wrote(release: Path, alice: SecretKey) -> None:
    """Pinning inserts the size line above a fault further down: it was reported one line low."""
    text = MANIFEST + "\n[[tests]]\nargs = [99999999999999999999999]\n"
    (release / "plugin.toml").write_text(text)
    line = text.splitlines().index("args = [99999999999999999999999]") + 1
    with pytest.raises(RegistryToolError, match=f"at line {line}, column"):
        sign_release(release, alice)
