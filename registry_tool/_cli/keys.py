"""`registry-tool key|sign|verify|root ...`: keys, signatures and the root of trust (thin wrappers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool.report import CheckResult, OutputFormat, Report

PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Read the passphrase from this environment variable (default: prompt). Never from argv.",
    ),
]
RootDir = Annotated[Path, typer.Option("--dir", help="The index's root/ directory.")]
Expires = Annotated[
    str | None, typer.Option("--expires", help="Expiry: a duration from now (365d) or 2027-11-21T00:00:00Z.")
]

key_app = typer.Typer(
    help="Generate and inspect minisign-compatible keys.", no_args_is_help=True, rich_markup_mode=None
)
root_app = typer.Typer(
    help="Edit, sign and verify the registry's root metadata.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(key_app, name="key")
    app.add_typer(root_app, name="root")
    app.command("sign")(sign)
    app.command("verify")(verify)


def _now() -> datetime:
    return datetime.now(UTC)


def _done(command: str, subject: object, fmt: OutputFormat, **facts: Any) -> None:
    """Emit the one-result report of a command that wrote or showed something."""
    emit(Report(command, [CheckResult(subject=str(subject), data=facts)]), fmt)


# --------------------------------------------------------------------------- keys


@key_app.command("generate")
@handle_errors
def key_generate(
    name: Annotated[Path, typer.Argument(help="Writes NAME.pub and NAME.key.")],
    unencrypted: Annotated[
        bool, typer.Option("--unencrypted", help="Do not encrypt the secret key (CI secret stores only).")
    ] = False,
    passphrase_env: PassphraseEnv = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Generate a key pair (the secret key is scrypt-encrypted, as by `minisign -G`)."""
    from registry_tool.errors import UsageError
    from registry_tool.signing.keyfiles import generate_key_files, read_passphrase

    if not name.name or name.name in (".", ".."):
        raise UsageError(
            f"NAME {str(name)!r} names no file",
            fix="give the key a name, e.g. `registry-tool key generate alice`",
        )
    passphrase = None if unencrypted else read_passphrase(passphrase_env, confirm=True)
    files = generate_key_files(name, passphrase, force=force)
    _done(
        "key generate",
        files.public,
        fmt,
        key_id=files.key_id,
        public_file=str(files.public),
        secret_file=str(files.secret),
        encrypted=passphrase is not None,
    )


