"""The validate rules: everything about a release a schema cannot say.

``validate_release`` turns one release directory into one ``CheckResult``; every rule adds
``Finding``s with a stable rule id, the file, the TOML line and a fix.  Rules never stop at
the first problem, so a maintainer sees everything in one run.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from registry_tool._files import UnreadableFileError, unreachable
from registry_tool.errors import UsageError, hidden_characters, printable
from registry_tool.format.rules import MAX_TEST_FILE_BYTES, is_reserved_name
from registry_tool.manifest import cache as disk_cache
from registry_tool.manifest import spdx, tree
from registry_tool.manifest.abi import (
    ABI_ONLY_TEST_KEYS,
    ABI_SPECS,
    CORE_WASI_FIX,
    INTEGER_RANGES,
    PROXY_WASM_ALLOCATOR_SIGNATURE,
    PROXY_WASM_ALLOCATORS,
    PROXY_WASM_CALLBACK_SIGNATURES,
    PROXY_WASM_START_SIGNATURES,
    PROXY_WASM_VERSIONS,
    WASI,
    WASI_UNSTABLE,
    ImportRefusal,
    gated_module,
    import_refusal,
    integer_fits,
    link_import,
    module_kind,
    proxy_wasm_start,
)
from registry_tool.manifest.binary import NUMERIC_TYPES, custom_section_names
from registry_tool.manifest.config import (
    CONFIG_FILE,
    Limits,
    RegistryConfig,
    find_registry_config,
    load_registry_config,
)
from registry_tool.manifest.errors import RegistryConfigError, UnsafeIndexPathError, WasmInspectionError
from registry_tool.manifest.model import (
    EXPECT_KEYS,
    INPUT_KEYS,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    Manifest,
    manifest_read_finding,
    parse_manifest,
    read_manifest_bytes,
)
from registry_tool.manifest.source import TomlSyntaxError, did_you_mean, parse_toml, read_plain
from registry_tool.manifest.units import format_size
from registry_tool.manifest.versions import SEMVER_HINT, RangeError, is_version, ranges_overlap
from registry_tool.manifest.wasm import ModuleInfo, inspect_wasm
from registry_tool.report import CheckResult, Finding, Report, Severity
from registry_tool.rules import rule_ids

if TYPE_CHECKING:
    from license_expression import Licensing

# Every rule id validate can report (registry_tool.rules describes each; tests prove each fires).
RULES = rule_ids("validate")

_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", "site"}


def display_path(path: Path) -> str:
    """Paths in findings are relative to the working directory when possible (GitHub needs that)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a link loop (RuntimeError on Python 3.11): the link's own place
        try:
            resolved = path.parent.resolve() / path.name
        except (OSError, RuntimeError):
            return str(path)
    return _display_resolved(resolved, str(path))


def _display_resolved(resolved: Path, fallback: str) -> str:
    cwd = _resolved_cwd(os.getcwd())  # noqa: PTH109 (a str: the cache key, no Path built per call)
    if os.sep == "/":  # POSIX: a string prefix test, the same answer as relative_to without its objects
        text = str(resolved)
        if text == cwd:
            return "."
        prefix = cwd if cwd.endswith("/") else cwd + "/"
        return text[len(prefix) :] if text.startswith(prefix) else fallback
    try:
        return resolved.relative_to(cwd).as_posix()
    except ValueError:
        return fallback


@lru_cache(maxsize=4)
def _resolved_cwd(cwd: str) -> str:
    return str(Path(cwd).resolve())


@dataclass
class _Ctx:
    """What the rules of one release share: the manifest, config, and the findings so far."""

    manifest: Manifest
    config: RegistryConfig
    relfile: str
    release: Path  # the release directory, resolved once (symlinks followed)
    findings: list[Finding] = field(default_factory=list)
    info: ModuleInfo | None = None
    wasm: bytes | None = None
    wasm_sha256: str | None = None  # of ``wasm``, computed once
    limits: Limits = field(init=False)  # the effective limits, computed once (three rules use them)
    # Findings of one rule past _MAX_PER_RULE: counted, not listed (100,000 refused imports made
    # 27 MB of report); ``close`` says how many.
    _counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.limits = self.manifest.effective_limits(self.config)

    def add(
        self,
        rule: str,
        message: str,
        field_: str | None,
        fix: str | None = None,
        *,
        severity: Severity = Severity.error,
    ) -> None:
        count = self._counts[rule] = self._counts.get(rule, 0) + 1
        if count > _MAX_PER_RULE:
            return
        line = self.manifest.line_of(field_) if field_ else None
        self.findings.append(Finding(rule, message, severity, self.relfile, line, None, field_, fix))

    def close(self) -> None:
        """One finding per rule that had more than ``_MAX_PER_RULE``, saying how many more."""
        for rule, count in self._counts.items():
            if count > _MAX_PER_RULE:
                last = next(f for f in reversed(self.findings) if f.rule == rule)
                self.findings.append(
                    Finding(
                        rule,
                        f"... and {count - _MAX_PER_RULE} more findings of this rule (the first "
                        f"{_MAX_PER_RULE} are listed)",
                        last.severity,
                        self.relfile,
                        fix=last.fix,
                    )
                )


_MAX_PER_RULE = 100


# --------------------------------------------------------------------------- metadata rules


def _check_metadata(ctx: _Ctx) -> None:
    m, cfg = ctx.manifest, ctx.config
    if not is_version(m.version):
        ctx.add(
            "semver", f"plugin.version {m.version!r} is not strict semver 2.0", "plugin.version", SEMVER_HINT
        )
    elif any(int(n) > _VERSION_NUMBER_MAX for n in m.version.split("-", 1)[0].split("+", 1)[0].split(".")):
        # The published path's rule (format.rules.is_version): the Go and Rust verifiers read each
        # number as a u64.  A bigger one passed here and then stopped every build of the index.
        ctx.add(
            "semver",
            f"plugin.version {m.version!r} has a number above 2^64 - 1",
            "plugin.version",
            "use numbers below 18446744073709551616",
        )
    elif "+" in m.version:
        # The published path holds the version, and the format refuses '+' there: semver ignores
        # build metadata for precedence, so 1.0.0+a and 1.0.0+b would be one version to every
        # resolver.  Refused here, a release never passes ci check only to stop every build.
        ctx.add(
            "semver",
            f"plugin.version {m.version!r} carries build metadata ('+...'), which a registry version may not",
            "plugin.version",
            "drop the '+...' part; to publish other bytes, raise the version (e.g. a pre-release "
            "'1.2.0-rc.2' or the next patch)",
        )
    release = ctx.release
    if release.parent.parent.name == "plugins":
        if release.parent.name != m.name:
            ctx.add(
                "name-mismatch",
                f"plugin.name {m.name!r} does not match its directory plugins/{release.parent.name}/",
                "plugin.name",
                f"move the release to plugins/{m.name}/{m.version}/ or fix the name",
            )
        if release.name != m.version:
            ctx.add(
                "version-mismatch",
                f"plugin.version {m.version!r} does not match its directory {release.name}/",
                "plugin.version",
                f"move the release to plugins/{m.name}/{m.version}/ or fix the version",
            )
    _check_license(ctx)
    _check_text(ctx)
    if m.abi not in cfg.allowed_abis:
        ctx.add(
            "abi-not-allowed",
            f"ABI {m.abi!r} is not allowed by this registry",
            "plugin.abi",
            f"use one of: {', '.join(cfg.allowed_abis)} ({CONFIG_FILE} [abis].allowed)",
        )
    _check_host_range(ctx)
    for name in m.declared_permissions:
        if name not in cfg.permissions:
            hint = did_you_mean(name, cfg.permissions)
            ctx.add(
                "unknown-permission",
                f"permission {name!r} is not in the registry's vocabulary",
                f"permissions.{name}",
                f"did you mean '{hint}'? Rename it to '{hint}'"
                if hint
                else f"use one of: {', '.join(sorted(cfg.permissions)) or '(none defined)'}",
            )
    _check_dependencies(ctx)
    wall_time = m.declared_limits.wall_time
    if wall_time is not None and not math.isclose(
        wall_time * 1000, round(wall_time * 1000), rel_tol=1e-12, abs_tol=1e-6
    ):
        # The registry publishes whole milliseconds; 12.5 ms would be rounded to 12 by one verifier
        # and 13 by another (half to even, half away from zero), so it is never published.
        ctx.add(
            "limit-precision",
            f"limits.wall_time is {wall_time * 1000:g} ms, not a whole number of milliseconds",
            "limits.wall_time",
            f"write whole milliseconds, e.g. '{max(1, round(wall_time * 1000))}ms'",
        )
    for name, value, cap in m.declared_limits.exceeding(cfg.max_limits):
        ctx.add(
            "limit-exceeded",
            f"limits.{name} = {_fmt_limit(name, value)} is above the registry maximum "
            f"{_fmt_limit(name, cap)}",
            f"limits.{name}",
            f"lower it to at most {_fmt_limit(name, cap)}",
        )


