"""How each command's facts read as text and as Markdown summary columns.

Commands put facts into ``CheckResult.data`` and ``Report.data`` (the JSON shows them as they
are); the text and GitHub reporters look up the command's ``View`` here to turn those facts into
lines.  Adding a command is adding its view; a command without one shows its results and
findings only.  Every string may come from an untrusted file (a test name, a trusted comment):
the reporters escape what these functions return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from registry_tool.report import CheckResult, Report, View, md_text

#: A failing test shows at most this many lines of each of its streams in the text report.
OUTPUT_LINES = 20


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values or ()) or "none"


# --------------------------------------------------------------------------- verify / root


def _verify_lines(result: CheckResult) -> list[str]:
    d = result.data
    if "key_id" in d:
        return [f"signed by {d['key_id']}", f"trusted comment: {d.get('trusted_comment', '')}"]
    if "plugin" in d:
        lines = [
            f"{d['plugin']} {d['version']}: signed by {_join(d.get('signers'))} "
            f"(root version {d.get('root_version')})"
        ]
        if d.get("signatures"):
            lines.append(f"signatures: {_join(d['signatures'])}")
        return lines
    return []


def _root_lines(result: CheckResult) -> list[str]:
    d = result.data
    if "version" not in d:
        return []
    lines = [f"registry {d['registry']}: root version {d['version']}, expires {d['expires']}"]
    if d.get("root_fingerprint"):
        lines.append(f"root fingerprint (sha256 of root/1.root.json): {d['root_fingerprint']}")
    for key_id, public_key in d.get("keys", {}).items():
        lines.append(f"key {key_id}: {public_key}")
    for name, role in d.get("roles", {}).items():
        lines.append(f"{name}: {role['threshold']} of {_join(role['keyids'])}")
    for mid, m in d.get("maintainers", {}).items():
        lines.append(f"maintainer {mid}: {_join(m['keyids'])} -> {_join(m['plugins'])}")
    for plugin, k in d.get("plugin_thresholds", {}).items():
        lines.append(f"plugin threshold {plugin}: {k} maintainer signatures")
    if "registry_config_sha256" in d:
        pin = d["registry_config_sha256"]
        lines.append(
            f"registry.toml pin: {'sha256 ' + pin if pin else 'none (no registry.toml change is accepted)'}"
        )
    for r in d.get("revocations", []):
        lines.append(
            r.get("text")
            or f"revoked {r['key_id']} at {r['revoked_at']} (keep prior: {r['keep_prior_releases']})"
        )
    if "changes" in d:
        # trust.summary.root_changes: the lines `root sign` and `ci check` show for the same step.
        lines.append(f"changes in version {d['version']} against version {d.get('changes_from')}:")
        lines += [f"  {change}" for change in d["changes"]]
    return lines


# --------------------------------------------------------------------------- smoke


def test_line(test: Mapping[str, Any]) -> str:
    """One test's verdict and figures: ``✓ name: passed (fuel 2,635, mem 128 KiB, 1.4 ms)``."""
    mark = "✓" if test.get("passed") else "✗"
    fuel = test.get("fuel_consumed")
    figures = [f"fuel {fuel:,}" if isinstance(fuel, int) else "fuel -"]
    if isinstance(test.get("peak_memory_bytes"), int):
        figures.append(f"mem {test['peak_memory_bytes'] // 1024} KiB")
    if isinstance(test.get("wall_ms"), int | float):
        figures.append(f"{test['wall_ms']:.1f} ms")
    return f"{mark} {test.get('name')}: {test.get('outcome')} ({', '.join(figures)})"


def output_lines(test: Mapping[str, Any]) -> list[str]:
    """The module's own stdout/stderr under a failing test, at most ``OUTPUT_LINES`` per stream."""
    shown: list[str] = []
    for stream in ("stdout", "stderr"):
        body = str(test.get(stream) or "").rstrip("\n").splitlines()
        if not body:
            continue
        cut = len(body) - OUTPUT_LINES
        shown.append(f"  {stream}:" + (f" (last {OUTPUT_LINES} of {len(body)} lines)" if cut > 0 else ""))
        shown += [f"  | {line}" for line in body[max(cut, 0) :]]
    return shown


def _smoke_lines(result: CheckResult) -> list[str]:
    lines: list[str] = []
    for test in result.data.get("tests") or []:
        lines.append(test_line(test))
        if not test.get("passed"):
            lines += output_lines(test)
    return lines


def _tests_cell(result: CheckResult) -> str:
    tests = result.data.get("tests") or []
    return f"{sum(1 for t in tests if t.get('passed'))}/{len(tests)}"


# --------------------------------------------------------------------------- build / resign


