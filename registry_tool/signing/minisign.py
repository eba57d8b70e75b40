"""The minisign file formats, exactly, on ``cryptography`` (Ed25519, scrypt) and hashlib (BLAKE2b).

Three text files, each a comment line followed by one base64 line (signatures have two pairs):

* public key: ``"Ed" || keynum(8) || pk(32)``
* secret key: ``"Ed" || kdf("Sc" or 0x0000) || "B2" || salt(32) || opslimit(u64 le) || memlimit(u64 le)
  || (keynum(8) || sk(64) || checksum(32)) XOR scrypt(passphrase, salt)``
* signature: ``"ED" || keynum(8) || Ed25519(BLAKE2b-512(data))`` then a trusted comment and a global
  signature ``Ed25519(sig(64) || trusted_comment)``.

Parsing is strict (docs/trust.md lists every rule): the signer's word is never taken for anything;
the key number only *selects* a candidate key, the signature is checked against the full key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from registry_tool.errors import CheckFailed, UsageError
from registry_tool.format.rules import MAX_SIGNATURE_BYTES

SIG_ALG = b"Ed"  # key algorithm, and the legacy (non-prehashed) signature algorithm
SIG_ALG_HASHED = b"ED"  # signature over BLAKE2b-512(data)
KDF_ALG = b"Sc"
KDF_NONE = b"\x00\x00"
CHK_ALG = b"B2"
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "
# minisign's limits: COMMENTMAXBYTES and TRUSTEDCOMMENTMAXBYTES include the prefix and NUL.
MAX_UNTRUSTED_COMMENT = 1024 - len(UNTRUSTED_PREFIX) - 1
MAX_TRUSTED_COMMENT = 8192 - len(TRUSTED_PREFIX) - 1
MAX_SIGNATURE_FILE = MAX_SIGNATURE_BYTES
# libsodium's crypto_pwhash_scryptsalsa208sha256 *_SENSITIVE limits, which minisign -G writes.
OPSLIMIT_SENSITIVE = 33_554_432
MEMLIMIT_SENSITIVE = 1_073_741_824
# Bounds on the scrypt parameters a key file may imply (N = 2^20, r = 8, p = 1 for minisign -G).
# Read size for streaming a file into BLAKE2b: large reads, one buffer, no copies.
_READ_CHUNK = 1 << 20
MAX_SCRYPT_N = 1 << 20  # 128 * r * N = 1 GiB
MAX_SCRYPT_P = 64  # 128 * r * p bytes are allocated too; real keys have p = 1
MAX_SCRYPT_WORK = 4 << 20  # N * p: four times minisign's default

# Ed25519 points that are not keys (libsodium, hence minisign, refuses them too): the field prime
# bounds a canonical y, and the eight small-order points have these y (order 1, 2, 4, 8; the order-8
# y solve y^2 = (sqrt(1 + d) - 1) / d).  OpenSSL does not refuse them: for the identity point,
# R = identity, S = 0 "verifies" every message, so anyone could sign as such a key.
_ED25519_P = 2**255 - 19
_ED25519_Y8 = 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
_SMALL_ORDER_Y = frozenset({0, 1, _ED25519_P - 1, _ED25519_Y8, _ED25519_P - _ED25519_Y8})

PUBLIC_KEY_LEN = 2 + 8 + 32
SECRET_KEY_LEN = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32
SIGNATURE_LEN = 2 + 8 + 64


class MalformedKeyError(CheckFailed):
    """A public or secret key file does not follow the minisign format."""

    code = "malformed-key"


class WrongPassphraseError(UsageError):
    """The passphrase does not decrypt the secret key (its checksum does not match)."""

    code = "wrong-passphrase"


class MalformedSignatureError(CheckFailed):
    """A signature file does not follow the minisign format."""

    code = "malformed-signature"


class LegacySignatureError(CheckFailed):
    """A legacy ``Ed`` (non-prehashed) signature where only ``ED`` is accepted."""

    code = "legacy-signature"


class KeyMismatchError(CheckFailed):
    """The signature names a different key number than the key it is checked against."""

    code = "key-mismatch"


class BadSignatureError(CheckFailed):
    """The signature (or the trusted-comment signature) does not verify: data or signature tampered."""

    code = "bad-signature"


def format_key_id(keynum: bytes) -> str:
    """Minisign prints the 8-byte key number as a little-endian u64 in 16 upper-case hex digits."""
    return keynum[::-1].hex().upper()


def parse_key_id(key_id: str) -> bytes:
    """The 8-byte key number of a key id as minisign prints it (16 hex digits); else a usage error."""
    text = key_id.strip()
    if len(text) != 16 or any(c not in "0123456789ABCDEFabcdef" for c in text):
        raise UsageError(
            f"'{key_id}' is not a key id",
            fix="a key id is 16 hexadecimal digits, as `registry-tool key show` prints it",
        )
    return bytes.fromhex(text)[::-1]


def _b64decode(line: str, expected_len: int, what: str, where: str | None, err: type[CheckFailed]) -> bytes:
    """Strict base64: standard alphabet, padding, no whitespace, canonical (re-encodes identically)."""
    try:
        raw = base64.b64decode(line.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise err(f"the {what} line is not valid base64", where=where, fix="restore the file") from None
    if base64.b64encode(raw).decode("ascii") != line:
        raise err(f"the {what} line is not canonical base64", where=where, fix="restore the file")
    if len(raw) != expected_len:
        raise err(
            f"the {what} decodes to {len(raw)} bytes, expected {expected_len}",
            where=where,
            fix="restore the file; it may be truncated or of another format",
        )
    return raw


def _split_lines(
    text: str | bytes, count: int, what: str, where: str | None, err: type[CheckFailed]
) -> list[str]:
    """Exactly ``count`` LF-terminated lines (the last LF optional); no CR, no blank or extra lines."""
    try:
        # str input may carry lone surrogates (a file read with errors="surrogateescape").
        text = text.decode("utf-8") if isinstance(text, bytes) else text.encode("utf-8").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise err(f"the {what} is not UTF-8 text", where=where, fix="restore the file") from None
    if "\r" in text:
        raise err(
            f"the {what} contains a carriage return (CRLF line ends)",
            where=where,
            fix="restore the file with LF line ends; with git, add `*.minisig -text` to .gitattributes",
        )
    if not text.strip():
        raise err(f"the {what} is empty", where=where, fix="restore the file (an empty one was truncated)")
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n")
    if len(lines) != count:
        raise err(
            f"the {what} has {len(lines)} lines, expected exactly {count}",
            where=where,
            fix="a minisign file has no blank lines and nothing after the last line; restore the file",
        )
    return lines


def _comment(line: str, prefix: str, limit: int, what: str, where: str | None, err: type[CheckFailed]) -> str:
    if not line.startswith(prefix):
        raise err(f"the {what} line does not start with '{prefix}'", where=where, fix="restore the file")
    comment = line[len(prefix) :]
    if len(comment.encode("utf-8")) > limit:
        raise err(
            f"the {what} is {len(comment.encode('utf-8'))} bytes long, at most {limit} are allowed",
            where=where,
            fix="use a shorter comment",
        )
    return comment


# --------------------------------------------------------------------------- public keys


@lru_cache(maxsize=1024)
def _ed25519_public(raw: bytes) -> Ed25519PublicKey:
    # Built once per key (not stored on PublicKey, which must stay picklable for build workers):
    # a root's few keys judge every release of a batch.
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class PublicKey:
    """A minisign public key: 8-byte key number and 32-byte Ed25519 key."""

    keynum: bytes
    raw: bytes
    comment: str = ""

    @property
    def key_id(self) -> str:
        """The key id as minisign prints it (16 upper-case hex digits)."""
        return format_key_id(self.keynum)

    @classmethod
    def parse(cls, text: str | bytes, *, where: str | None = None) -> PublicKey:
        """Parse a public key file (two lines) or the bare base64 line (as ``minisign -P`` takes)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedKeyError(
                    "the public key is not UTF-8 text", where=where, fix="give a minisign .pub file"
                ) from None
        comment = ""
        if text.startswith(UNTRUSTED_PREFIX):
            first, b64 = _split_lines(text, 2, "public key file", where, MalformedKeyError)
            comment = _comment(
                first, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT, "comment", where, MalformedKeyError
            )
        else:
            b64 = text[:-1] if text.endswith("\n") else text
        raw = _b64decode(b64, PUBLIC_KEY_LEN, "public key", where, MalformedKeyError)
        if raw[:2] != SIG_ALG:
            raise MalformedKeyError(
                f"unsupported key algorithm {raw[:2]!r}, expected 'Ed'",
                where=where,
                fix="use a minisign Ed25519 public key",
            )
        weakness = _weak_point(raw[10:])
        if weakness:
            raise MalformedKeyError(
                f"the public key is {weakness}",
                where=where,
                fix="this is not a usable Ed25519 key; use a real one",
            )
        return cls(keynum=raw[2:10], raw=raw[10:], comment=comment)

    def to_base64(self) -> str:
        """The key's base64 line, as in a minisign ``.pub`` file."""
        return base64.b64encode(SIG_ALG + self.keynum + self.raw).decode("ascii")

    def to_text(self) -> str:
        """The whole ``.pub`` file: untrusted comment line and base64 line."""
        comment = self.comment or f"minisign public key {self.key_id}"
        return f"{UNTRUSTED_PREFIX}{comment}\n{self.to_base64()}\n"

    def verify_raw(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``message``."""
        try:
            _ed25519_public(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def _weak_point(raw: bytes) -> str | None:
    """Why a 32-byte Ed25519 public key is unusable, or None (the sign bit is ignored, as libsodium does)."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _ED25519_P:
        return "not canonically encoded (the same point has another encoding)"
    if y in _SMALL_ORDER_Y:
        return "a point of small order (anyone could forge its signatures)"
    return None


# --------------------------------------------------------------------------- secret keys


def scrypt_params(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """Scrypt (N, r, p) from a key file's opslimit/memlimit, as libsodium's ``pickparams``."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        n_log2 = _n_log2(opslimit // (r * 4))
    else:
        n_log2 = _n_log2(memlimit // (r * 128))
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max_rp // r
    return 1 << n_log2, r, max(p, 1)


def _n_log2(max_n: int) -> int:
    """The smallest n_log2 >= 1 with 2^n_log2 > max_n // 2, at most 63 (libsodium's loop in both branches)."""
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    return n_log2


def check_kdf_cost(opslimit: int, memlimit: int, *, where: str | None = None) -> None:
    """Refuse limits whose derived (N, r, p) would exhaust memory or CPU (a hostile key file).

    The stored memlimit alone says little: a tiny memlimit with a large opslimit gives N = 2 and a
    huge p, and scrypt allocates 128 * r * p bytes for p (2 GiB for memlimit 0, opslimit 2^27).
    """
    n, r, p = scrypt_params(opslimit, memlimit)
    if (
        memlimit > MEMLIMIT_SENSITIVE
        or opslimit > OPSLIMIT_SENSITIVE * 4
        or n > MAX_SCRYPT_N
        or p > MAX_SCRYPT_P
        or n * p > MAX_SCRYPT_WORK
    ):
        raise MalformedKeyError(
            f"the key's scrypt limits (ops {opslimit}, mem {memlimit}; N={n}, r={r}, p={p}) exceed "
            "what minisign writes",
            where=where,
            fix="re-create the key with `registry-tool key generate` or `minisign -G`",
        )


def _kdf(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    check_kdf_cost(opslimit, memlimit)
    n, r, p = scrypt_params(opslimit, memlimit)
    return Scrypt(salt=salt, length=104, n=n, r=r, p=p).derive(passphrase)


def _checksum(keynum: bytes, sk: bytes) -> bytes:
    return hashlib.blake2b(SIG_ALG + keynum + sk, digest_size=32).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class SecretKey:
    """A minisign secret key (decrypted in memory)."""

    keynum: bytes
    seed: bytes = field(repr=False)  # never in logs or tracebacks

    @classmethod
    def generate(cls) -> SecretKey:
        """A fresh key: random key number and Ed25519 seed from the OS."""
        return cls(keynum=secrets.token_bytes(8), seed=secrets.token_bytes(32))

    @classmethod
    def from_seed(cls, seed: bytes, keynum: bytes) -> SecretKey:
        """Deterministic keys, for test vectors only."""
        if len(seed) != 32 or len(keynum) != 8:
            raise ValueError("seed is 32 bytes and keynum 8 bytes")
        return cls(keynum=keynum, seed=seed)

    def _ed25519(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        raw = (
            self._ed25519()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return PublicKey(keynum=self.keynum, raw=raw)

    @property
    def key_id(self) -> str:
        """The key id as minisign prints it (16 upper-case hex digits)."""
        return format_key_id(self.keynum)

    def sign_raw(self, message: bytes) -> bytes:
        """The Ed25519 signature over ``message``."""
        return self._ed25519().sign(message)

    @staticmethod
    def is_secret_key_file(data: bytes | str) -> bool:
        """Whether ``data`` is a minisign secret key file, whatever its comment says."""
        try:
            _decode_secret_key_file(data, None)
        except MalformedKeyError:
            return False
        return True

    @staticmethod
    def is_encrypted(data: bytes | str, *, where: str | None = None) -> bool:
        """Whether a secret key file needs a passphrase (without deriving anything)."""
        raw = _decode_secret_key_file(data, where)
        return raw[2:4] == KDF_ALG

    @classmethod
    def load(cls, data: bytes | str, passphrase: bytes | None, *, where: str | None = None) -> SecretKey:
        """Decode a minisign secret key file; ``passphrase`` is required iff the key is encrypted."""
        raw = _decode_secret_key_file(data, where)
        kdf = raw[2:4]
        salt, opslimit, memlimit = (
            raw[6:38],
            int.from_bytes(raw[38:46], "little"),
            int.from_bytes(raw[46:54], "little"),
        )
        blob = raw[54:158]
        if kdf == KDF_ALG:
            if passphrase is None:
                raise UsageError(
                    "the secret key is encrypted and no passphrase was given",
                    where=where,
                    fix="type it at the prompt or name an environment variable with --passphrase-env",
                )
            # A hostile key file must not make us allocate unbounded memory or loop for ages.
            check_kdf_cost(opslimit, memlimit, where=where)
            blob = _xor(blob, _kdf(passphrase, salt, opslimit, memlimit))
        elif kdf != KDF_NONE:
            raise MalformedKeyError(
                f"unsupported key derivation {kdf!r}", where=where, fix="use a minisign key"
            )
        keynum, sk, chk = blob[:8], blob[8:72], blob[72:104]
        # minisign writes an all-zero checksum for unencrypted keys; the embedded public key
        # (second half of sk) is checked against the seed below in every case anyway.
        expected = _checksum(keynum, sk)
        if not hmac.compare_digest(chk, expected) and not (kdf == KDF_NONE and chk == bytes(32)):
            if kdf == KDF_ALG:
                raise WrongPassphraseError("wrong passphrase for the secret key", where=where, fix="retry")
            raise MalformedKeyError(
                "the secret key checksum does not match", where=where, fix="restore the file"
            )
        key = cls(keynum=keynum, seed=sk[:32])
        if key.public_key.raw != sk[32:]:
            raise MalformedKeyError(
                "the secret key is inconsistent (public half)", where=where, fix="restore the file"
            )
        return key

    def dump(
        self,
        passphrase: bytes | None,
        *,
        opslimit: int = OPSLIMIT_SENSITIVE,
        memlimit: int = MEMLIMIT_SENSITIVE,
        comment: str | None = None,
        salt: bytes | None = None,
    ) -> bytes:
        """The secret key file; encrypted with scrypt unless ``passphrase`` is None.

        Lower ``opslimit``/``memlimit`` and a fixed ``salt`` are for tests and test vectors only;
        minisign reads the limits from the file.
        """
        sk = self.seed + self.public_key.raw
        blob = self.keynum + sk + _checksum(self.keynum, sk)
        if passphrase is None:
            header = SIG_ALG + KDF_NONE + CHK_ALG + bytes(32 + 8 + 8)
            default_comment = "minisign unencrypted secret key"
        else:
            salt = salt if salt is not None else secrets.token_bytes(32)
            blob = _xor(blob, _kdf(passphrase, salt, opslimit, memlimit))
            header = (
                SIG_ALG
                + KDF_ALG
                + CHK_ALG
                + salt
                + opslimit.to_bytes(8, "little")
                + memlimit.to_bytes(8, "little")
            )
            default_comment = "minisign encrypted secret key"
        b64 = base64.b64encode(header + blob).decode("ascii")
        return f"{UNTRUSTED_PREFIX}{comment or default_comment}\n{b64}\n".encode()


def _decode_secret_key_file(data: bytes | str, where: str | None) -> bytes:
    first, b64 = _split_lines(data, 2, "secret key file", where, MalformedKeyError)
    _comment(first, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT, "comment", where, MalformedKeyError)
    raw = _b64decode(b64, SECRET_KEY_LEN, "secret key", where, MalformedKeyError)
    if raw[:2] != SIG_ALG or raw[4:6] != CHK_ALG:
        raise MalformedKeyError(
            f"unsupported secret key algorithms {raw[:2]!r}/{raw[4:6]!r}",
            where=where,
            fix="use a minisign key",
        )
    return raw


# --------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signature:
    """A parsed signature file. Nothing in it is trusted until ``verify_bytes`` says so."""

    algorithm: bytes
    keynum: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str = ""

    @property
    def key_id(self) -> str:
        """The id of the key that claims to have made the signature (unverified)."""
        return format_key_id(self.keynum)

    @property
    def is_legacy(self) -> bool:
        """Whether this is a legacy ``Ed`` signature over the raw message (not prehashed)."""
        return self.algorithm == SIG_ALG

    @classmethod
    def parse(cls, text: str | bytes, *, where: str | None = None) -> Signature:
        """Parse a minisign signature file (four lines, size-capped); raises ``malformed-signature``."""
        err = MalformedSignatureError
        if len(text) > MAX_SIGNATURE_FILE:
            raise err(
                f"the signature file is larger than {MAX_SIGNATURE_FILE} bytes",
                where=where,
                fix="this is not a minisign signature; restore the file",
            )
        l1, l2, l3, l4 = _split_lines(text, 4, "signature file", where, err)
        untrusted = _comment(l1, UNTRUSTED_PREFIX, MAX_UNTRUSTED_COMMENT, "untrusted comment", where, err)
        raw = _b64decode(l2, SIGNATURE_LEN, "signature", where, err)
        trusted = _comment(l3, TRUSTED_PREFIX, MAX_TRUSTED_COMMENT, "trusted comment", where, err)
        global_sig = _b64decode(l4, 64, "trusted comment signature", where, err)
        if raw[:2] not in (SIG_ALG, SIG_ALG_HASHED):
            raise err(
                f"unsupported signature algorithm {raw[:2]!r}, expected 'ED'",
                where=where,
                fix="sign with minisign or registry-tool",
            )
        return cls(raw[:2], raw[2:10], raw[10:], trusted, global_sig, untrusted)

    def to_text(self) -> str:
        """The signature file's text, as minisign writes it."""
        sig = base64.b64encode(self.algorithm + self.keynum + self.signature).decode("ascii")
        glob = base64.b64encode(self.global_signature).decode("ascii")
        return (
            f"{UNTRUSTED_PREFIX}{self.untrusted_comment}\n{sig}\n"
            f"{TRUSTED_PREFIX}{self.trusted_comment}\n{glob}\n"
        )


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: the signing key and its (now trusted) comment."""

    key_id: str
    trusted_comment: str
    public_key: PublicKey


def _check_comment_text(comment: str, what: str, limit: int) -> None:
    if "\n" in comment or "\r" in comment:
        raise UsageError(f"the {what} may not contain line breaks", fix="use a single-line comment")
    if len(comment.encode("utf-8")) > limit:
        raise UsageError(f"the {what} is longer than {limit} bytes", fix="use a shorter comment")


def sign_bytes(
    secret: SecretKey,
    data: bytes,
    *,
    trusted_comment: str,
    untrusted_comment: str = "signature from registry-tool secret key",
) -> str:
    """A minisign signature file (prehashed ``ED``) over ``data``."""
    _check_comment_text(trusted_comment, "trusted comment", MAX_TRUSTED_COMMENT)
    _check_comment_text(untrusted_comment, "untrusted comment", MAX_UNTRUSTED_COMMENT)
    sig = secret.sign_raw(hashlib.blake2b(data, digest_size=64).digest())
    global_sig = secret.sign_raw(sig + trusted_comment.encode("utf-8"))
    return Signature(
        SIG_ALG_HASHED, secret.keynum, sig, trusted_comment, global_sig, untrusted_comment
    ).to_text()


def verify_parsed(
    public_key: PublicKey,
    data: bytes,
    sig: Signature,
    *,
    allow_legacy: bool = False,
    where: str | None = None,
) -> VerifiedSignature:
    """Check a parsed signature against one full public key (pure)."""
    if sig.is_legacy and not allow_legacy:
        raise LegacySignatureError(
            "legacy 'Ed' (non-prehashed) signatures are not accepted",
            where=where,
            fix="re-sign with a current minisign (0.8+) or registry-tool, which write 'ED' signatures",
        )
    _check_signer(public_key, sig, where)
    return _verify_message(
        public_key, data if sig.is_legacy else hashlib.blake2b(data, digest_size=64).digest(), sig, where
    )


def prehash_file(path: str | os.PathLike[str]) -> bytes:
    """BLAKE2b-512 of a file, as minisign prehashes it, streamed through one reused buffer.

    No copy of the file is ever held: a 32 MiB read into ``bytes`` plus hashing it cost 1.5x
    ``minisign -V``; reading into one buffer and hashing views of it is what minisign does.
    """
    digest = hashlib.blake2b(digest_size=64)
    buffer = bytearray(_READ_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.digest()


def verify_file(
    public_key: PublicKey,
    path: str | os.PathLike[str],
    sig_text: str | bytes,
    *,
    allow_legacy: bool = False,
    where: str | None = None,
) -> VerifiedSignature:
    """``minisign -V``: verify the file at ``path``, hashed as it streams from the disk."""
    sig = Signature.parse(sig_text, where=where)
    if sig.is_legacy:
        with open(path, "rb") as f:
            return verify_parsed(public_key, f.read(), sig, allow_legacy=allow_legacy, where=where)
    _check_signer(public_key, sig, where)
    return _verify_message(public_key, prehash_file(path), sig, where)


def _check_signer(public_key: PublicKey, sig: Signature, where: str | None) -> None:
    if not hmac.compare_digest(sig.keynum, public_key.keynum):
        raise KeyMismatchError(
            f"the signature was made by key {sig.key_id}, not by key {public_key.key_id}",
            where=where,
            fix="verify with the signer's public key",
        )


def _verify_message(
    public_key: PublicKey, message: bytes, sig: Signature, where: str | None
) -> VerifiedSignature:
    """The two Ed25519 checks over the (prehashed) message and the trusted comment."""
    if not public_key.verify_raw(sig.signature, message):
        raise BadSignatureError(
            f"signature by key {sig.key_id} does not match the data",
            where=where,
            fix="the file or its signature was modified; re-sign the exact bytes that are shipped",
        )
    if not public_key.verify_raw(sig.global_signature, sig.signature + sig.trusted_comment.encode("utf-8")):
        raise BadSignatureError(
            f"the trusted comment signed by key {sig.key_id} does not verify",
            where=where,
            fix="the trusted comment was modified; re-sign the file",
        )
    return VerifiedSignature(public_key.key_id, sig.trusted_comment, public_key)


def verify_bytes(
    public_key: PublicKey,
    data: bytes,
    sig_text: str | bytes,
    *,
    allow_legacy: bool = False,
    where: str | None = None,
) -> VerifiedSignature:
    """Verify a signature file over ``data`` with ``public_key`` (pure; raises a named ``CheckFailed``)."""
    return verify_parsed(
        public_key, data, Signature.parse(sig_text, where=where), allow_legacy=allow_legacy, where=where
    )
