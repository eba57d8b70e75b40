"""What a root version changes against the one before: the one summary every command shows.

``root sign`` prints it before it signs, ``root verify`` shows it for the newest step, and
``ci check`` puts it in the pull request's ``root-change`` warning: the same lines everywhere, so
what a root key holder reviews is what the check reported.  Keys are shown with their public key
(what a ``.pub`` file and ``registry-tool key show`` print), never by key id alone: a key id is
chosen by whoever makes the key and can be copied.
"""

from __future__ import annotations

from datetime import datetime

from registry_tool.errors import printable
from registry_tool.signing.minisign import PublicKey
from registry_tool.trust.root import Revocation, Root, format_time


def key_text(key: PublicKey) -> str:
    """A key as the summaries show it: ``KEYID (RW...public key)``."""
    return f"{key.key_id} ({key.to_base64()})"


def _ids(keys: tuple[PublicKey, ...]) -> str:
    return ", ".join(k.key_id for k in keys) or "none"


def _list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values) or "none"


def _quoted(text: str) -> str:
    return "'" + printable(text) + "'"


def pin_text(sha256: str | None) -> str:
    """The registry.toml pin as the summaries show it."""
    return f"sha256 {sha256}" if sha256 else "none (no registry.toml change is accepted)"


def revocation_text(r: Revocation, now: datetime | None = None) -> str:
    """One revocation: key, version, time, what stays valid, reason (and whether it is still ahead)."""
    if r.keep_prior_releases:
        kept = f"releases of {_list(r.plugins)} published before then stay valid"
        if not r.plugins:
            kept = "keep_prior_releases, but no plugin is listed: no release stays valid"
    else:
        kept = f"no release it signed stays valid (plugins {_list(r.plugins)})"
    when = format_time(r.revoked_at)
    text = f"key {r.key.key_id} revoked in version {r.revoked_in_version} as of {when}: {kept}"
    if r.reason:
        text += f"; reason {_quoted(r.reason)}"
    if now is not None and r.revoked_at > now:
        text += (
            f" -- REVOKED_AT IS IN THE FUTURE: until then the key still signs releases of {_list(r.plugins)}"
        )
    return text


def root_changes(old: Root | None, new: Root, *, now: datetime | None = None) -> list[str]:
    """What ``new`` changes against ``old`` (None: ``new`` is version 1), one line per change.

    ``now``: flag revocations whose ``revoked_at`` is still ahead.  Every difference that matters
    to trust is a line: the registry name, each key (with its public key), the root and index
    roles, maintainers, plugin thresholds, the registry.toml pin, revocations (plugins, time,
    keep_prior_releases, reason) and the expiry.  Refused steps (a key id rebound to another key,
    an altered revocation) are described too: ``ci check`` shows what a rejected version would do.
    """
    lines: list[str] = []
    if old is None:
        lines.append(f"registry '{new.registry}': first root version {new.version}")
    elif old.registry != new.registry:
        lines.append(f"REGISTRY RENAMED '{old.registry}' -> '{new.registry}'")
    rebound, keys = _key_changes(old, new)
    lines += rebound
    lines += _role_changes(old, new)
    lines += _maintainer_changes(old, new)
    lines += _threshold_changes(old, new)
    old_pin, new_pin = (old.registry_config_sha256 if old else None), new.registry_config_sha256
    if old_pin != new_pin:
        lines.append(f"registry.toml pin: {pin_text(old_pin)} -> {pin_text(new_pin)}")
    lines += _revocation_changes(old, new, now)
    lines += keys
    if old is None or old.expires != new.expires:
        before = f"{format_time(old.expires)} -> " if old else ""
        lines.append(f"expires {before}{format_time(new.expires)}")
    return lines or ["nothing changes but the version"]


def _comment(root: Root | None, key_id: str) -> str:
    entry = root.data["keys"].get(key_id) if root else None
    return str(entry.get("comment", "")) if isinstance(entry, dict) else ""


def _key_changes(old: Root | None, new: Root) -> tuple[list[str], list[str]]:
    """Key ids naming another public key than before (refused steps), then keys added or removed."""
    rebound: list[str] = []
    lines: list[str] = []
    before = old.key_ids() if old else {}
    revoked_now = {r.key.key_id for r in new.revoked}
    for key_id, key in new.keys.items():
        was = before.get(key_id)
        comment = _comment(new, key_id)
        if was is None:
            lines.append(f"key {key_text(key)} added" + (f", comment {_quoted(comment)}" if comment else ""))
        elif was.raw != key.raw:
            rebound.append(
                f"KEY ID {key_id} NOW NAMES ANOTHER PUBLIC KEY: {was.to_base64()} -> {key.to_base64()}"
            )
        elif old is not None and key_id in old.keys and _comment(old, key_id) != comment:
            lines.append(f"key {key_id} comment {_quoted(_comment(old, key_id))} -> {_quoted(comment)}")
    for r in new.revoked:
        was = before.get(r.key.key_id)
        if was is not None and was.raw != r.key.raw:
            rebound.append(
                f"KEY ID {r.key.key_id} NOW NAMES ANOTHER PUBLIC KEY: {was.to_base64()} -> "
                f"{r.key.to_base64()} (revoked)"
            )
    if old is not None:
        for key_id in old.keys:
            if key_id not in new.keys and key_id not in revoked_now:
                lines.append(f"key {key_id} removed (not revoked)")
    return rebound, lines


