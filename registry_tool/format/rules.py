"""The on-disk contract's small rules: names, versions, key ids, file names, times, size caps.

Every part of registry-tool (build, client, ci, trust, signing) imports these instead of writing
its own expression.  Every pattern is applied with ``fullmatch`` through the ``is_*`` helpers:
with ``re.match``/``search`` and ``$``, a name ending in a newline passes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

KiB = 1024
MiB = 1024 * KiB

FORMAT_VERSION = 2

# ---------------------------------------------------------------- file names of the site and index

REGISTRY_JSON = "registry.json"  # the top document
MANIFEST = "plugin.toml"
YANK = "yank.toml"
SIG_SUFFIX = ".minisig"
META_DIR = "meta"
ROOT_DIR = "root"
PLUGINS_DIR = "plugins"

# ---------------------------------------------------------------- size caps (bytes)

MAX_TOP_BYTES = 64 * KiB  # registry.json, refused before parsing
MAX_ROOT_BYTES = 1 * MiB  # one root/<N>.root.json
# A manifest is a few KiB; a cap keeps a hostile PR from feeding megabytes to the TOML parser.
MAX_MANIFEST_BYTES = 256 * KiB
MAX_SIGNATURE_BYTES = 16 * KiB  # one .minisig file (minisign allows an 8174-byte trusted comment)
# A metadata document below the top is bounded by its signed pin; this is the ceiling a pin may
# name, so a forged pin cannot ask a client to accept an arbitrarily large download.
MAX_META_BYTES = 64 * MiB
MAX_TREE_DEPTH = 64  # one hex digit per level of a 64-digit key
# A test's input_file or expect_file: smoke reads it into memory and hands it to a worker per test,
# so a file of GiBs (a link to /dev/zero, or 1 GiB of zeros git stores in 5 MB) would be read
# whole by the check a pull request runs.  Test data is an example, not a corpus.
MAX_TEST_FILE_BYTES = 4 * MiB
#: The most a module is read for signing or a smoke run: above any registry's module_size (each
#: command checks the registry's own first where it knows it).
MAX_MODULE_BYTES = 256 * MiB
# Characters of a yank reason: the plugin document schema caps it (schemas/registry-plugin.schema.json;
# homepage and repository are capped by plugin.toml's schema): no build publishes what it forbids.
MAX_YANK_REASON = 4096
LEAF_MAX = 64  # a tree node holding more plugins than this is a branch

# ---------------------------------------------------------------- patterns (always fullmatch)

PLUGIN_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{1,63}")
# Strict semver 2.0 (semver.org's recommended expression), build metadata allowed by the pattern;
# ``is_version`` refuses '+' (ignored by precedence, so two 'different' versions could collide).
# [0-9], not \d: Python's \d also matches other scripts' digits ("1\u0661.0.0"), which semver
# libraries and the Go and Rust verifiers do not read as numbers.
SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
FILE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,255}")
KEY_ID_RE = re.compile(r"[0-9A-F]{16}")
PERMISSION_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
ROOT_FILE_RE = re.compile(r"([1-9][0-9]{0,8})\.root\.json")
ROOT_SIGNATURE_RE = re.compile(r"([1-9][0-9]{0,8})\.root\.json(?:\.([0-9A-F]{16}))?\.minisig")
_KEYED_SUFFIX_RE = re.compile(r"\.([0-9A-F]{16})\.minisig")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def is_plugin_name(name: str) -> bool:
    """Whether ``name`` is a plugin name (``^[a-z][a-z0-9_-]{1,63}$``), matched in full."""
    return PLUGIN_NAME_RE.fullmatch(name) is not None


#: The largest MAJOR, MINOR or PATCH: the Go and Rust verifiers read them as unsigned 64-bit integers.
VERSION_NUMBER_MAX = 2**64 - 1


def is_version(version: str) -> bool:
    """Strict semver 2.0 without build metadata, matched in full, MAJOR.MINOR.PATCH each < 2^64."""
    if SEMVER_RE.fullmatch(version) is None or "+" in version:
        return False
    # A number above 2^64 - 1 has 20 digits or more: a shorter string cannot hold one.
    # A part longer than 20 digits is above it too; int() of one over 4,300 digits raises ValueError.
    return len(version) < 20 or all(
        len(part) <= 20 and int(part) <= VERSION_NUMBER_MAX for part in version.split("-", 1)[0].split(".")
    )


def is_file_name(name: str) -> bool:
    """A plain file name of a release folder: no separator, not ``.`` or ``..``."""
    return FILE_NAME_RE.fullmatch(name) is not None and name not in (".", "..")


def is_key_id(key_id: str) -> bool:
    """Whether ``key_id`` is a key id: 16 upper-case hex digits."""
    return KEY_ID_RE.fullmatch(key_id) is not None


def is_permission(name: str) -> bool:
    """Whether ``name`` is a permission name of the registry's vocabulary syntax."""
    return PERMISSION_RE.fullmatch(name) is not None


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 digest: 64 lower-case hex digits."""
    return SHA256_RE.fullmatch(text) is not None


def root_file_version(name: str) -> int | None:
    """N for ``<N>.root.json``, else None."""
    m = ROOT_FILE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def is_root_signature(name: str) -> bool:
    """``<N>.root.json.minisig`` or ``<N>.root.json.<KEYID>.minisig``."""
    return ROOT_SIGNATURE_RE.fullmatch(name) is not None


def root_number(name: str) -> int | None:
    """N for ``<N>.root.json`` and for its signatures, else None (not a root folder file)."""
    m = ROOT_FILE_RE.fullmatch(name) or ROOT_SIGNATURE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def is_root_file(name: str) -> bool:
    """A file that belongs in a root folder: a root version or one of its signatures."""
    return root_number(name) is not None


def is_signature_of(entry: str, signed_name: str) -> bool:
    """``entry`` is ``<signed_name>.minisig`` or ``<signed_name>.<KEYID>.minisig``."""
    if not entry.startswith(signed_name):
        return False
    rest = entry[len(signed_name) :]
    return rest == SIG_SUFFIX or _KEYED_SUFFIX_RE.fullmatch(rest) is not None


def signature_key_id(entry: str, signed_name: str) -> str | None:
    """The KEYID of ``<signed_name>.<KEYID>.minisig``; None for the plain name or another file."""
    if not entry.startswith(signed_name):
        return None
    m = _KEYED_SUFFIX_RE.fullmatch(entry[len(signed_name) :])
    return m.group(1) if m else None


def is_reserved_name(name: str) -> bool:
    """plugin.toml, yank.toml or a signature name of either: a release's own metadata files.

    No module or test file of a release may take such a name: it would be published (and
    installed) as a signature nothing verifies, or block a later yank.  Compared in lower case: on
    a case-insensitive file system (macOS, Windows) PLUGIN.TOML is plugin.toml.  Only names directly
    in the release folder count (``sub/plugin.toml`` is none of them).
    """
    parts = [part for part in name.split("/") if part not in ("", ".")]  # ./plugin.toml is plugin.toml
    if len(parts) != 1:
        return False
    folded = parts[0].lower()
    if folded in (MANIFEST, YANK):
        return True
    return folded.endswith(SIG_SUFFIX) and folded.startswith((f"{MANIFEST}.", f"{YANK}."))


def is_yank_file(name: str) -> bool:
    """What a yank may add to a published release: yank.toml and its signatures."""
    return name == YANK or is_signature_of(name, YANK)


def signature_names(signed_name: str, key_ids: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """The names a verifier fetches for ``signed_name``: plain first, then per key id (sorted)."""
    return [f"{signed_name}{SIG_SUFFIX}", *(f"{signed_name}.{k}{SIG_SUFFIX}" for k in sorted(set(key_ids)))]


def release_path(name: str, version: str, filename: str) -> str:
    """The site-relative path of a release file: ``plugins/<name>/<version>/<file>``."""
    return f"{PLUGINS_DIR}/{name}/{version}/{filename}"


def meta_path(sha256: str) -> str:
    """Where a content-addressed metadata document lives: derived from its digest only."""
    return f"{META_DIR}/{sha256[:2]}/{sha256}.json"


# ---------------------------------------------------------------- time


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC, second precision, ``Z`` suffix: the project's one time format."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time_strict(text: object) -> datetime | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` exactly (two-digit fields, no fraction, no offset), else None.

    ``strptime`` alone accepts ``2026-1-5T1:2:3Z``; the pattern pins the one spelling.
    """
    if not isinstance(text, str) or TIME_RE.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:  # 2026-02-30 and friends
        return None