# A published URL: no whitespace, controls or the characters that end a URL in text or HTML (RFC
# 3986 excludes them), and an ASCII host (an internationalised one as punycode, so a look-alike
# letter cannot pose as another host); a path may hold any other letter.
_URL_ENDS = re.compile(r'[\s"<>\\^`{|}]')
_URL_HOST = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:[^@/?#]*@)?([^/?#]*)")


def _url_problem(url: str) -> str | None:
    if _URL_ENDS.search(url) or hidden_characters(url):
        return "holds a space, a quote, <>, a backslash, ^, a backtick, {|} or a control character"
    match = _URL_HOST.match(url)
    if match is not None and not match[1].isascii():
        return "has a host that is not ASCII"
    if match is not None and "@" in match[0]:
        # https://github.com@evil.example/ reads as github.com and opens evil.example.
        return "names a user before its host (user@host), which shows one host and opens another"
    return None


def _check_text(ctx: _Ctx) -> None:
    """Text every client, catalog and CI summary shows: no control or bidi override characters.

    (Keywords have a pattern in the schema.)
    """
    m = ctx.manifest
    fields: list[tuple[str, str, str]] = [("plugin.description", m.description, "\n\t")]
    fields += [(f"plugin.authors[{i}]", author, "") for i, author in enumerate(m.authors)]
    # An export name is compared byte for byte by every verifier, and TOML parsers disagree on a
    # multi-line string's CRLF ("\r\n" or "\n"): no control character in one.
    fields += [(f"exports.functions[{i}]", name, "") for i, name in enumerate(m.exports)]
    for field_, value, allow in fields:
        if hidden := hidden_characters(value, allow):
            ctx.add(
                "text-field",
                f"{field_} holds control or bidi override characters ({', '.join(hidden)})",
                field_.split("[")[0],
                "remove them: clients, the catalog and CI summaries would show them as escapes",
            )
    for field_, url in (("plugin.homepage", m.homepage), ("plugin.repository", m.repository)):
        problem = _url_problem(url) if url is not None else None
        if problem is not None:
            ctx.add(
                "text-field",
                f"{field_} {printable(url or '')!r} {problem}",
                field_,
                "percent-encode those characters; write an internationalised host as punycode (xn--)",
            )


def _check_dependencies(ctx: _Ctx) -> None:
    """What one release can say about its dependencies alone (the index checks names and ranges)."""
    m, cfg = ctx.manifest, ctx.config
    if not m.dependencies:
        return
    # lazy: registry_tool.format loads the document model and semantic_version's metadata (start-up)
    from registry_tool.format.ranges import RangeSyntaxError
    from registry_tool.format.ranges import parse_range as parse_client_range
    from registry_tool.format.rules import PLUGIN_NAME_RE

    for dep in m.dependencies:
        field_ = f"dependencies.{dep.name}"
        if not PLUGIN_NAME_RE.fullmatch(dep.name):  # the schema's pattern lets a trailing newline through
            ctx.add("dependency", f"dependency name {dep.name!r} is not a plugin name", field_, NAME_FIX)
            continue
        if dep.name == m.name:
            ctx.add(
                "dependency",
                f"{m.name} depends on itself",
                field_,
                f"remove dependencies.{dep.name}: a plugin cannot require itself",
            )
        try:
            parse_client_range(dep.range)  # the grammar the client resolves with
        except RangeSyntaxError as err:
            ctx.add("dependency", f"dependencies.{dep.name}: {err.what}", field_, RANGE_FIX)
        for perm in dep.permissions:
            if perm not in cfg.permissions:
                ctx.add(
                    "dependency",
                    f"dependencies.{dep.name} implies permission {perm!r}, which is not in the "
                    "registry's vocabulary",
                    field_,
                    f"use one of: {', '.join(sorted(cfg.permissions)) or '(none defined)'}",
                )


NAME_FIX = "plugin names match ^[a-z][a-z0-9_-]{1,63}$"
RANGE_FIX = "write a range such as '^1.2', '~1.2.0', '>=1.0.0 <2.0.0' or an exact version '1.2.3'"


def _fmt_limit(name: str, value: float) -> str:
    if name in ("memory", "module_size", "stack"):
        return format_size(int(value))
    if name == "wall_time":
        return f"{value:g}s"
    if abs(value) >= 1e18:  # 1e99 is an integer to TOML's JSON schema: not a hundred digits to read
        return f"{value:g}"
    return f"{int(value):_}"


@lru_cache(maxsize=256)
def spdx_errors(expr: str) -> tuple[str, ...]:
    """Why ``expr`` is not a valid SPDX license expression (empty when it is).

    Building license_expression's SPDX index costs several times a whole check, so the common
    expressions (ids joined by AND/OR, WITH an exception) are accepted from its data file
    (``spdx.accepts``, which answers True only where license_expression accepts); everything
    else, and every refusal, is decided by license_expression, its index built once per process.
    In a process that uses remembered verdicts (``cache.py``), an expression license_expression
    (this version) accepted in an earlier run is not checked again.
    """
    if spdx.accepts(expr):
        return ()
    remembered = disk_cache.verdicts_on()
    if remembered and disk_cache.proved("spdx", "license_expression", expr):
        return ()
    try:
        errors = tuple(_spdx_licensing().validate(expr, strict=True).errors)
    except Exception as err:  # license_expression raises on some malformed input instead of reporting
        return (str(err),)
    if remembered and not errors:
        disk_cache.remember("spdx", "license_expression", expr)
    return errors


@lru_cache(maxsize=256)
def _ranges_overlap(a: str, b: str) -> bool:
    """``ranges_overlap`` per pair of range strings: an index repeats the same few ranges."""
    return ranges_overlap(a, b)


@cache
def _spdx_licensing() -> Licensing:
    from license_expression import get_spdx_licensing  # lazy: only a release's license needs it

    return get_spdx_licensing()


def _check_license(ctx: _Ctx) -> None:
    expr = ctx.manifest.license
    errors = spdx_errors(expr)
    if errors:
        ctx.add(
            "spdx",
            f"plugin.license {expr!r} is not a valid SPDX expression: {'; '.join(errors)}",
            "plugin.license",
            "use identifiers from https://spdx.org/licenses/ such as 'Apache-2.0' or 'MIT OR Apache-2.0'",
        )


def _check_host_range(ctx: _Ctx) -> None:
    m, cfg = ctx.manifest, ctx.config
    data = m.source.data if m.source else {}
    has_min = "min_host_version" in data.get("plugin", {})
    has_compat = "host" in data.get("compatibility", {})
    if has_min and has_compat:
        ctx.add(
            "host-range",
            "both plugin.min_host_version and [compatibility].host are set",
            "plugin.min_host_version",
            "keep only one (min_host_version is shorthand for host = '>=VERSION')",
        )
        return
    if m.host_range is None:
        ctx.add(
            "host-range",
            f"no host compatibility declared (the registry serves {cfg.host_name} {cfg.host_versions})",
            "plugin",
            'add plugin.min_host_version = "X.Y.Z" or [compatibility] host = ">=X.Y.Z, <A.B.C"',
        )
        return
    field_ = "plugin.min_host_version" if has_min else "compatibility.host"
    if has_min and not is_version(data["plugin"]["min_host_version"]):
        ctx.add(
            "semver",
            f"{field_} {data['plugin']['min_host_version']!r} is not strict semver",
            field_,
            SEMVER_HINT,
        )
        return
    try:
        overlap = _ranges_overlap(m.host_range, cfg.host_versions)
    except RangeError as err:
        ctx.add("host-range", str(err), field_, "write a range such as '>=0.2.0, <0.4.0'")
        return
    # Published as the release's ``host``, which every client reads with the registry's own range
    # grammar: a range semantic_version reads but that grammar does not (``0.2.0 - 0.9.0``, ``!=``)
    # would match no host version, and the release could never be installed for one.
    from registry_tool.format.ranges import RangeSyntaxError, check_range

    try:
        check_range(m.host_range)
    except RangeSyntaxError as err:
        ctx.add(
            "host-grammar",
            f"host range {m.host_range!r} is outside the registry's range grammar, which clients read "
            f"it with: {err.what.split(': ', 1)[-1]}",
            field_,
            err.fix or "write a range such as '>=0.2.0, <0.4.0'",
        )
        return
    if not overlap:
        ctx.add(
            "host-range",
            f"host range {m.host_range!r} has no version in common with the registry's "
            f"{cfg.host_name} {cfg.host_versions!r}",
            field_,
            f"target {cfg.host_name} versions within {cfg.host_versions}",
        )


# --------------------------------------------------------------------------- artifact rules


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The published file names of format 2 (format.rules.FILE_NAME_RE, not imported: that package is
# not loaded by validate; a test keeps the two equal).  Such a name (not "." or "..") is relative
# and stays in its folder on every client OS; it is what the build publishes the module under.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")


def _refused_path(ctx: _Ctx, file: str) -> bool:
    """The artifact-path rule for a name that is not plainly safe: a finding and True when refused."""
    if _CONTROL.search(file):
        # The OS cannot even look a NUL up ("embedded null byte"), and a newline forges log lines.
        ctx.add(
            "artifact-path", f"artifact.file {file!r} holds a control character", "artifact.file", _PATH_FIX
        )
        return True
    if (
        PurePosixPath(file).is_absolute()
        or PureWindowsPath(file).is_absolute()
        or PureWindowsPath(file).drive
    ):
        ctx.add("artifact-path", f"artifact.file {file!r} is an absolute path", "artifact.file", _PATH_FIX)
        return True
    if "\\" in file or ".." in PurePosixPath(file).parts:
        # A backslash is a separator on Windows clients: "..\\x" escapes there.
        how = "uses '..'" if ".." in PureWindowsPath(file).parts else "uses a backslash (a Windows separator)"
        ctx.add(
            "artifact-path",
            f"artifact.file {file!r} {how}, which could leave the release directory",
            "artifact.file",
            _PATH_FIX,
        )
        return True
    return False


#: What an artifact's name ends in: the site serves it by that name (see ``_check_artifact``).
WASM_SUFFIX = ".wasm"

_RESERVED_FIX = (
    "rename the file: plugin.toml, yank.toml and their .minisig names belong to the release's metadata"
)


def _check_artifact(ctx: _Ctx) -> None:
    m, cfg = ctx.manifest, ctx.config
    file = m.artifact.file
    if is_reserved_name(file):
        ctx.add(
            "reserved-name",
            f"artifact.file {file!r} is a name reserved for metadata",
            "artifact.file",
            _RESERVED_FIX,
        )
        # And the module is checked on: the build tolerates the name in a published release
        # (NEW_RELEASE_RULES) and must then find every other problem, not a missing file, later.
    if not (_PLAIN_NAME.fullmatch(file) and file not in (".", "..")):
        if not _refused_path(ctx, file):
            # A subfolder, a space, "+" or a letter outside ASCII: the build publishes the module
            # as plugins/<name>/<version>/<file name>, and this name is not one.
            ctx.add(
                "artifact-path",
                f"artifact.file {printable(file)!r} is not a plain file name of letters, digits, '.', "
                "'_' and '-' (at most 255) in the release folder",
                "artifact.file",
                "rename the module, e.g. my_plugin.wasm, and put it next to plugin.toml",
            )
        return
    if not file.endswith(WASM_SUFFIX):
        # The site serves the module under this name: a static host sends readme.html as a page,
        # and a script in the module's bytes (a custom section) then runs on the registry's origin,
        # where the catalog page keeps its rollback state.
        ctx.add(
            "artifact-extension",
            f"artifact.file {file!r} does not end in {WASM_SUFFIX}",
            "artifact.file",
            f"rename the module to end in {WASM_SUFFIX}: the registry's site serves it under this name, "
            "and a name a browser renders (.html, .svg, .xml) would run as a page of the registry",
        )
    release = ctx.release
    cap = cfg.max_limits.module_size
    # A plain name: a regular file by that name resolves to itself, inside the (resolved) release.
    quick = read_plain(f"{release}/{file}", cap)
    if quick is not None:
        _check_module_bytes(ctx, file, quick[0], cap, quick[1])
        return
    size = _plain_file_size(release, file)
    if size is None:  # a link, a subfolder or no such file: follow every link and decide
        target = _resolve(release, file)
        if target is None:
            ctx.add(
                "artifact-path",
                f"artifact.file {file!r} cannot be resolved (a symlink loop, or a name too long)",
                "artifact.file",
                _PATH_FIX,
            )
            return
        if not target.is_relative_to(release):
            ctx.add(
                "artifact-path",
                f"artifact.file {file!r} resolves to {target}, "
                "outside the release directory (symlink escape)",
                "artifact.file",
                _PATH_FIX,
            )
            return
        if not _is_file(target):
            ctx.add(
                "artifact-missing",
                f"artifact.file {file!r} does not exist in {display_path(m.release_dir)}",
                "artifact.file",
                "build the module and copy it next to plugin.toml, or fix the file name",
            )
            return
        size = target.stat().st_size
    else:
        target = release / file
    _check_module_bytes(ctx, file, size, cap, None if cap is not None and size > cap else target.read_bytes())


def _check_module_bytes(ctx: _Ctx, file: str, size: int, cap: int | None, data: bytes | None) -> None:
    """The size cap, the pinned size and digest of the artifact ``file`` (``size`` bytes on disk).

    ``data``: its bytes, None when it is over the cap (not read).
    """
    m = ctx.manifest
    if data is None:
        assert cap is not None
        ctx.add(
            "artifact-size",
            f"artifact {file!r} is {size} bytes ({size / 1024**2:.1f} MiB), above the registry maximum "
            f"{format_size(cap)}",
            "artifact.file",
            "shrink the module (strip debug info, optimise for size) or raise limits.max.module_size",
        )
        return
    ctx.wasm = data
    if m.artifact.size is not None and m.artifact.size != len(data):
        ctx.add(
            "size-mismatch",
            f"artifact.size is {m.artifact.size} but {file!r} has {len(data)} bytes",
            "artifact.size",
            "re-pin with `registry-tool sign` after rebuilding, or restore the original file",
        )
    digest = ctx.wasm_sha256 = hashlib.sha256(data).hexdigest()
    if m.artifact.sha256 is None:
        ctx.add(
            "digest-unpinned",
            f"artifact.sha256 is not pinned (the file's digest is {digest})",
            "artifact",
            "run `registry-tool sign` to pin the digest and size",
            severity=Severity.notice,
        )
    elif m.artifact.sha256 != digest:
        ctx.add(
            "digest-mismatch",
            f"artifact.sha256 does not match {file!r}: pinned {m.artifact.sha256}, file has {digest}",
            "artifact.sha256",
            "the file changed after signing: restore it, or rebuild and re-sign the release",
        )
    if m.artifact.sha256 is not None and m.artifact.size is None:  # the build and clients compare both
        ctx.add(
            "size-mismatch",
            f"artifact.sha256 is pinned but artifact.size is not ({file!r} has {len(data)} bytes)",
            "artifact.sha256",
            "re-sign with `registry-tool sign`, which pins both",
        )


_PATH_FIX = "use a plain relative file name inside the release directory, e.g. 'plugin.wasm'"


def _resolve(release: Path, name: str) -> Path | None:
    """``release/name`` with every link followed; None when it cannot be (a loop, ENAMETOOLONG).

    A pull request can commit a symlink loop: Python 3.11's ``resolve`` raises RuntimeError for it.
    """
    try:
        return (release / name).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _is_link(path: Path) -> bool:
    try:
        return path.is_symlink()
    except (OSError, ValueError):  # a name too long, a NUL: not a link (other rules speak of it)
        return False


def _is_file(target: Path) -> bool:
    try:
        return target.is_file()
    except (OSError, ValueError):
        return False


def _plain_file_size(release: Path, file: str) -> int | None:
    """Size of ``release/file`` when it is a regular file (not a link) directly in ``release``.

    ``release`` is resolved and ``file`` a single name (no separator, not '.' or '..'), so such a
    file resolves to itself, inside the release: one lstat instead of resolve + is_file + stat.
    None for anything else (the caller resolves it).
    """
    if "/" in file or file in ("", ".", ".."):
        return None
    try:
        st = os.lstat(release / file)
    except (OSError, ValueError):  # ValueError: a NUL in the name; the slow path reports it as before
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


# --------------------------------------------------------------------------- wasm rules


def _check_module(ctx: _Ctx) -> None:
    m, cfg = ctx.manifest, ctx.config
    assert ctx.wasm is not None
    try:
        info = inspect_wasm(ctx.wasm, cfg.features)
    except WasmInspectionError as err:
        ctx.add("wasm-invalid", f"{m.artifact.file}: {err.what}", "artifact.file", err.fix)
        return
    ctx.info = info
    if info.is_component != (m.abi == "component"):
        kind = "a component" if info.is_component else "a core module"
        ctx.add(
            "abi-mismatch",
            f"{m.artifact.file} is {kind} but plugin.abi is {m.abi!r}",
            "plugin.abi",
            "set abi = 'component' for components, or build a core module (e.g. cargo build --target "
            "wasm32-wasip1 rather than cargo component)"
            if info.is_component
            else "set abi to the core module's ABI, or build a WASI 0.2 component",
        )
        return
    if not info.is_component:
        found = module_kind(
            m.abi,
            [(i.module, i.name) for i in info.imports],
            [e.name for e in info.exports],
            custom_section_names(ctx.wasm),
        )
        if found is not None:
            # One finding naming what the module is, instead of one per import it cannot link.
            ctx.add("module-kind", f"{m.artifact.file} {found.message}", "artifact.file", found.fix)
            return
    _check_imports(ctx, info)
    _EXPORT_RULES.get(m.abi, _exports_core)(ctx, info)
    _check_module_limits(ctx, info)


def _check_imports(ctx: _Ctx, info: ModuleInfo) -> None:
    m, cfg = ctx.manifest, ctx.config
    seen: set[tuple[str, str]] = set()
    wasi_refused: list[str] = []
    preview0: list[str] = []
    preview0_refusal: ImportRefusal | None = None
    for imp in info.imports:
        if (imp.module, imp.name) in seen:
            continue  # a module may import one name twice (two types): one finding is enough
        gate = gated_module(m.abi, imp.module)
        allowed = cfg.import_allowed(m.abi, m.permissions, gate, imp.name)
        signature = (imp.params, imp.results) if imp.kind == "func" else None
        decision = link_import(m.abi, imp.module, imp.name, imp.kind, allowed, signature)
        if decision.linked:
            continue  # a second import of the name (another type) is still checked
        seen.add((imp.module, imp.name))
        perm = cfg.granting_permission(gate, imp.name)
        refusal = import_refusal(m.abi, imp.module, imp.name, decision, allowed, perm)
        if imp.module == WASI_UNSTABLE and decision.fix:
            preview0.append(imp.name)  # one finding for all of them, below
            preview0_refusal = refusal
            continue
        if not allowed and not perm and imp.module == WASI and m.abi == "core":
            wasi_refused.append(imp.name)  # one finding for all of them, below
            continue
        if refusal.permission:
            field_ = f"permissions.{perm}" if perm in m.declared_permissions else "permissions"
            # Point at [permissions] when the manifest has one, else at the artifact that imports it.
            where = field_ if m.line_of("permissions") is not None else "artifact.file"
        else:
            where = "artifact.file" if allowed else "plugin.abi"
        ctx.add("import-not-allowed", f"import {imp} {refusal.message}", where, refusal.fix)
    if preview0_refusal is not None:
        # An old toolchain imports preview 0 throughout: one finding says what to rebuild with.
        ctx.add(
            "import-not-allowed",
            f"{m.artifact.file} imports {_listed(WASI_UNSTABLE, preview0)}, which {preview0_refusal.message}",
            "artifact.file",
            preview0_refusal.fix,
        )
    if wasi_refused:
        # A Go wasip1 build or C with stdio imports WASI throughout: "remove the import" cannot help.
        ctx.add(
            "import-not-allowed",
            f"{m.artifact.file} imports WASI ({_listed(WASI, wasi_refused)}), "
            "which the 'core' ABI does not link",
            "plugin.abi",
            CORE_WASI_FIX,
        )


def _listed(module: str, names: list[str]) -> str:
    """``module.a, b, c, d, e and N more``: a module's refused names, the first five of them."""
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{module}.{', '.join(names[:5])}{more}"


def _declared_funcs(
    ctx: _Ctx, info: ModuleInfo
) -> Iterator[tuple[int, str, tuple[str, ...], tuple[str, ...]]]:
    """Declared exports that exist as functions; reports the ones that do not."""
    for i, name in enumerate(ctx.manifest.exports):
        exp = info.export(name)
        if exp is None:
            hint = did_you_mean(name, [e.name for e in info.exports if e.kind == "func"])
            ctx.add(
                "missing-export",
                f"declared export {name!r} is not exported by {ctx.manifest.artifact.file}",
                f"exports.functions[{i}]",
                f"did you mean '{hint}'? Export that name or fix the spelling"
                if hint
                else "export the function from the module or remove it here",
            )
        elif exp.kind != "func":
            ctx.add(
                "missing-export",
                f"declared export {name!r} is a {exp.kind}, not a function",
                f"exports.functions[{i}]",
                "list only exported functions under [exports].functions",
            )
        else:
            yield i, name, exp.params, exp.results


def _exports_core(ctx: _Ctx, info: ModuleInfo) -> None:
    for i, name, params, results in _declared_funcs(ctx, info):
        bad = [t for t in (*params, *results) if t not in NUMERIC_TYPES]
        if bad:
            ctx.add(
                "export-signature",
                f"export {name!r} has signature [{', '.join(params)}] -> [{', '.join(results)}]; "
                f"the core ABI allows only i32/i64/f32/f64 (found {', '.join(sorted(set(bad)))})",
                f"exports.functions[{i}]",
                "pass bytes as (ptr, len) into exported memory instead of reference or vector types",
            )


def _exports_wasi_command(ctx: _Ctx, info: ModuleInfo) -> None:
    start = info.export("_start")
    if start is None or start.kind != "func":
        ctx.add(
            "missing-export",
            f"{ctx.manifest.artifact.file} does not export the WASI command entry point '_start'",
            "plugin.abi",
            "build as a WASI command (clang --target=wasm32-wasi with a main function)",
        )
    elif start.params or start.results:
        ctx.add(
            "export-signature",
            f"'_start' has signature {start.signature}; a WASI command needs [] -> []",
            "plugin.abi",
            "build as a WASI command (clang --target=wasm32-wasi with a main function)",
        )
    memory = info.export("memory")
    if memory is None or memory.kind != "memory":
        ctx.add(
            "missing-export",
            f"{ctx.manifest.artifact.file} does not export 'memory', which WASI needs",
            "plugin.abi",
            "export the module's memory as 'memory'",
        )
    for i, name, params, results in _declared_funcs(ctx, info):
        if name == "_start":
            continue
        if any(t not in NUMERIC_TYPES for t in (*params, *results)):
            ctx.add(
                "export-signature",
                f"export {name!r} has signature [{', '.join(params)}] -> [{', '.join(results)}]",
                f"exports.functions[{i}]",
                "exports may use only numeric types",
            )


def _exports_extism(ctx: _Ctx, info: ModuleInfo) -> None:
    spec = ABI_SPECS["extism"]
    assert spec.export_signatures is not None
    for i, name, params, results in _declared_funcs(ctx, info):
        if (params, results) not in spec.export_signatures:
            ctx.add(
                "export-signature",
                f"export {name!r} has signature [{', '.join(params)}] -> [{', '.join(results)}]; "
                "Extism plugin functions must be [] -> [i32] (or [] -> [])",
                f"exports.functions[{i}]",
                spec.export_fix,
            )


#: A Proxy-Wasm network (TCP) filter's callbacks, and an HTTP filter's (what smoke drives).
_PROXY_WASM_NETWORK = ("proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data")
_PROXY_WASM_HTTP = ("proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
                    "proxy_on_response_body")  # fmt: skip


def _exports_proxy_wasm(ctx: _Ctx, info: ModuleInfo) -> None:
    funcs = {e.name: e for e in info.exports if e.kind == "func"}
    file = ctx.manifest.artifact.file
    declared = set(ctx.manifest.exports)
    network = sorted(declared & set(_PROXY_WASM_NETWORK))
    if network and not declared & set(_PROXY_WASM_HTTP):
        # An SDK's filter exports every callback; the manifest says which it is.  A network
        # filter's tests would run its HTTP callbacks (the SDK then panics on the wrong context).
        ctx.add(
            "untested-callbacks",
            f"exports.functions declares a network (TCP) filter ({', '.join(network)}): "
            "smoke drives one HTTP request through a filter (docs/sandbox.md), so none of these is called",
            "exports.functions",
            "test the filter in its proxy; smoke can test only HTTP filters (leave [[tests]] out, or declare "
            "the HTTP callbacks if the filter is both)",
            severity=Severity.warning,
        )
    if not funcs.keys() & set(PROXY_WASM_VERSIONS):
        ctx.add(
            "missing-export",
            f"{file} exports no Proxy-Wasm ABI version "
            f"({' or '.join(PROXY_WASM_VERSIONS)}): it is not a Proxy-Wasm 0.2 filter",
            "plugin.abi",
            "build the filter with a Proxy-Wasm 0.2 SDK (e.g. proxy-wasm-go-sdk with Go >= 1.24)",
        )
    if "proxy_on_context_create" not in funcs:
        ctx.add(
            "missing-export",
            f"{file} does not export 'proxy_on_context_create', which every Proxy-Wasm host calls",
            "plugin.abi",
            "build the filter with a Proxy-Wasm 0.2 SDK",
        )
    # Envoy gives the plugin memory through 'malloc' when it exports one, else through
    # 'proxy_on_memory_allocate': AssemblyScript's proxy-runtime exports only malloc.
    allocator = next((funcs[n] for n in PROXY_WASM_ALLOCATORS if n in funcs), None)
    if allocator is None:
        ctx.add(
            "missing-export",
            f"{file} exports neither 'proxy_on_memory_allocate' nor 'malloc', one of which every Proxy-Wasm "
            "host allocates the plugin's memory with",
            "plugin.abi",
            "build the filter with a Proxy-Wasm 0.2 SDK",
        )
    # What Envoy calls before the root context, and refuses to load the filter for when its type
    # differs; a WASI command (_start, no _initialize) is a filter as good as a reactor.
    checked = [(funcs[n], PROXY_WASM_START_SIGNATURES[n]) for n in proxy_wasm_start(set(funcs))]
    checked += [(funcs[n], want) for n, want in PROXY_WASM_CALLBACK_SIGNATURES.items() if n in funcs]
    if allocator is not None:
        checked.append((allocator, PROXY_WASM_ALLOCATOR_SIGNATURE))
    for export, want in checked:
        if (export.params, export.results) != want:
            ctx.add(
                "export-signature",
                f"export {export.name!r} has signature {export.signature}; a Proxy-Wasm host calls it as "
                f"[{', '.join(want[0])}] -> [{', '.join(want[1])}] and refuses to load the filter otherwise",
                "plugin.abi",
                "build the filter with a Proxy-Wasm 0.2 SDK, or export the function with that type",
            )
    list(_declared_funcs(ctx, info))


def _exports_component(ctx: _Ctx, info: ModuleInfo) -> None:
    names = [e.name for e in info.exports]
    if not any(n.split("@")[0] == "wasi:cli/run" for n in names):
        ctx.add(
            "missing-export",
            f"the component does not export 'wasi:cli/run' (it exports: {', '.join(names) or 'nothing'})",
            "plugin.abi",
            "build a WASI 0.2 command component (e.g. cargo component / wasm-tools component new)",
        )
    for i, name in enumerate(ctx.manifest.exports):
        if name == "run" or any(n == name or n.split("@")[0] == name for n in names):
            continue
        ctx.add(
            "missing-export",
            f"declared export {name!r} is not exported by the component",
            f"exports.functions[{i}]",
            f"use one of: run, {', '.join(names)}",
        )


_EXPORT_RULES: dict[str, Callable[[_Ctx, ModuleInfo], None]] = {
    "core": _exports_core,
    "wasi-command": _exports_wasi_command,
    "extism": _exports_extism,
    "proxy-wasm": _exports_proxy_wasm,
    "component": _exports_component,
}


def _check_module_limits(ctx: _Ctx, info: ModuleInfo) -> None:
    limits = ctx.limits
    if limits.memory is not None and info.memory_min_bytes > limits.memory:
        ctx.add(
            "limit-exceeded",
            f"the module's initial memory {format_size(info.memory_min_bytes)} is above its memory limit "
            f"{format_size(limits.memory)}, so it can never be instantiated",
            "limits.memory" if ctx.manifest.declared_limits.memory is not None else "artifact.file",
            "raise limits.memory (within the registry maximum) or shrink the initial memory",
        )
    if limits.table_elements is not None and info.table_min_elements > limits.table_elements:
        ctx.add(
            "limit-exceeded",
            f"the module's initial table has {info.table_min_elements} elements, above the limit "
            f"{limits.table_elements}",
            "limits.table_elements"
            if ctx.manifest.declared_limits.table_elements is not None
            else "artifact.file",
            "shrink the table or raise limits.table_elements",
        )


# --------------------------------------------------------------------------- [[tests]] rules


def _check_smoke_budget(ctx: _Ctx) -> None:
    """[limits.max] tests_per_release and smoke_wall_time.

    Each test may run up to its wall_time limit, so the worst case of a smoke run is known
    before anything runs.
    """
    m, cfg = ctx.manifest, ctx.config
    count = len(m.tests)
    if count > cfg.max_tests_per_release:
        ctx.add(
            "smoke-budget",
            f"the release has {count} [[tests]], above the registry's limit of {cfg.max_tests_per_release}",
            "tests",
            f"keep at most {cfg.max_tests_per_release} tests (registry.toml [limits.max] tests_per_release)",
        )
        return
    wall = ctx.limits.wall_time
    if wall is not None and count * wall > cfg.max_smoke_wall_time:
        ctx.add(
            "smoke-budget",
            f"{count} tests x wall_time {wall:g}s = {count * wall:g}s can run longer than the registry's "
            f"smoke budget of {cfg.max_smoke_wall_time:g}s per release",
            "limits.wall_time" if m.declared_limits.wall_time is not None else "tests",
            "lower limits.wall_time or drop tests (registry.toml [limits.max] smoke_wall_time)",
        )


def _check_tests(ctx: _Ctx) -> None:
    m = ctx.manifest
    _check_smoke_budget(ctx)
    if not m.tests:
        ctx.add(
            "no-tests",
            "the release has no [[tests]]; the smoke harness cannot exercise it",
            "plugin",
            "add at least one [[tests]] entry with call/input/expect",
            severity=Severity.warning,
        )
    data = m.source.data.get("tests", []) if m.source else []
    named: dict[str, str] = {}
    for spec, raw in zip(m.tests, data, strict=True):
        prefix = spec.field_prefix
        if spec.name in named:
            # Reports, annotations and the catalog tell tests apart by name.
            ctx.add(
                "test-spec",
                f"{prefix} is named {spec.name!r}, as {named[spec.name]} is",
                f"{prefix}.name",
                "give every test its own name",
            )
        named.setdefault(spec.name, prefix)
        if "exit_code" in raw and "expect_trap" in raw:
            ctx.add(
                "test-spec",
                f"{prefix} sets both exit_code and expect_trap: exit_code is the code of a run that "
                "ends normally, which a test expecting a trap never checks",
                f"{prefix}.exit_code",
                'to expect a program\'s exit code, set exit_code alone (expect_trap = "exit_code" '
                "accepts any non-zero code)",
            )
        inputs = [k for k in INPUT_KEYS if k in raw]
        expects = [k for k in EXPECT_KEYS if k in raw]
        for group, keys in (("input", inputs), ("expectation", expects)):
            if len(keys) > 1:
                ctx.add(
                    "test-spec",
                    f"{prefix} sets more than one {group}: {', '.join(keys)}",
                    f"{prefix}.{keys[1]}",
                    f"keep only one of {', '.join(keys)}",
                )
        if "args" in raw and inputs:
            ctx.add(
                "test-spec", f"{prefix} sets both args and {inputs[0]}", f"{prefix}.args", "use one of them"
            )
        if isinstance(raw.get("expect_regex"), str):
            # The smoke worker compares with re.search: a pattern it cannot compile is a manifest error.
            try:
                re.compile(raw["expect_regex"])
            except (re.error, RecursionError, OverflowError) as err:
                ctx.add(
                    "test-spec",
                    f"{prefix}.expect_regex is not a valid Python regular expression ({err})"[:300],
                    f"{prefix}.expect_regex",
                    "fix the pattern (Python re syntax; escape literal metacharacters)",
                )
        for key, abis in ABI_ONLY_TEST_KEYS.items():
            if key in raw and m.abi not in abis:
                ctx.add(
                    "test-spec",
                    f"{prefix}.{key} only applies to the {'/'.join(abis)} ABI",
                    f"{prefix}.{key}",
                    f"remove {key} for {'an' if m.abi[:1] in 'aeiou' else 'a'} {m.abi} plugin",
                )
        if isinstance(raw.get("expect"), list) and m.abi != "core":
            ctx.add(
                "test-spec", f"{prefix}.{NUMERIC_EXPECT_CORE_ONLY}", f"{prefix}.expect", NUMERIC_EXPECT_FIX
            )
        for key in ("input_file", "expect_file"):
            if key in raw:
                _check_test_file(ctx, f"{prefix}.{key}", raw[key])
        _check_process_strings(ctx, raw, prefix)
        _check_test_call(ctx, spec.call, prefix, bool(inputs))
        _check_test_args(ctx, spec.call, raw.get("args"), f"{prefix}.args")
        _check_test_expect(ctx, spec.call, raw.get("expect"), f"{prefix}.expect")
        code, top = raw.get("exit_code"), _EXIT_CODE_MAX.get(m.abi)
        if isinstance(code, int) and top is not None and code > top[0]:
            ctx.add("test-args", f"{prefix}.exit_code {code} {top[1]}", f"{prefix}.exit_code", top[2])
        for i, step in enumerate(raw.get("steps", [])):
            if "args" in step and "input" in step:
                ctx.add(
                    "test-spec",
                    f"{prefix}.steps[{i}] sets both args and input",
                    f"{prefix}.steps",
                    "use one of them",
                )
            _check_test_call(ctx, step.get("call"), f"{prefix}.steps[{i}]", "input" in step)


_VERSION_NUMBER_MAX = 2**64 - 1  # format.rules.VERSION_NUMBER_MAX (not imported: start-up cost)

# The exit codes a run can end with: wasmtime's WASI traps on proc_exit(126..255) (reserved by
# shells), and WASI 0.2's exit carries only ok or error.
_EXIT_CODE_MAX: Mapping[str, tuple[int, str, str]] = {
    "wasi-command": (
        125,
        "cannot be reached: WASI programs exit with 0 to 125 (wasmtime traps on a higher status)",
        "expect a status from 0 to 125, or expect_trap for a program that exits with a higher one",
    ),
    "component": (
        1,
        "cannot be reached: a WASI 0.2 component's exit is ok (0) or error (1)",
        "expect exit_code 1 for any failure",
    ),
}


def _check_test_args(ctx: _Ctx, call: object, args: object, field_: str) -> None:
    """A core test's ``args`` fit the called export's parameters (smoke would refuse the call)."""
    if ctx.manifest.abi != "core" or ctx.info is None or not isinstance(args, list):
        return
    export = next((e for e in ctx.info.exports if e.name == call and e.kind == "func"), None)
    if export is None:
        return  # _check_test_call reports a call that is not an export
    if len(args) != len(export.params):
        ctx.add(
            "test-args",
            f"{field_} passes {len(args)} value(s), but export '{call}' takes {len(export.params)} "
            f"{export.signature}",
            field_,
            f"pass exactly {len(export.params)} argument(s), one per parameter",
        )
        return
    for value, kind in zip(args, export.params, strict=True):
        if kind in ("i32", "i64") and isinstance(value, float) and not value.is_integer():
            ctx.add(
                "test-args",
                f"{field_} passes {value!r} to an {kind} parameter of export '{call}'",
                field_,
                "pass an integer (floats go to f32/f64 parameters)",
            )
            return
        if not integer_fits(value, kind):
            ctx.add(
                "test-args",
                f"{field_} passes {value!r} to an {kind} parameter of export '{call}', which holds "
                f"{INTEGER_RANGES[kind][0]} to {INTEGER_RANGES[kind][1]}",
                field_,
                f"pass a value an {kind} holds (signed or unsigned)",
            )
            return


def _check_test_expect(ctx: _Ctx, call: object, expect: object, field_: str) -> None:
    """A core test's ``expect`` values fit the called export's results (else no run can match)."""
    if ctx.manifest.abi != "core" or ctx.info is None or not isinstance(expect, list):
        return
    export = next((e for e in ctx.info.exports if e.name == call and e.kind == "func"), None)
    if export is None or len(expect) != len(export.results):
        return
    for value, kind in zip(expect, export.results, strict=True):
        if not integer_fits(value, kind):
            ctx.add(
                "test-args",
                f"{field_} expects {value!r} from an {kind} result of export '{call}', which holds "
                f"{INTEGER_RANGES[kind][0]} to {INTEGER_RANGES[kind][1]}",
                field_,
                f"expect a value an {kind} holds (signed or unsigned)",
            )
            return


#: A test's expect = [numbers] is compared with a core export's results: no other ABI returns any.
NUMERIC_EXPECT_CORE_ONLY = "expect as a list of numbers only applies to the core ABI"
NUMERIC_EXPECT_FIX = 'compare output text with expect = "..."'


def process_string_problems(argv: object, env: object) -> list[tuple[str, str, str]]:
    """A test's argv and env as the module receives them: C strings, env as NAME=value.

    A NUL ends one early and an '=' in a name moves the split (``A=B`` = "x" arrived as
    A = "B=x"), and the test passed.  Returns (field under the test, message, fix) per problem;
    validate reports them and smoke refuses to run such a test.
    """
    problems: list[tuple[str, str, str]] = []
    for i, arg in enumerate(argv if isinstance(argv, list) else []):
        if isinstance(arg, str) and "\0" in arg:
            problems.append(
                (
                    "argv",
                    f"argv[{i}] holds a NUL character, which ends the argument early",
                    "remove the NUL: arguments are C strings",
                )
            )
    for name, value in (env if isinstance(env, dict) else {}).items():
        if "=" in name or "\0" in name or name == "":
            problems.append(
                (
                    "env",
                    f"env name {name!r} is empty or holds '=' or a NUL: the module would see another name",
                    "name variables without '=' and NUL",
                )
            )
        elif isinstance(value, str) and "\0" in value:
            problems.append(
                (
                    "env",
                    f"env.{name} holds a NUL character, which ends the value early",
                    "remove the NUL: environment values are C strings",
                )
            )
    return problems


def _check_process_strings(ctx: _Ctx, raw: Mapping[str, object], prefix: str) -> None:
    for field_, message, fix in process_string_problems(raw.get("argv"), raw.get("env")):
        ctx.add("test-spec", f"{prefix}.{message}", f"{prefix}.{field_}", fix)


def _check_test_file(ctx: _Ctx, field_: str, name: str) -> None:
    release = ctx.release
    if _CONTROL.search(name):
        ctx.add("test-spec", f"{field_} {name!r} holds a control character", field_, _PATH_FIX)
        return
    if is_reserved_name(name):
        ctx.add("reserved-name", f"{field_} {name!r} is a name reserved for metadata", field_, _RESERVED_FIX)
        return
    target = _resolve(release, name)
    if target is None:
        ctx.add(
            "test-spec",
            f"{field_} {name!r} cannot be resolved (a symlink loop, or a name too long)",
            field_,
            _PATH_FIX,
        )
    elif PurePosixPath(name).is_absolute() or not target.is_relative_to(release):
        ctx.add("test-spec", f"{field_} {name!r} leaves the release directory", field_, _PATH_FIX)
    elif ".." in PurePosixPath(name).parts:
        # The kernel resolves it, not the text: smoke's open refused what this check let through.
        ctx.add("test-spec", f"{field_} {name!r} steps up with '..'", field_, _PATH_FIX)
    elif _is_link(release / name):
        ctx.add(
            "test-spec",
            f"{field_} {name!r} is a symbolic link, which smoke never follows",
            field_,
            "replace the link by the file itself",
        )
    elif not _is_file(target):
        ctx.add("test-spec", f"{field_} {name!r} does not exist", field_, "add the file or fix its name")
    elif (size := target.stat().st_size) > MAX_TEST_FILE_BYTES:
        ctx.add(
            "test-spec",
            f"{field_} {name!r} is {size} bytes, more than the {MAX_TEST_FILE_BYTES // (1024 * 1024)} MiB "
            "a test file may have (smoke reads it into memory for every test)",
            field_,
            "test with a smaller sample of the data",
        )


def _check_test_call(ctx: _Ctx, call: str | None, prefix: str, has_bytes_input: bool) -> None:
    m, info = ctx.manifest, ctx.info
    spec = ABI_SPECS.get(m.abi)
    default_ok = spec is not None and spec.default_call is not None
    if m.abi == "proxy-wasm":
        if call is not None:
            ctx.add(
                "test-spec",
                f"{prefix}.call is set, but a Proxy-Wasm test drives the filter's whole lifecycle",
                f"{prefix}.call",
                "remove call; describe the request with request_headers/input and the expected result",
            )
        return
    if call is None:
        if not default_ok:
            ctx.add(
                "test-spec", f"{prefix} has no 'call'", prefix, f"set call to one of: {', '.join(m.exports)}"
            )
        return
    allowed = (
        set(m.exports)
        | ({"_start"} if m.abi == "wasi-command" else set())
        | ({"run"} if m.abi == "component" else set())
    )
    if call not in allowed:
        hint = did_you_mean(call, allowed)
        ctx.add(
            "test-spec",
            f"{prefix}.call {call!r} is not a declared export",
            f"{prefix}.call",
            f"did you mean '{hint}'? Call that export"
            if hint
            else f"call one of: {', '.join(sorted(allowed))}",
        )
    if m.abi == "core" and has_bytes_input and info is not None:
        kinds = {e.name: e.kind for e in info.exports}
        has_alloc = "func" in (kinds.get("alloc"), kinds.get("malloc"))
        has_memory = kinds.get("memory") == "memory"
        if not (has_alloc and has_memory):
            ctx.add(
                "test-spec",
                f"{prefix} passes bytes, but the module does not export 'memory' and 'alloc' (or 'malloc')",
                f"{prefix}",
                "export memory and an alloc(len) -> ptr function, or use numeric args",
            )
            return
        # The one the harness calls (alloc first): one integer in (the length), one out (the pointer).
        alloc = next(e for e in info.exports if e.kind == "func" and e.name in ("alloc", "malloc"))
        alloc = next((e for e in info.exports if e.kind == "func" and e.name == "alloc"), alloc)
        if alloc.params not in (("i32",), ("i64",)) or alloc.results not in (("i32",), ("i64",)):
            ctx.add(
                "test-spec",
                f"{prefix} passes bytes through '{alloc.name}', whose signature is {alloc.signature}",
                f"{prefix}",
                f"export {alloc.name}(len) -> ptr with one integer parameter and one integer result",
            )


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class CheckedRelease:
    """A release checked by every rule, with what the rules read (so callers need not read it again)."""

    result: CheckResult
    manifest: Manifest | None  # None when plugin.toml could not be parsed
    wasm: bytes | None  # the artifact bytes the digest and module rules checked, None if not read
    wasm_sha256: str | None = None  # their sha256 (hex)
    limits: Limits | None = None  # the effective limits (declared over the registry's), None when not parsed


def validate_release(release_dir: Path, config: RegistryConfig) -> CheckResult:
    """Check one release directory against every rule; never raises for a bad release."""
    from registry_tool.format.rules import YANK

    checked = check_release(release_dir, config)
    yank = release_dir / YANK
    if checked.manifest is not None and os.path.lexists(yank):
        checked.result.findings.extend(
            yank_findings(yank, display_path(yank), checked.manifest.name, checked.manifest.version)
        )
    return checked.result


#: A yank.toml is a few lines: read bounded like plugin.toml, never through a link.
MAX_YANK_BYTES = 64 * 1024


def yank_findings(yank: Path, yank_rel: str, name: str, version: str) -> list[Finding]:
    """What is wrong with the yank.toml ``yank`` of release ``name`` ``version``, its signatures aside.

    validate and ci check report these; the build refuses a yank that names another release or
    gives a longer reason.
    """
    from registry_tool._files import UnreadableFileError, UnsafePathError, read_bounded
    from registry_tool.format.rules import MAX_YANK_REASON

    try:
        # A yank.toml is a few lines: bounded like plugin.toml, never through a link.
        raw = read_bounded(yank, MAX_YANK_BYTES, "yank.toml", follow_symlinks=False)
    except (UnreadableFileError, UnsafePathError) as err:
        return [
            Finding(rule="yank-invalid", message=err.what, file=yank_rel, fix="keep yank.toml a small file")
        ]
    try:
        src = parse_toml(yank, raw)
    except TomlSyntaxError as err:
        return [
            Finding(
                rule="yank-invalid",
                message=f"yank.toml is not valid TOML: {err}",
                file=yank_rel,
                line=err.line,
                column=err.column,
                fix="correct the TOML syntax",
            )
        ]
    findings: list[Finding] = []

    def add(message: str, field_: str, fix: str, near: str | None = None) -> None:
        # On the key's line when the file spells it (else its table's, else line 1 for the annotation).
        line = src.line_of(near or field_)
        findings.append(
            Finding(
                "yank-invalid",
                message,
                file=yank_rel,
                line=line or 1,
                field=field_ if line else None,
                fix=fix,
            )
        )

    table = src.data.get("yank")
    table = table if isinstance(table, dict) else {}
    for field_, expected in (("name", name), ("version", version)):
        if table.get(field_) != expected:
            add(
                f"yank.{field_} is {table.get(field_)!r}, expected {expected!r}",
                f"yank.{field_}",
                "a yank names exactly the release folder it is in",
            )
    reason = table.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_YANK_REASON:
        add(
            f"yank.reason is {len(reason)} characters, above the {MAX_YANK_REASON} the plugin document "
            "allows",
            "yank.reason",
            "say it shorter: link to an advisory for the details",
        )
    if not isinstance(table.get("reason"), str) or not table["reason"].strip():
        add(
            "yank.reason is missing",
            "yank.reason",
            'say why, e.g. reason = "CVE-2026-1234: ..."',
            near="yank",
        )
    elif hidden := hidden_characters(table["reason"], "\n\t"):
        add(
            f"yank.reason holds control or bidi override characters ({', '.join(hidden)})",
            "yank.reason",
            "remove them: every client shows the reason when it refuses the release",
        )
    return findings


#: Rules for what a maintainer submits now, not for what is already published: the build does not
#: refuse a release for them (an index signed before they existed must still build; the build
#: publishes such a release as every verifier reads it: whole milliseconds rounded a half away
#: from zero, text escaped wherever it is shown).  validate and ci check report them as errors.
NEW_RELEASE_RULES = frozenset(
    {"text-field", "limit-precision", "reserved-name", "test-args", "host-grammar", "artifact-extension"}
)


def check_release(
    release_dir: Path, config: RegistryConfig, *, resolved: Path | None = None
) -> CheckedRelease:
    """``validate_release``, also handing back the parsed manifest and the artifact bytes it checked.

    The build publishes exactly these bytes: one read and one parse per release.  ``resolved``
    is the release folder with every symbolic link resolved when the caller knows it (the build
    resolves ``plugins/`` once and refuses links below it): resolving costs a system call per
    path component, as much as some rules.
    """
    # The common case first: RELEASE_DIR/plugin.toml is a regular file, read in one open (see
    # ``read_plain``), which also proves RELEASE_DIR a folder and plugin.toml no link.  Anything
    # else takes the general path below, which decides and explains it.
    # Bounded: a 3 GB plugin.toml (a few MB of zeros in git) was read whole, then refused, or
    # ended the process out of memory.  One over the cap takes the general path, which says so.
    quick = read_plain(f"{release_dir}/{MANIFEST_FILE}", MAX_MANIFEST_BYTES)
    if quick is not None and quick[1] is not None:
        path = release_dir / MANIFEST_FILE
        release = resolved if resolved is not None else release_dir.resolve()
        relfile = _display_resolved(release / MANIFEST_FILE, str(path))
        result = CheckResult(subject=_display_resolved(release, str(release_dir)), file=relfile)
        return _check_parsed(path, quick[1], relfile, result, config, release)
    path = release_dir / MANIFEST_FILE if release_dir.is_dir() else release_dir
    release = resolved if resolved is not None else path.parent.resolve()
    # plugin.toml resolves under its resolved folder unless it is itself a link (refused below).
    resolved = path.resolve() if path.is_symlink() else release / path.name
    relfile = _display_resolved(resolved, str(path))
    result = CheckResult(subject=_display_resolved(release, str(path.parent)), file=relfile)
    if path.is_symlink():
        # The signed bytes must be the file in the index, not whatever a link points at later.
        result.findings.append(
            Finding(
                "symlink",
                f"{MANIFEST_FILE} is a symbolic link (to {path.readlink()})",
                file=relfile,
                fix=f"replace the link with the real {MANIFEST_FILE}",
            )
        )
        return CheckedRelease(result, None, None)
    try:
        raw = read_manifest_bytes(path)  # bounded and non-blocking: a FIFO or a device is refused
    except UnreadableFileError as err:
        finding = manifest_read_finding(err, path)
        result.findings.append(Finding(finding.rule, finding.message, file=relfile, fix=finding.fix))
        return CheckedRelease(result, None, None)
    return _check_parsed(path, raw, relfile, result, config, release)


def _check_parsed(
    path: Path, raw: bytes, relfile: str, result: CheckResult, config: RegistryConfig, release: Path
) -> CheckedRelease:
    """Every rule on plugin.toml's bytes ``raw``, read from ``path`` in the folder ``release`` (resolved)."""
    manifest, findings = parse_manifest(path, raw, relfile)
    result.findings.extend(findings)
    if manifest is None:
        return CheckedRelease(result, None, None)
    ctx = _Ctx(manifest, config, relfile, release)
    _check_metadata(ctx)
    _check_artifact(ctx)
    if ctx.wasm is not None:
        _check_module(ctx)
    _check_tests(ctx)
    ctx.close()
    result.findings.extend(ctx.findings)
    result.data = _result_data(ctx)
    return CheckedRelease(result, manifest, ctx.wasm, ctx.wasm_sha256, ctx.limits)


def _result_data(ctx: _Ctx) -> dict[str, object]:
    m = ctx.manifest
    data: dict[str, object] = {"name": m.name, "version": m.version, "abi": m.abi, "tests": len(m.tests)}
    if ctx.wasm is not None:
        data["artifact"] = {
            "file": m.artifact.file,
            "sha256": ctx.wasm_sha256,
            "size": len(ctx.wasm),
        }
    if ctx.info is not None:
        data["imports"] = [f"{i.module}.{i.name}" if i.name else i.module for i in ctx.info.imports]
        data["exports"] = [e.name for e in ctx.info.exports]
    return data


def find_releases(path: Path) -> list[Path]:
    """Release directories (holding plugin.toml) at or below ``path``, sorted."""
    if path.is_file():
        return [path.parent] if path.name == MANIFEST_FILE else []
    if (path / MANIFEST_FILE).is_file():
        return [path]
    found: list[Path] = []
    for manifest in path.rglob(MANIFEST_FILE):
        rel_parts = manifest.relative_to(path).parts
        if not any(p in _SKIP_DIRS or p.startswith(".") for p in rel_parts[:-1]):
            found.append(manifest.parent)
    return sorted(found)


def find_symlinked_dirs(path: Path) -> list[Path]:
    """Directories below ``path`` that are symbolic links (release discovery never follows them).

    A link that leads nowhere (dangling, or a loop such as ``2.0.0 -> 2.0.0``) is listed too:
    os.walk counts it as a file, and the build refuses every link under plugins/.
    """
    if not path.is_dir():
        return []
    found: list[Path] = []
    for root, dirs, files in os.walk(path, followlinks=False):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        found.extend(Path(root) / d for d in dirs if (Path(root) / d).is_symlink())
        files = [f for f in files if f not in _SKIP_DIRS and not f.startswith(".")]
        found.extend(
            Path(root) / f for f in files if (Path(root) / f).is_symlink() and not _exists(Path(root) / f)
        )
    return sorted(found)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, RuntimeError):  # a loop: RuntimeError on Python 3.11's pathlib
        return False


def _symlink_result(link: Path) -> CheckResult:
    return CheckResult(
        subject=display_path(link),
        findings=[
            Finding(
                "symlink",
                f"{display_path(link)} is a symbolic link to {link.readlink()}; releases behind it are "
                "not validated, built or published",
                file=display_path(link),
                fix="replace the link with a real directory inside the index",
            )
        ],
    )


def _config_result(config_path: Path) -> tuple[RegistryConfig | None, CheckResult]:
    result = CheckResult(subject=display_path(config_path), file=display_path(config_path))
    try:
        config = load_registry_config(config_path)
    except RegistryConfigError as err:
        result.findings.extend(
            Finding(
                f.rule,
                f.message,
                f.severity,
                display_path(Path(f.file)) if f.file else None,
                f.line,
                f.column,
                f.field,
                f.fix,
            )
            for f in err.findings
        )
        return None, result
    result.data = {
        "name": config.name,
        "host": {"name": config.host_name, "versions": config.host_versions},
        "allowed_abis": list(config.allowed_abis),
        "permissions": sorted(config.permissions),
    }
    return config, result


def validate_paths(paths: list[Path], *, config_path: Path | None = None) -> Report:
    """Validate an index dir, a plugins dir, release dirs or plugin.toml files (any mix).

    registry.toml is ``config_path`` or found by walking up from each path; it is checked
    too and reported as its own result.  Raises ``UsageError`` for a path that does not
    exist or holds no release and no registry.toml.
    """
    report = Report(command="validate")
    configs: dict[Path, RegistryConfig | None] = {}
    seen: set[Path] = set()
    for path in paths:
        if (why := unreachable(path)) is not None:
            fix = "pass an index, plugins or release directory"
            raise UsageError(f"{path} {why}", where=str(path), fix=fix)
        cfg_file = find_registry_config(config_path if config_path is not None else path)
        if cfg_file not in configs:
            configs[cfg_file], cfg_result = _config_result(cfg_file)
            report.results.append(cfg_result)
        releases = find_releases(path)
        if (
            not releases
            and not (path.is_dir() and (path / CONFIG_FILE).is_file())
            and not _same(path, cfg_file)
        ):
            raise UsageError(
                f"no {MANIFEST_FILE} found in {path}",
                where=str(path),
                fix="pass the index directory, its plugins/ directory or a release directory",
            )
        config = configs[cfg_file]
        links = find_symlinked_dirs(path)
        report.results.extend(_symlink_result(link) for link in links)
        reported = {str(link) for link in links}
        report.results.extend(
            _unsafe_result(err) for err in _tree_problems(path) if _where(err) not in reported
        )
        for release in releases:
            key = release.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                tree.list_files(str(release))
                unsafe = None
            except UnsafeIndexPathError as err:
                unsafe = None if _where(err) in reported else _unsafe_finding(err)
            except OSError:
                unsafe = None  # an unreadable folder: the rules that read it say so
            if config is None:
                report.results.append(
                    CheckResult(
                        subject=display_path(release),
                        file=display_path(release / MANIFEST_FILE),
                        findings=[
                            Finding(
                                "registry-config",
                                f"not checked: {display_path(cfg_file)} is invalid",
                                file=display_path(cfg_file),
                                fix=f"fix {CONFIG_FILE} first",
                            )
                        ],
                    )
                )
            else:
                report.results.append(validate_release(release, config))
            if unsafe is not None:
                report.results[-1].findings.append(unsafe)
    return report


def _same(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file (``registry.toml`` and ``./registry.toml`` and its full path)."""
    try:
        return a == b or a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def _tree_problems(path: Path) -> list[UnsafeIndexPathError]:
    """What the build's scan refuses above the release folders of an index, plugins/ or a plugin folder.

    The build stops at the first; here each plugin folder is looked at, so that one report names
    every plugin folder the build would refuse.
    """
    plugin: str | None = None
    if (path / CONFIG_FILE).is_file():  # an index: what its plugins/ is decides first
        try:
            tree.has_plugins_folder(str(path / "plugins"))
        except UnsafeIndexPathError as err:
            return [err]
    if (path / "plugins").is_dir() and not (path / "plugins").is_symlink():
        plugins: Path | None = path / "plugins"
    elif path.name == "plugins" and path.is_dir() and not path.is_symlink():
        plugins = path
    elif path.parent.name == "plugins" and path.is_dir() and not path.is_symlink():
        plugins, plugin = None, str(path)
    else:
        return []
    problems: list[UnsafeIndexPathError] = []
    try:
        if plugins is not None:
            try:
                folders = [folder for _, folder in tree.plugin_folders(str(plugins))]
            except UnsafeIndexPathError as err:
                problems.append(err)
                with os.scandir(plugins) as entries:
                    folders = sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
        else:
            folders = [plugin] if plugin is not None else []
        for folder in folders:
            try:
                tree.version_folders(folder)
            except UnsafeIndexPathError as err:
                problems.append(err)
    except OSError:
        pass  # an unreadable folder: its releases are not found, which the report shows
    return problems


def _where(err: UnsafeIndexPathError) -> str:
    return str(Path(err.where.file)) if err.where is not None and err.where.file else ""


def _unsafe_finding(err: UnsafeIndexPathError) -> Finding:
    where = _where(err)
    return Finding(err.code, err.what, file=display_path(Path(where)) if where else None, fix=err.fix)


def _unsafe_result(err: UnsafeIndexPathError) -> CheckResult:
    finding = _unsafe_finding(err)
    return CheckResult(subject=finding.file or "plugins", file=finding.file, findings=[finding])
