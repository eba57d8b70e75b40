"""Thresholds of distinct keys over exact bytes, failing closed.

One question: "do these signatures over these exact bytes come from enough distinct keys of this
role?".  The answer is the key ids that counted or a named ``CheckFailed``; a threshold below 1
refuses (``empty-policy``) rather than passing vacuously.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from registry_tool.errors import CheckFailed, Location
from registry_tool.signing.minisign import (
    LegacySignatureError,
    PublicKey,
    Signature,
    VerifiedSignature,
    verify_parsed,
)


class UnauthorizedSignerError(CheckFailed):
    """The signing key is unknown, or known but not delegated for what it signed."""

    code = "unauthorized-signer"


class RevokedKeyError(CheckFailed):
    """The signature is by a key the root revokes."""

    code = "revoked-key"


class ThresholdNotMetError(CheckFailed):
    """Fewer distinct authorised keys signed than the threshold requires."""

    code = "threshold-not-met"


class EmptyPolicyError(CheckFailed):
    """A policy with nothing to check: refuses rather than passing vacuously."""

    code = "empty-policy"


@dataclass(frozen=True)
class Candidate:
    """A key a signature may be checked against; ``refusal`` set means it verifies but does not count."""

    key: PublicKey
    refusal: CheckFailed | None = None


@dataclass(frozen=True)
class Role:
    """A set of keys and how many distinct ones must sign; ``refused`` keys are recognised but rejected."""

    name: str
    keys: tuple[PublicKey, ...]
    threshold: int
    refused: tuple[Candidate, ...] = ()

    def candidates(self) -> list[Candidate]:
        """The keys that count, then the recognised keys whose signatures are refused."""
        return [Candidate(k) for k in self.keys] + list(self.refused)


@dataclass
class Tally:
    """Distinct keys whose signature verified and counts, and why every other signature did not."""

    counted: dict[bytes, VerifiedSignature] = field(default_factory=dict)
    rejected: list[CheckFailed] = field(default_factory=list)
    # Every signature that verified, a key's second one too: rules on the trusted comment judge
    # each (two files by one key, one naming another release, are refused whichever comes first).
    verified: list[VerifiedSignature] = field(default_factory=list)

    @property
    def key_ids(self) -> set[str]:
        """The ids of the keys that counted."""
        return {v.key_id for v in self.counted.values()}


def _check_one(
    sig_text: str, data: bytes, candidates: Sequence[Candidate], what: str, *, anyone: bool = True
) -> VerifiedSignature:
    """One signature judged against the role's candidates; ``anyone``: the role has a key that counts."""
    sig = Signature.parse(sig_text)
    if sig.is_legacy:
        raise LegacySignatureError(
            "legacy 'Ed' (non-prehashed) signatures are never accepted for registry metadata",
            fix="re-sign with registry-tool or minisign 0.8+",
        )
    matching = [c for c in candidates if c.key.keynum == sig.keynum]
    if not matching and not anyone and what.startswith("maintainer of"):
        # No delegation at all: no key could sign, so "sign with a key of the maintainer" misleads.
        raise UnauthorizedSignerError(
            f"signature by key {sig.key_id}, but no key may sign for the plugin: the root delegates it "
            "to no maintainer (or revoked every key of its maintainers)",
            fix="delegate it first: `registry-tool root add-maintainer NAME --pubkey KEY.pub --plugin "
            "PLUGIN`, then `registry-tool root sign` (docs/trust.md)",
        )
    if not matching:
        raise UnauthorizedSignerError(
            f"signature by key {sig.key_id}, which is not a key of the {what}",
            fix=f"sign with a key of the {what}",
        )
    last: CheckFailed | None = None
    # The key id only selects candidates; each is tried against its full public key.
    for candidate in matching:
        try:
            verified = verify_parsed(candidate.key, data, sig)
        except CheckFailed as err:
            last = err
            continue
        if candidate.refusal is not None:
            raise candidate.refusal
        return verified
    assert last is not None
    raise last


def tally_signatures(data: bytes, sigs: Sequence[str], role: Role) -> Tally:
    """Check every signature; count each distinct public key (raw bytes) at most once."""
    tally = Tally()
    candidates = role.candidates()
    for index, sig_text in enumerate(sigs):
        try:
            verified = _check_one(sig_text, data, candidates, role.name, anyone=bool(role.keys))
        except CheckFailed as err:
            # A fresh error: refusals are shared objects, and the message names this signature.
            tally.rejected.append(
                type(err)(f"signature #{index + 1}: {err.what}", where=err.where, fix=err.fix)
            )
            continue
        tally.counted.setdefault(verified.public_key.raw, verified)
        tally.verified.append(verified)
    return tally


def require_threshold(tally: Tally, role: Role, subject: str, where: str | None = None) -> set[str]:
    """The counted key ids when ``tally`` meets ``role``'s threshold; else the named failure."""
    if role.threshold < 1:
        # A zero threshold would pass with no signature at all: never.
        raise EmptyPolicyError(
            f"the {role.name} has threshold {role.threshold}",
            where=where,
            fix="a threshold is at least 1",
        )
    if len(tally.counted) >= role.threshold:
        return tally.key_ids
    if not tally.counted and tally.rejected:
        first = tally.rejected[0]
        if where and first.where is None:
            first.where = Location(file=where)
        raise first
    reasons = "; ".join(e.what for e in tally.rejected)
    raise ThresholdNotMetError(
        f"{subject} is signed by {len(tally.counted)} distinct key(s) of the {role.name}, "
        f"{role.threshold} required" + (f" (rejected: {reasons})" if reasons else ""),
        where=where,
        fix=f"collect {role.threshold - len(tally.counted)} more signature(s) from other keys of the "
        f"{role.name} ({role.threshold} distinct keys in all)",
    )


def verify_threshold(
    role: Role,
    data: bytes,
    sigs: Sequence[str],
    *,
    subject: str = "the file",
    where: str | None = None,
    each: Callable[[VerifiedSignature], None] | None = None,
) -> set[str]:
    """Check that enough distinct keys of ``role`` signed ``data``.

    Args:
        role: The keys and the threshold.
        data: The exact signed bytes.
        sigs: The minisign signature files' text.
        subject: What was signed, for messages.
        where: The signed file's location, for messages.
        each: Called with every signature that verified (a key's second one too); raising from
            it refuses the file (for rules on the trusted comment).

    Returns:
        The key ids of the counted keys.

    Raises:
        CheckFailed: ``threshold-not-met``, ``empty-policy`` (a threshold below 1), or the first
            signature's own failure when none verified.
    """
    tally = tally_signatures(data, sigs, role)
    if each is not None:
        for verified in tally.verified:
            each(verified)
    return require_threshold(tally, role, subject, where)