def _role_changes(old: Root | None, new: Root) -> list[str]:
    lines: list[str] = []
    for name in ("root", "index"):
        b = new.roles[name]
        if old is None:
            lines.append(f"{name} role {b.threshold} of {_ids(b.keys)}")
            continue
        a = old.roles[name]
        if {k.raw for k in a.keys} != {k.raw for k in b.keys} or a.threshold != b.threshold:
            lines.append(
                f"{name} role {len(a.keys)} key(s)/threshold {a.threshold} -> "
                f"{len(b.keys)} key(s)/threshold {b.threshold} (keys {_ids(a.keys)} -> {_ids(b.keys)})"
            )
    return lines


def _maintainer_changes(old: Root | None, new: Root) -> list[str]:
    lines: list[str] = []
    before = old.maintainers if old else {}
    for mid, m in new.maintainers.items():
        was = before.get(mid)
        if was is None:
            lines.append(f"maintainer '{mid}' added (keys {_ids(m.keys)}; plugins {_list(m.plugins)})")
            continue
        parts = []
        if {k.raw for k in was.keys} != {k.raw for k in m.keys}:
            parts.append(f"keys {_ids(was.keys)} -> {_ids(m.keys)}")
        if set(was.plugins) != set(m.plugins):
            parts.append(f"plugins {_list(was.plugins)} -> {_list(m.plugins)}")
        if parts:
            lines.append(f"maintainer '{mid}' changed: {'; '.join(parts)}")
    for mid, was in before.items():
        if mid not in new.maintainers:
            lines.append(
                f"maintainer '{mid}' removed (had keys {_ids(was.keys)}; plugins {_list(was.plugins)})"
            )
    return lines


def _threshold_changes(old: Root | None, new: Root) -> list[str]:
    before = old.plugin_thresholds if old else {}
    return [
        f"plugin threshold '{plugin}': {before.get(plugin, 1)} -> {new.plugin_thresholds.get(plugin, 1)} "
        "maintainer signature(s)"
        for plugin in sorted(set(before) | set(new.plugin_thresholds))
        if before.get(plugin, 1) != new.plugin_thresholds.get(plugin, 1)
    ]


def _revocation_changes(old: Root | None, new: Root, now: datetime | None) -> list[str]:
    lines: list[str] = []
    before = old.revoked if old else ()
    for r in new.revoked:
        was = next((o for o in before if o.key.raw == r.key.raw), None)
        if was is None:
            lines.append(revocation_text(r, now))
            continue
        parts = []
        if was.key.key_id != r.key.key_id:
            parts.append(f"key id {was.key.key_id} -> {r.key.key_id}")
        if was.revoked_in_version != r.revoked_in_version:
            parts.append(f"revoked_in_version {was.revoked_in_version} -> {r.revoked_in_version}")
        if was.revoked_at != r.revoked_at:
            parts.append(f"revoked_at {format_time(was.revoked_at)} -> {format_time(r.revoked_at)}")
        if was.keep_prior_releases != r.keep_prior_releases:
            # As the JSON says it (true/false), not as Python prints it.
            kept_was, kept_now = (
                "true" if f else "false" for f in (was.keep_prior_releases, r.keep_prior_releases)
            )
            parts.append(f"keep_prior_releases {kept_was} -> {kept_now}")
        if set(was.plugins) != set(r.plugins):
            parts.append(f"plugins {_list(was.plugins)} -> {_list(r.plugins)}")
        if was.reason != r.reason:
            parts.append(f"reason {_quoted(was.reason)} -> {_quoted(r.reason)}")
        if parts:
            lines.append(f"revocation of key {r.key.key_id} changed: {'; '.join(parts)}")
    for was in before:
        if new.revocation_for(was.key) is None:
            lines.append(f"REVOCATION OF KEY {was.key.key_id} DROPPED")
    return lines


def future_revocations(old: Root | None, new: Root, now: datetime) -> list[Revocation]:
    """The revocations ``new`` introduces whose ``revoked_at`` is still ahead of ``now``.

    The chain accepts them (up to the version's expiry), but until then the key still signs the
    releases the revocation keeps: ``root sign`` and ``ci check`` refuse to let one in.
    """
    return [
        r for r in new.revoked if r.revoked_at > now and (old is None or old.revocation_for(r.key) is None)
    ]
