"""Key files on disk and passphrases: the I/O edge of signing (the formats are in minisign.py)."""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from registry_tool._files import KiB, read_bounded, unreachable
from registry_tool.errors import UsageError
from registry_tool.signing.minisign import (
    MEMLIMIT_SENSITIVE,
    OPSLIMIT_SENSITIVE,
    PublicKey,
    SecretKey,
)

# minisign key files are two short lines (an untrusted comment and base64); the cap only keeps
# /dev/zero or a huge file given by mistake from being read whole.
MAX_KEY_FILE = 64 * KiB


class PassphraseError(UsageError):
    """No usable passphrase: the named environment variable is unset or empty, or the prompts differ."""

    code = "passphrase"


def has_terminal() -> bool:
    """Whether this process has a controlling terminal to prompt on (what getpass opens first)."""
    if sys.platform == "win32":  # getpass prompts on the console there
        return sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def read_passphrase(env_var: str | None, *, confirm: bool = False, prompt: str = "Passphrase: ") -> bytes:
    """From the environment variable named ``env_var``, else an interactive prompt; never from argv."""
    if env_var:
        value = os.environ.get(env_var)
        if value is None:
            raise PassphraseError(
                f"environment variable {env_var} is not set",
                fix=f"export {env_var}=... (or omit --passphrase-env to be prompted)",
            )
        if not value:
            raise PassphraseError(
                f"environment variable {env_var} is empty", fix="set a non-empty passphrase"
            )
        return value.encode("utf-8")
    # Only `key generate` has --unencrypted (a key that is loaded is encrypted or it is not).
    throwaway = " (or --unencrypted for a throwaway key)" if confirm else ""
    if not has_terminal():
        # getpass would fall back to standard input: a CI step whose standard input stays open
        # hung until its timeout, and a piped passphrase was echoed back with a warning.
        raise PassphraseError(
            "no passphrase: there is no terminal to ask on",
            fix=f"pass it in an environment variable: --passphrase-env VAR{throwaway}",
        )
    try:
        first = getpass.getpass(prompt)
        again = getpass.getpass("Passphrase (again): ") if confirm and first else first
    except EOFError:
        # End of input at the prompt (Ctrl-D).
        raise PassphraseError(
            "no passphrase: the prompt's input ended",
            fix=f"enter one, or pass it in an environment variable: --passphrase-env VAR{throwaway}",
        ) from None
    if not first:
        raise PassphraseError(
            "empty passphrase",
            fix="enter a passphrase" + (", or use --unencrypted deliberately" if confirm else ""),
        )
    if again != first:
        raise PassphraseError("the passphrases do not match", fix="try again")
    return first.encode("utf-8")


@dataclass(frozen=True)
class KeyPairFiles:
    """The two files ``key generate`` wrote and the new key's id."""

    public: Path
    secret: Path
    key_id: str


def key_paths(name: Path) -> tuple[Path, Path]:
    """The ``NAME.pub`` and ``NAME.key`` paths of the key pair ``name``."""
    return name.with_name(name.name + ".pub"), name.with_name(name.name + ".key")


def generate_key_files(
    name: Path,
    passphrase: bytes | None,
    *,
    force: bool = False,
    opslimit: int = OPSLIMIT_SENSITIVE,
    memlimit: int = MEMLIMIT_SENSITIVE,
) -> KeyPairFiles:
    """Write ``NAME.pub`` and ``NAME.key`` (mode 0600); ``passphrase=None`` writes an unencrypted key."""
    pub_path, key_path = key_paths(name)
    if not force:
        for path in (pub_path, key_path):
            if path.exists():
                raise UsageError(f"{path} already exists", fix="choose another name or pass --force")
    secret = SecretKey.generate()
    data = secret.dump(passphrase, opslimit=opslimit, memlimit=memlimit)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    if force and key_path.exists():
        key_path.unlink()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    pub_path.write_text(secret.public_key.to_text(), encoding="utf-8")
    return KeyPairFiles(pub_path, key_path, secret.key_id)


def load_public_key(spec: str | Path) -> PublicKey:
    """A public key from a file path, or the bare base64 key (as ``minisign -P`` takes it)."""
    text = str(spec)
    if text.startswith("RW") and len(text) == 56 and not Path(text).exists():
        return PublicKey.parse(text, where="--pubkey")
    path = Path(spec)
    if (why := unreachable(path)) is not None:
        raise UsageError(f"public key file {path} {why}", fix="give a .pub file or the base64 key")
    data = read_bounded(path, MAX_KEY_FILE, "public key file")
    if SecretKey.is_secret_key_file(data):
        raise UsageError(f"{path} is a secret key file", fix="give the .pub file")
    return PublicKey.parse(data, where=str(path))


def load_secret_key(path: Path, passphrase_env: str | None = None) -> SecretKey:
    """Load a secret key file, asking for the passphrase only if the key is encrypted."""
    if (why := unreachable(path)) is not None:
        raise UsageError(f"secret key file {path} {why}", fix="create one with `registry-tool key generate`")
    data = read_bounded(path, MAX_KEY_FILE, "secret key file")
    encrypted = SecretKey.is_encrypted(data, where=str(path))
    passphrase = read_passphrase(passphrase_env) if encrypted else None
    return SecretKey.load(data, passphrase, where=str(path))


def describe_key(path_or_key: str | Path, passphrase_env: str | None = None) -> PublicKey:
    """The public key of a .pub file, a base64 key, or a .key file.

    Encrypted secret keys need the passphrase, because minisign encrypts the key number too.
    """
    path = Path(path_or_key)
    # A secret key by its content: `init` writes "<name> index key" as the comment, minisign -C
    # keeps any comment.
    if path.exists() and SecretKey.is_secret_key_file(read_bounded(path, MAX_KEY_FILE, "key file")):
        return load_secret_key(path, passphrase_env).public_key
    return load_public_key(path_or_key)
