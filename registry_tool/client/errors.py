"""Named failures of the verify-on-install client.

Each error names the failure (and, where the failure is what an attack looks like,
the attack) so a person reading one paragraph knows what happened and what to do.
Transport and verification failures are ``CheckFailed`` (exit 1: the registry or
what it served is bad); missing trust, approval or files are ``UsageError`` (exit 2).
"""

from __future__ import annotations

# Re-exported: local files the client refuses (a link below the plugin directory, /dev/zero, ...).
from registry_tool._files import UnreadableFileError as UnreadableFileError
from registry_tool._files import UnsafePathError as UnsafePathError
from registry_tool.errors import CheckFailed, UsageError


class ClientError(CheckFailed):
    """Root of the client's check failures."""

    code = "client"


# --------------------------------------------------------------------------- transport


class FetchError(UsageError):
    """A file could not be downloaded."""

    code = "fetch-failed"


class NotFoundError(FetchError):
    """The server answered 404 (or the file:// path does not exist)."""

    code = "not-found"


class HttpStatusError(FetchError):
    code = "http-status"


class DownloadTooLargeError(FetchError):
    """More bytes than the signed metadata (or the fixed cap) allows: an endless-data attack."""

    code = "endless-data"


class SlowRetrievalError(FetchError):
    """The per-file deadline passed: a slow-retrieval attack or a dead server."""

    code = "slow-retrieval"


class RedirectRefusedError(FetchError):
    """A redirect to another origin or scheme."""

    code = "redirect-refused"


# --------------------------------------------------------------------------- trust


class RootNotPinnedError(UsageError):
    code = "root-not-pinned"


class RootFingerprintMismatchError(ClientError):
    code = "root-fingerprint"


class RollbackAttackError(ClientError):
    code = "rollback-attack"


class FreezeAttackError(ClientError):
    code = "freeze-attack"


class IndexSignatureError(ClientError):
    """registry.json is not signed by a threshold of the current root's index keys."""

    code = "index-signature"


class MalformedRegistryError(ClientError):
    code = "malformed-registry"


class WrongRegistryError(MalformedRegistryError):
    """The signed top document is for another registry than the trusted root."""

    code = "wrong-registry"


# --------------------------------------------------------------------------- releases


# Names and requirements are checked by the format module (one rule for every part).
from registry_tool.format.ranges import NoMatchingVersionError as NoMatchingVersionError  # noqa: E402
from registry_tool.format.ranges import RangeSyntaxError  # noqa: E402
from registry_tool.format.ranges import UnsafeNameError as UnsafeNameError  # noqa: E402

BadSpecError = RangeSyntaxError


class PluginNotFoundError(UsageError):
    code = "plugin-not-found"


class WrongSoftwareError(ClientError):
    code = "wrong-software"


class MixAndMatchError(ClientError):
    code = "mix-and-match"


class DigestMismatchError(ClientError):
    code = "digest-mismatch"


class UngrantedImportError(ClientError):
    """The module imports host functions the permissions its signed manifest declares do not cover."""

    code = "undeclared-import"


class DeadlineExceededError(FetchError):
    """The whole operation's transfers took longer than the overall deadline."""

    code = "slow-retrieval"


# --------------------------------------------------------------------------- installing


class ApprovalRequiredError(UsageError):
    """The plugin asks for permissions nobody approved."""

    code = "approval-required"


class PermissionEscalationError(ApprovalRequiredError):
    code = "permission-escalation"


class LockfileError(UsageError):
    code = "lockfile"


class LockfileMismatchError(ClientError):
    """The registry now serves different bytes than the lockfile recorded (--locked)."""

    code = "lockfile-mismatch"


class InstalledFileTamperedError(ClientError):
    code = "installed-tampered"


class NotInstalledError(UsageError):
    code = "not-installed"


class StateFileError(UsageError):
    """The client's trust state file cannot be read (wrong type, nested, too large, a link)."""

    code = "state-file"


class PluginRequiredError(UsageError):
    """Removing the plugin would break installed plugins that depend on it."""

    code = "plugin-required"