def _build_lines(result: CheckResult) -> list[str]:
    d = result.data
    if "registry_version" not in d:
        return []
    counts = d.get("counts") or {}
    files = dict(d.get("site_files") or {})
    previous = d.get("previous_version")
    whole = files.pop("swapped", None)
    return [
        f"registry version {d['registry_version']} "
        + (f"(previous {previous})" if previous is not None else "(no previous registry)")
        + f", root v{d.get('root_version')}",
        f"{_count(d.get('releases'), 'release')} of {_count(d.get('plugins'), 'plugin')}, "
        f"expires {d.get('expires_at')}",
        "cache: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        "site files: "
        + ", ".join(f"{k} {v}" for k, v in sorted(files.items()))
        + ("; the whole site staged and swapped in" if whole else ""),
    ]


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _resign_lines(result: CheckResult) -> list[str]:
    d = result.data
    if "registry_version" not in d:
        return []
    expires = d.get("expires_at")
    if "previous_expires_at" in d:
        expires = f"{d['previous_expires_at']} -> {expires}"
    return [f"registry version {d.get('previous_version')} -> {d['registry_version']}, expires {expires}"]


# --------------------------------------------------------------------------- keys, signing, init


def _key_lines(result: CheckResult) -> list[str]:
    d = result.data
    lines = [f"key id:      {d.get('key_id')}"]
    if "public_key" in d:
        lines.append(f"public key:  {d['public_key']}")
    if "public_file" in d:
        lines += [f"public key:  {d['public_file']}", f"secret key:  {d['secret_file']}"]
    return lines


def _written_lines(result: CheckResult) -> list[str]:
    d = result.data
    lines = [f"generated {path}" for path in d.get("generated") or ()]
    written = d.get("written")
    if written:
        key = f" (key {d['key_id']})" if d.get("key_id") else ""
        note = {
            "root": " (unsigned: it needs its root signatures, `registry-tool root sign`)",
            "root-init": " (unsigned: sign it with `registry-tool root sign --key <root key>`)",
        }.get(str(d.get("kind")), "")
        lines.append(f"wrote {written}{key}{note}")
    lines += [str(n) for n in d.get("notes") or ()]
    return lines


def init_next_steps(d: Mapping[str, Any]) -> list[str]:
    """What to do after ``registry-tool init``, from the facts of its result."""
    directory, keys, secret = d["directory"], d["keys_dir"], d["secret_name"]
    return [
        f"Created a plugin index repository in {directory}:",
        *(f"  {f}" for f in d["files"]),
        "",
        f"Secret keys were written OUTSIDE the repository, to {keys} (mode 0600):",
        f"  root.key   root key {d['root_key_id']}: signs root changes. Set a password on it",
        f"             (`minisign -C -s {keys}/root.key`) and keep it offline.",
        f"  index.key  index key {d['index_key_id']}: the publish workflow signs registry.json with it.",
        "",
        "Next steps:",
        *(
            [
                f"  0. Set base_url in {directory}/index/registry.toml to the site's address first: it",
                f"     holds the placeholder {d.get('base_url')} (no --base-url), and once committed",
                "     a change to registry.toml needs a root change (`root pin-config` and `root sign`).",
            ]
            if d.get("base_url_placeholder")
            else []
        ),
        f"  1. Commit and push:  cd {directory} && git add -A && git commit -m 'New plugin index'",
        "     then create the GitHub repository and `git push -u origin main`.",
        f"  2. Add the repository secret {secret} with the content of {keys}/index.key:",
        f"       gh secret set {secret} < {keys}/index.key",
        "     (or Settings > Secrets and variables > Actions > New repository secret), then delete",
        "     that local copy.",
        "  3. Enable GitHub Pages: Settings > Pages > Build and deployment > Source: GitHub Actions.",
        "  4. Protect main: require the 'PR check' status and a review; add CODEOWNERS entries for",
        "     .github/ and index/root/.",
        "  5. Delegate plugins to maintainers (a root change, sent as its own pull request):",
        f"       cd {directory}",
        "       registry-tool root add-maintainer alice --pubkey alice.pub --plugin 'alice_*' \\",
        "           --dir index/root",
        f"       registry-tool root sign --dir index/root --key {keys}/root.key",
        "     Maintainers then sign their releases:",
        "       registry-tool sign index/plugins/<name>/<version> --key maintainer.key",
    ]


def _init_lines(result: CheckResult) -> list[str]:
    return init_next_steps(result.data) if "directory" in result.data else []


# --------------------------------------------------------------------------- client


def _entry_line(verb: str, e: Mapping[str, Any]) -> str:
    sha, perms = str(e.get("wasm_sha256", ""))[:16], _join(e.get("permissions"))
    return f"{verb} {e.get('name')} {e.get('version')} (sha256 {sha}…, permissions: {perms})"


def _trust_lines(result: CheckResult) -> list[str]:
    d = result.data
    return [
        f"trusted {d.get('url')}: root version {d.get('root_version')}, "
        f"registry version {d.get('highest_registry_version')}"
    ]


def _search_lines(result: CheckResult) -> list[str]:
    d = result.data
    return [f"{d.get('name')} {d.get('version')}  {d.get('description', '')}"]


def _info_lines(result: CheckResult) -> list[str]:
    r = result.data
    yanked = r.get("yanked")
    reason = yanked.get("reason") if isinstance(yanked, dict) else yanked
    flags = f"  YANKED: {reason}" if yanked else ""
    wasm = r.get("wasm") or {}
    return [
        f"{r.get('name')} {r.get('version')}  abi {r.get('abi')}, host {r.get('host') or 'any'}, "
        f"permissions {_join(r.get('permissions'))}, {wasm.get('size')} bytes, "
        f"signed by {_join(r.get('signers'))}{flags}"
    ]