@key_app.command("show")
@handle_errors
def key_show(
    key: Annotated[str, typer.Argument(help="A .pub file, a .key file or a base64 public key.")],
    passphrase_env: PassphraseEnv = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Print a key's id and public key (as minisign prints them)."""
    from registry_tool.signing.keyfiles import describe_key

    public = describe_key(key, passphrase_env)
    _done("key show", key, fmt, key_id=public.key_id, public_key=public.to_base64())


# --------------------------------------------------------------------------- sign / verify


@handle_errors
def sign(
    path: Annotated[Path, typer.Argument(help="A file, or a plugin release directory (pins the artifact).")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Secret key file.")],
    passphrase_env: PassphraseEnv = None,
    trusted_comment: Annotated[
        str | None, typer.Option("--trusted-comment", "-t", help="Trusted comment (files only).")
    ] = None,
    yank: Annotated[bool, typer.Option("--yank", help="Sign the release's yank.toml instead.")] = False,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Sign a file (writes FILE.minisig) or a plugin release (pins sha256/size, signs plugin.toml)."""
    from registry_tool.signing.keyfiles import load_secret_key
    from registry_tool.signing.release import sign_path

    secret = load_secret_key(key, passphrase_env)
    notes: list[str] = []
    written = sign_path(path, secret, trusted_comment=trusted_comment, yank=yank, notes=notes)
    _done("sign", path, fmt, written=str(written), key_id=secret.key_id, notes=notes)


@handle_errors
def verify(
    path: Annotated[
        Path,
        typer.Argument(
            help="The signed file; with --root a release directory, or an index or site (every release)."
        ),
    ],
    pubkey: Annotated[
        str | None, typer.Option("--pubkey", "-p", help="Public key file or base64 key.")
    ] = None,
    sig: Annotated[Path | None, typer.Option("--sig", "-x", help="Signature (default FILE.minisig).")] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="Verify a release against this root/ directory's chain.")
    ] = None,
    trusted: Annotated[
        Path | None, typer.Option("--trusted", help="Pinned root file to start the chain from (with --root).")
    ] = None,
    published_at: Annotated[
        str | None, typer.Option("--published-at", help="Release publication time (judges revoked keys).")
    ] = None,
    allow_legacy: Annotated[
        bool, typer.Option("--allow-legacy", help="Accept legacy non-prehashed 'Ed' signatures.")
    ] = False,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Verify a signature with one public key, or a plugin release against the registry's root."""
    from registry_tool.errors import UsageError

    if (pubkey is None) == (root is None):
        raise UsageError("give exactly one of --pubkey and --root", fix="see `registry-tool verify --help`")
    if published_at is not None and root is None:
        raise UsageError(
            "--published-at judges maintainer keys under a root", fix="give --root with it, or leave it out"
        )
    when = None
    if published_at:
        from registry_tool.errors import RegistryToolError
        from registry_tool.trust.root import parse_time

        try:
            when = parse_time(published_at)
        except RegistryToolError as err:
            raise UsageError(
                f"--published-at: {err.what}", fix="give a time such as 2026-11-21T00:00:00Z"
            ) from None
    if root is not None and path.is_dir() and not (path / "plugin.toml").is_file():
        # A folder of releases (an index, a site, plugins/ or plugins/<name>): one root walk for all.
        from registry_tool.trust.check import verify_releases

        if published_at is not None:
            raise UsageError("--published-at applies to one release", fix="give a release directory")
        emit(verify_releases(path, root, _now(), trusted=trusted), fmt)
    if root is not None:
        from registry_tool.trust.check import verify_release_dir

        result = verify_release_dir(path, root, _now(), trusted=trusted, published_at=when)
    else:
        from registry_tool.signing.keyfiles import load_public_key
        from registry_tool.trust.check import verify_file

        assert pubkey is not None
        result = verify_file(path, load_public_key(pubkey), sig=sig, allow_legacy=allow_legacy)
    emit(Report("verify", [result]), fmt)


# --------------------------------------------------------------------------- root


@root_app.command("init")
@handle_errors
def root_init(
    registry: Annotated[str, typer.Option("--registry", help="The registry's name (registry.toml).")],
    root_dir: RootDir = Path("root"),
    root_key: Annotated[list[Path] | None, typer.Option("--root-key", help="Root public key file.")] = None,
    index_key: Annotated[
        list[Path] | None, typer.Option("--index-key", help="Index public key file.")
    ] = None,
    generate_keys: Annotated[
        Path | None, typer.Option("--generate-keys", help="Generate missing root/index keys into DIR.")
    ] = None,
    root_threshold: Annotated[int, typer.Option("--root-threshold")] = 1,
    index_threshold: Annotated[int, typer.Option("--index-threshold")] = 1,
    expires: Expires = None,
    unencrypted: Annotated[
        bool, typer.Option("--unencrypted", help="Do not encrypt generated keys.")
    ] = False,
    passphrase_env: PassphraseEnv = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Start a registry's trust: write root/1.root.json (unsigned: run `root sign` with each root key)."""
    from registry_tool.signing.keyfiles import load_public_key, read_passphrase
    from registry_tool.trust.editing import init_registry, parse_expiry

    needs_pass = generate_keys is not None and not unencrypted
    passphrase = read_passphrase(passphrase_env, confirm=True) if needs_pass else None
    path, generated = init_registry(
        root_dir,
        registry,
        root_keys=[load_public_key(p) for p in root_key or []],
        index_keys=[load_public_key(p) for p in index_key or []],
        generate_dir=generate_keys,
        passphrase=passphrase,
        root_threshold=root_threshold,
        index_threshold=index_threshold,
        expires=parse_expiry(expires or "365d", _now()),
    )
    _done(
        "root init",
        root_dir,
        fmt,
        written=str(path),
        generated=[str(g) for g in generated],
        kind="root-init",
        signed=False,
    )


def _edit(
    root_dir: Path, edit: Callable[[dict[str, Any]], None], expires: str | None, fmt: OutputFormat
) -> None:
    from registry_tool._cli import command_name
    from registry_tool.trust.editing import edit_root_dir, parse_expiry

    now = _now()
    path = edit_root_dir(root_dir, edit, expires=parse_expiry(expires, now) if expires else None, now=now)
    _done(command_name(), root_dir, fmt, written=str(path), kind="root", signed=False)


@root_app.command("add-maintainer")
@handle_errors
def root_add_maintainer(
    maintainer: Annotated[str, typer.Argument(help="Maintainer id, e.g. a GitHub login.")],
    pubkey: Annotated[
        list[str], typer.Option("--pubkey", help="The maintainer's public key (.pub or base64).")
    ],
    plugin: Annotated[list[str], typer.Option("--plugin", help="Plugin name or 'prefix*' pattern.")],
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Signatures required for these plugins.")
    ] = None,
    root_dir: RootDir = Path("root"),
    expires: Expires = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Delegate plugins to a maintainer's key(s) in a new root version."""
    from registry_tool.signing.keyfiles import load_public_key
    from registry_tool.trust.editing import add_maintainer

    _edit(
        root_dir,
        add_maintainer(maintainer, [load_public_key(p) for p in pubkey], plugin, threshold),
        expires,
        fmt,
    )


@root_app.command("pin-config")
@handle_errors
def root_pin_config(
    config: Annotated[Path, typer.Argument(help="The registry.toml to authorise (its sha256 is pinned).")],
    root_dir: RootDir = Path("root"),
    expires: Expires = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Pin registry.toml's sha256 in a new root version.

    Changing permissions or limits then needs the root threshold, like any root change.
    """
    from registry_tool.manifest import load_registry_config
    from registry_tool.trust.editing import pin_registry_config

    loaded = load_registry_config(config)  # never pin a file the tools cannot load
    _edit(root_dir, pin_registry_config(loaded.raw), expires, fmt)


@root_app.command("revoke")
@handle_errors
def root_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id to revoke (16 hex digits).")],
    keep_prior_releases: Annotated[
        bool,
        typer.Option(
            "--keep-prior-releases", help="Releases it signed before now stay valid (not compromised)."
        ),
    ] = False,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the key is revoked (shown by root verify and ci check).")
    ] = "",
    root_dir: RootDir = Path("root"),
    expires: Expires = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Revoke a key everywhere in a new root version."""
    from registry_tool.trust.editing import revoke

    _edit(
        root_dir,
        revoke(key_id.upper(), now=_now(), keep_prior_releases=keep_prior_releases, reason=reason),
        expires,
        fmt,
    )


@root_app.command("rotate-keys")
@handle_errors
def root_rotate_keys(
    role: Annotated[str, typer.Option("--role", help="root or index.")],
    add: Annotated[list[str] | None, typer.Option("--add", help="Public key to add.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Key id to remove.")] = None,
    threshold: Annotated[
        int | None,
        typer.Option("--threshold", help="Signatures the role requires from now on (default: kept)."),
    ] = None,
    root_dir: RootDir = Path("root"),
    expires: Expires = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Change the root or index keys and threshold in a new root version."""
    from registry_tool.signing.keyfiles import load_public_key
    from registry_tool.trust.editing import rotate_keys

    edit = rotate_keys(
        role,
        add=[load_public_key(p) for p in add or []],
        remove=[k.upper() for k in remove or []],
        threshold=threshold,
    )
    _edit(root_dir, edit, expires, fmt)


@root_app.command("renew")
@handle_errors
def root_renew(
    root_dir: RootDir = Path("root"), expires: Expires = "365d", fmt: FormatOption = OutputFormat.text
) -> None:
    """A new root version that only moves the expiry."""
    from registry_tool.trust.editing import renew

    _edit(root_dir, renew(), expires, fmt)


@root_app.command("sign")
@handle_errors
def root_sign(
    key: Annotated[Path, typer.Option("--key", "-k", help="A root secret key.")],
    root_dir: RootDir = Path("root"),
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Version to sign (default latest).")
    ] = None,
    passphrase_env: PassphraseEnv = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Add this root key's signature to a root version (k-of-n signers sign on their own machines).

    The version must say its file's version and be a valid next step of the chain; what it changes
    against the version before is printed (on stderr) before the key is loaded and it is signed.
    """
    from registry_tool.errors import printable
    from registry_tool.signing.keyfiles import load_secret_key
    from registry_tool.trust.editing import review_root_version, sign_root_dir

    review = review_root_version(root_dir, version=version, now=_now())
    against = f"version {review.version - 1}" if review.previous else "nothing (the first version)"
    typer.echo(
        f"{review.path.name}: registry {review.root.registry}, root version {review.version}, "
        f"root fingerprint {review.fingerprint}; changes against {against}:",
        err=True,
    )
    for line in review.changes:
        typer.echo(f"  {printable(line)}", err=True)
    secret = load_secret_key(key, passphrase_env)
    path = sign_root_dir(root_dir, secret, reviewed=review)
    _done(
        "root sign",
        root_dir,
        fmt,
        written=str(path),
        key_id=secret.key_id,
        version=review.version,
        root_fingerprint=review.fingerprint,
        changes=review.changes,
    )


@root_app.command("verify")
@handle_errors
def root_verify(
    root_dir: RootDir = Path("root"),
    trusted: Annotated[
        Path | None, typer.Option("--trusted", help="Pinned root to start from (default: version 1).")
    ] = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Walk and check the whole root chain."""
    from registry_tool.trust.check import verify_root_report

    emit(verify_root_report(root_dir, _now(), trusted=trusted), fmt)
