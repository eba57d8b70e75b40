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
    """A file could not be downloaded: the network or the server failed (exit 2, not an attack).

    What a host sends that breaks a bound the client enforces (more bytes than signed, a body
    trickled past the per-file deadline) is an attack on the checked thing: those errors are
    ``ClientError``s as well (exit 1), as the conformance suite's error classes say.
    """

    code = "fetch-failed"


class NotFoundError(FetchError):
    """The server answered 404 (or the file:// path does not exist)."""

    code = "not-found"


class HttpStatusError(FetchError):
    """The server answered another HTTP error status than 404."""

    code = "http-status"


class DownloadTooLargeError(ClientError, FetchError):
    """More bytes than the signed metadata (or the fixed cap) allows: an endless-data attack."""

    code = "endless-data"


class SlowRetrievalError(ClientError, FetchError):
    """The per-file deadline passed: a slow-retrieval attack or a dead server."""

    code = "slow-retrieval"


class RedirectRefusedError(FetchError):
    """A redirect to another origin or scheme."""

    code = "redirect-refused"


# --------------------------------------------------------------------------- trust


class RootNotPinnedError(UsageError):
    """No root is pinned for the registry URL yet (run ``client trust`` first)."""

    code = "root-not-pinned"


class RootFingerprintMismatchError(ClientError):
    """The root's sha256 is not the fingerprint obtained out of band."""

    code = "root-fingerprint"


class RollbackAttackError(ClientError):
    """registry.json's version is lower than the highest this client has seen."""

    code = "rollback-attack"


class FreezeAttackError(ClientError):
    """registry.json expired at the client's clock (a freeze attack or a stale mirror)."""

    code = "freeze-attack"


class IndexSignatureError(ClientError):
    """registry.json is not signed by a threshold of the current root's index keys."""

    code = "index-signature"


class MalformedRegistryError(ClientError):
    """The registry served a document or file that cannot be read as its format says."""

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
    """The registry holds no plugin of that name."""

    code = "plugin-not-found"


class WrongSoftwareError(ClientError):
    """A release's signed manifest names another plugin or version than the one resolved."""

    code = "wrong-software"


class MixAndMatchError(ClientError):
    """Files or entries of different releases combined (or an entry disagreeing with its manifest)."""

    code = "mix-and-match"


class RepublishedReleaseError(ClientError):
    """An installed version's registry entry now pins other bytes: a version is one set of bytes."""

    code = "republished"


class DroppedReleaseError(ClientError):
    """The registry no longer lists an installed version whose signatures still count.

    Moving it down would be a rollback: a build never drops such a release; the index key alone did.
    """

    code = "dropped-release"


class WithdrawnReleaseError(ClientError):
    """An installed version is no longer published and its recorded requirement matches no release."""

    code = "withdrawn-release"


class DigestMismatchError(ClientError):
    """Fetched bytes do not match the size and sha256 their signed pin names."""

    code = "digest-mismatch"


class UngrantedImportError(ClientError):
    """The module imports host functions the permissions its signed manifest declares do not cover."""

    code = "undeclared-import"


class DeadlineExceededError(ClientError, FetchError):
    """The whole operation's transfers took longer than the overall deadline (slow retrieval: exit 1)."""

    code = "slow-retrieval"


# --------------------------------------------------------------------------- installing


class ApprovalRequiredError(UsageError):
    """The plugin asks for permissions nobody approved."""

    code = "approval-required"


class PermissionEscalationError(ApprovalRequiredError):
    """An update's new version asks for permissions beyond those granted."""

    code = "permission-escalation"


class LockfileError(UsageError):
    """The lockfile cannot be read: wrong version, type, member, path or nesting."""

    code = "lockfile"


class LockfileMismatchError(ClientError):
    """The registry now serves different bytes than the lockfile recorded (--locked)."""

    code = "lockfile-mismatch"


class InstalledFileTamperedError(ClientError):
    """An installed file differs from its lockfile entry or its stored signature."""

    code = "installed-tampered"


class NotInstalledError(UsageError):
    """The plugin is not in the lockfile."""

    code = "not-installed"


class StateFileError(UsageError):
    """The client's trust state file cannot be read (wrong type, nested, too large, a link)."""

    code = "state-file"


class PluginRequiredError(UsageError):
    """Removing the plugin would break installed plugins that depend on it."""

    code = "plugin-required"