def _installed_lines(result: CheckResult) -> list[str]:
    # A failed install's result (its error as a finding) names no release.
    # Every planned plugin as it is installed after the command (the plan above says which were kept).
    return [_entry_line("installed", result.data)] if "name" in result.data else []


def _install_header(report: Report) -> list[str]:
    plan = report.data.get("plan")
    if plan is None:
        return []
    versions = {str(e.get("name")): e.get("version") for e in report.data.get("installed", [])}
    lines = ["plan:"]
    lines += [f"  added {n} {versions.get(n, '')}".rstrip() for n in plan.get("added", [])]
    lines += [f"  upgraded {u['name']} {u['from']} -> {u['to']}" for u in plan.get("upgraded", [])]
    lines += [f"  downgraded {u['name']} {u['from']} -> {u['to']}" for u in plan.get("downgraded", [])]
    lines += [f"  kept {n} {versions.get(n, '')}".rstrip() for n in plan.get("kept", [])]
    return lines


def _install_footer(report: Report) -> list[str]:
    return [f"into {report.data['plugin_dir']}"] if "plugin_dir" in report.data and report.ok else []


def _updated_lines(result: CheckResult) -> list[str]:
    d = result.data
    return [f"updated {d.get('name')} {d.get('from')} -> {d.get('to')}"]


def _nothing(message: str) -> Callable[[Report], list[str]]:
    def footer(report: Report) -> list[str]:
        return [] if report.results or not report.ok else [message]

    return footer


def _list_lines(result: CheckResult) -> list[str]:
    d = result.data
    return [
        f"{d.get('name')} {d.get('version')}  permissions: {_join(d.get('permissions'))}  "
        f"from {d.get('registry')}"
    ]


def _removed_lines(result: CheckResult) -> list[str]:
    return [f"removed {result.data.get('name')} {result.data.get('version')}"]


md = md_text  # the one Markdown escape (report.py), under the name the views use


def kib(value: int | None) -> str:
    """A byte count as KiB for a table cell (``-`` when unknown)."""
    return "-" if value is None else f"{value / 1024:,.0f} KiB"


def _checks_cell(result: CheckResult) -> str:
    checks: dict[str, bool] = result.data.get("checks", {})
    return " ".join(f"{'✅' if ok else '❌'} {name}" for name, ok in checks.items()) or "-"


def _smoke_cell(result: CheckResult) -> str:
    cells = []
    for t in result.data.get("tests") or []:
        figures = []
        if t.get("fuel_consumed") is not None:
            figures.append(f"fuel {t['fuel_consumed']:,}")
        if t.get("peak_memory_bytes") is not None:
            figures.append(f"mem {kib(t['peak_memory_bytes'])}")
        cells.append(f"{md(t['name'])}: {t['outcome']}" + (f" ({', '.join(figures)})" if figures else ""))
    return "<br>".join(cells) or "-"


def _escalation_cell(result: CheckResult) -> str:
    escalations = [md(e) for e in result.data.get("escalations") or []]
    root = result.data.get("root_change")
    if root:
        escalations.append(f"ROOT CHANGE: {md(root)}")
    return "<br>".join(f"⚠️ {e}" for e in escalations) or "-"


#: ci check's overview columns (the job summary and the text report share them).
SUMMARY_COLUMNS: dict[str, Callable[[CheckResult], str]] = {
    "Checks": _checks_cell,
    "Smoke": _smoke_cell,
    "Escalations": _escalation_cell,
}


#: command name -> its view.
def _act(
    lines: Callable[[CheckResult], list[str]],
    header: Callable[[Report], list[str]] | None = None,
    footer: Callable[[Report], list[str]] | None = None,
) -> View:
    """The view of a command that acts rather than checks: its lines, no verdict unless it failed."""
    return View(lines=lines, header=header, footer=footer, verdict=False, subjects=False)


VIEWS: dict[str, View] = {
    "verify": View(lines=_verify_lines),
    "root verify": View(lines=_root_lines),
    "smoke": View(lines=_smoke_lines, columns={"Tests": _tests_cell}),
    "build": View(lines=_build_lines),
    "resign": View(lines=_resign_lines),
    "ci check": View(columns=SUMMARY_COLUMNS),
    "key generate": _act(_key_lines),
    "key show": _act(_key_lines),
    "sign": _act(_written_lines),
    "init": _act(_init_lines),
    **{
        f"root {name}": _act(_written_lines)
        for name in ("init", "add-maintainer", "pin-config", "revoke", "rotate-keys", "renew", "sign")
    },
    "client trust": _act(_trust_lines),
    "client search": _act(_search_lines, footer=_nothing("no plugin matches")),
    "client info": _act(_info_lines),
    "client install": _act(_installed_lines, _install_header, _install_footer),
    "client update": _act(_updated_lines, footer=_nothing("everything is up to date")),
    "client list": _act(_list_lines, footer=_nothing("no plugins installed")),
    "client remove": _act(_removed_lines),
}
