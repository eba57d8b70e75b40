"""``registry-tool client ...``: the verify-on-install client for people (thin over registry_tool.client)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool.errors import UsageError
from registry_tool.report import CheckResult, OutputFormat, Report

client_app = typer.Typer(
    help="Install plugins from a registry, verifying every signature and digest on the way.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        "-r",
        envvar="REGISTRY_TOOL_REGISTRY",
        help="Registry URL (the folder holding registry.json): http(s):// or file://.",
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", "-d", envvar="REGISTRY_TOOL_PLUGIN_DIR", help="Plugin directory [default: user data dir]."
    ),
]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="REGISTRY_TOOL_STATE_DIR",
        help="Trust state directory [default: user state dir].",
    ),
]
MirrorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mirror",
        help="Mirror URL tried after the registry URL (repeatable); mirrors can only deny service.",
    ),
]
DeadlineOption = Annotated[
    float,
    typer.Option("--deadline", min=0.1, help="Seconds allowed for downloading any one file."),
]
TotalDeadlineOption = Annotated[
    float,
    typer.Option(
        "--total-deadline",
        min=0.1,
        help="Seconds allowed for all downloads of this command together (N slow files cannot add up).",
    ),
]
# FetchPolicy's defaults, restated so that parsing the command line does not import the client
# (requests); tests/client/test_cli_answers.py holds them equal.
DEADLINE = 120.0
TOTAL_DEADLINE = 600.0
AllowOption = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Approve permissions, comma-separated (e.g. keys,network)."),
]


def _host_version(value: str | None) -> str | None:
    """--host-version must be a semver version: a bad one would otherwise crash every range match."""
    from registry_tool.manifest.versions import VersionError, parse_version

    if value is not None:
        try:
            parse_version(value)
        except VersionError as err:
            raise typer.BadParameter(f"{err}; e.g. --host-version 0.4.1") from None
    return value


HostOption = Annotated[
    str | None,
    typer.Option(
        "--host-version",
        callback=_host_version,
        help="Install only releases compatible with this host version.",
    ),
]
RegistryConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--registry-config",
        help="The registry's registry.toml: its permission vocabulary makes the import check exact.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``client`` sub-app to the root app."""
    app.add_typer(client_app, name="client")


# --------------------------------------------------------------------------- helpers


def _dir(value: Path | None) -> Path:
    from registry_tool.client import default_plugin_dir

    return value or default_plugin_dir()


def _open(
    url: str | None,
    state_dir: Path | None,
    mirrors: list[str] | None,
    deadline: float,
    total_deadline: float = TOTAL_DEADLINE,
    registry_config: Path | None = None,
) -> Any:
    from registry_tool.client import FetchPolicy, Registry

    if not url:
        raise UsageError("no registry given", fix="pass --registry URL or set REGISTRY_TOOL_REGISTRY")
    vocabulary = None
    if registry_config is not None:  # read before any download: a bad file fails fast
        from registry_tool.manifest.config import load_registry_config

        vocabulary = load_registry_config(registry_config).permissions
    policy = FetchPolicy(deadline=deadline, total_deadline=total_deadline)
    reg = Registry.open(url, state_dir=state_dir, mirrors=mirrors or (), policy=policy)
    reg.vocabulary = vocabulary
    return reg


def _lockfile_registry(plugin_dir: Path) -> str | None:
    """The one registry the lockfile's plugins came from (for update/--locked without --registry)."""
    from registry_tool.client import list_installed

    urls = {e.registry for e in list_installed(plugin_dir)}
    if len(urls) > 1:
        raise UsageError(
            f"the plugins in {plugin_dir} come from several registries: {', '.join(sorted(urls))}",
            fix="pass --registry to pick one",
        )
    return next(iter(urls), None)


def _allowed(values: list[str] | None) -> set[str]:
    return {p.strip() for v in values or () for p in v.split(",") if p.strip()}


def _interactive() -> bool:
    return sys.stdin.isatty()


def _prompt(release: Any, missing: frozenset[str]) -> bool:
    """Ask on a terminal only; with no terminal, approval must come from --allow."""
    if not _interactive():
        return False
    typer.echo(
        f"{release.name} {release.version} asks for permission(s): {', '.join(sorted(missing))} "
        "(the union for every plugin this install fetches)",
        err=True,
    )
    # Not typer.confirm: click reads the answer with input(" "), which writes that space to stdout,
    # into the report a --format json reader parses.
    sys.stderr.write("Grant them and install? [y/N]: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _items_report(
    command: str,
    key: str,
    items: list[dict[str, Any]],
    subject: Callable[[dict[str, Any]], str],
    notices: list[str] | None = None,
    **facts: Any,
) -> Report:
    """One result per item (a plugin, a release, a lockfile entry), the items also under ``key``.

    ``key`` is the list's name in the JSON the client commands printed before they shared the
    report format (``installed``, ``plugins``, ...); format_version 1 keeps every key it had.
    """
    report = Report(command, notices=list(notices or ()), data={key: items, **facts})
    report.results = [CheckResult(subject=subject(item), data=item) for item in items]
    return report


def _name_version(item: dict[str, Any]) -> str:
    return f"{item.get('name')} {item.get('version')}"


def _read_root(root: Path) -> tuple[bytes, list[str] | None]:
    """The --root file and the signature files next to it, each bounded and regular files only."""
    from registry_tool._files import read_bounded
    from registry_tool.client.fetch import MAX_ROOT_SIZE, MAX_SIGNATURE_SIZE

    data = read_bounded(root, MAX_ROOT_SIZE, "root file")
    local = sorted(root.parent.glob(f"{root.name}*.minisig"))
    sigs = [
        read_bounded(p, MAX_SIGNATURE_SIZE, "signature file").decode("utf-8", errors="surrogateescape")
        for p in local
    ]
    return data, sigs or None


def _release_json(rel: Any) -> dict[str, Any]:
    return {"name": rel.name, "version": rel.version, **rel.to_json()}


# --------------------------------------------------------------------------- commands


@client_app.command("trust")
@handle_errors
def trust_cmd(
    url: Annotated[str, typer.Argument(help="Registry URL.")],
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Root file obtained out of band (e.g. from the index repository)."),
    ] = None,
    root_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--root-fingerprint",
            help="sha256 of the root file to confirm (of root/1.root.json when no --root is given).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Discard the trusted state and pin this root.")
    ] = False,
    state_dir: StateOption = None,
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Pin a registry's root of trust (first use); afterwards the client walks newer roots itself."""
    from registry_tool.client import FetchPolicy, trust
    from registry_tool.client.trust_state import fingerprint

    if root is None and root_fingerprint is None:
        raise UsageError(
            "give --root ROOT_FILE, --root-fingerprint SHA256, or both (the file is then checked against it)",
            fix="see `registry-tool client trust --help`",
        )
    root_bytes, sigs = _read_root(root) if root is not None else (None, None)
    state = trust(
        url,
        root_bytes=root_bytes,
        root_signatures=sigs,
        fingerprint=root_fingerprint,
        state_dir=state_dir,
        replace=replace,
        policy=FetchPolicy(deadline=deadline, total_deadline=total_deadline),
    )
    item = {
        "url": state.url,
        "root_version": state.root_version,
        "highest_registry_version": state.highest_version,
        # The fingerprint of the root the user confirmed (what --root-fingerprint takes, as `root
        # verify` and the catalog show it); the root the walk reached has its own digest.
        "root_fingerprint": (
            fingerprint(root_bytes) if root_bytes is not None else str(root_fingerprint).strip().lower()
        ),
        "trusted_root_sha256": fingerprint(state.root_bytes),
    }
    emit(_items_report("client trust", "trusted", [item], lambda i: str(i["url"])), fmt)


@client_app.command("search")
@handle_errors
def search_cmd(
    query: Annotated[str, typer.Argument(help="Words to look for in names, descriptions and keywords.")] = "",
    registry: RegistryOption = None,
    include_yanked: Annotated[
        bool, typer.Option("--include-yanked", help="Also list plugins whose every release is yanked.")
    ] = False,
    state_dir: StateOption = None,
    mirror: MirrorOption = None,
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Search the verified registry; shows the newest release of each match."""
    found = _open(registry, state_dir, mirror, deadline, total_deadline).search(
        query, include_yanked=include_yanked
    )
    emit(_items_report("client search", "plugins", [_release_json(r) for r in found], _name_version), fmt)


@client_app.command("info")
@handle_errors
def info_cmd(
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    registry: RegistryOption = None,
    state_dir: StateOption = None,
    mirror: MirrorOption = None,
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Every release of a plugin: versions, permissions, host compatibility, yanks, signers."""
    releases = _open(registry, state_dir, mirror, deadline, total_deadline).info(name)
    items = [_release_json(r) for r in releases]
    emit(_items_report("client info", "releases", items, _name_version), fmt)


@client_app.command("install")
@handle_errors
def install_cmd(
    specs: Annotated[
        list[str] | None,
        typer.Argument(help="NAME, NAME@1.2.3 or NAME@^1.2 (none with --locked: everything locked)."),
    ] = None,
    registry: RegistryOption = None,
    plugin_dir: DirOption = None,
    allow: AllowOption = None,
    host_version: HostOption = None,
    locked: Annotated[
        bool, typer.Option("--locked", help="Install exactly what the lockfile records.")
    ] = False,
    registry_config: RegistryConfigOption = None,
    state_dir: StateOption = None,
    mirror: MirrorOption = None,
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Resolve, verify and atomically install plugins; records them in the lockfile."""
    target = _dir(plugin_dir)
    if locked:
        reg = _open(
            registry or _lockfile_registry(target),
            state_dir,
            mirror,
            deadline,
            total_deadline,
            registry_config,
        )
        entries = reg.install_locked(target, specs or ())
    else:
        if not specs:
            raise UsageError("nothing to install", fix="name a plugin, e.g. `client install NAME@^1.0`")
        reg = _open(registry, state_dir, mirror, deadline, total_deadline, registry_config)
        result = reg.install_plan(
            specs, target, allow=_allowed(allow), prompt=_prompt, host_version=host_version
        )
        entries = [result.entries[n] for n in result.plan.order()]
        items = [e.to_json() for e in entries]
        report = _items_report(
            "client install",
            "installed",
            items,
            _name_version,
            reg.notices,
            plan=result.plan_json(),
            plugin_dir=str(target),
        )
        emit(report, fmt)
    items = [e.to_json() for e in entries]
    emit(
        _items_report(
            "client install", "installed", items, _name_version, reg.notices, plugin_dir=str(target)
        ),
        fmt,
    )


@client_app.command("update")
@handle_errors
def update_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Plugins to update [default: all].")] = None,
    registry: RegistryOption = None,
    plugin_dir: DirOption = None,
    allow: AllowOption = None,
    host_version: HostOption = None,
    registry_config: RegistryConfigOption = None,
    state_dir: StateOption = None,
    mirror: MirrorOption = None,
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Update installed plugins within their recorded requirement; more permissions are asked for again."""
    target = _dir(plugin_dir)
    reg = _open(
        registry or _lockfile_registry(target), state_dir, mirror, deadline, total_deadline, registry_config
    )
    changes = reg.update(
        target, names or (), allow=_allowed(allow), prompt=_prompt, host_version=host_version
    )
    items = [
        {"name": new.name, "from": old.version, "to": new.version, "entry": new.to_json()}
        for old, new in changes
    ]
    emit(_items_report("client update", "updated", items, lambda i: str(i["name"]), reg.notices), fmt)


@client_app.command("list")
@handle_errors
def list_cmd(plugin_dir: DirOption = None, fmt: FormatOption = OutputFormat.text) -> None:
    """Installed plugins, as the lockfile records them."""
    from registry_tool.client import list_installed

    entries = list_installed(_dir(plugin_dir))
    emit(_items_report("client list", "plugins", [e.to_json() for e in entries], _name_version), fmt)


@client_app.command("remove")
@handle_errors
def remove_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Plugins to remove.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Remove even when installed plugins depend on it.")
    ] = False,
    orphans: Annotated[
        bool,
        typer.Option(
            "--orphans", help="Also remove plugins installed only as dependencies that nothing needs."
        ),
    ] = False,
    plugin_dir: DirOption = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Remove installed plugins: the files their lockfile entries list, then the entries (one lockfile write).

    Refused while other installed plugins depend on one of them, unless --force.
    """
    from registry_tool.client import remove_many

    if not names and not orphans:
        raise UsageError("nothing to remove", fix="name the plugins to remove, or pass --orphans")
    target = _dir(plugin_dir)
    removed = remove_many(target, names or (), force=force, orphans=orphans)
    emit(_items_report("client remove", "removed", [e.to_json() for e in removed], _name_version), fmt)


@client_app.command("verify")
@handle_errors
def verify_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Plugins to check [default: all].")] = None,
    plugin_dir: DirOption = None,
    state_dir: StateOption = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Re-check installed plugins offline: files against the lockfile, signatures against the trusted root."""
    from registry_tool.client import default_state_dir, verify_installed

    emit(verify_installed(_dir(plugin_dir), names or (), state_dir=state_dir or default_state_dir()), fmt)


@client_app.command("verify-site")
@handle_errors
def verify_site_cmd(
    site: Annotated[str, typer.Argument(help="Registry URL or the folder of a built site.")],
    root: Annotated[
        Path, typer.Option("--root", help="Root file obtained out of band (signatures next to it).")
    ],
    deadline: DeadlineOption = DEADLINE,
    total_deadline: TotalDeadlineOption = TOTAL_DEADLINE,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Verify every release a registry serves as `install` would, with one root walk (nothing written)."""
    from registry_tool.client import FetchPolicy, verify_site

    root_bytes, sigs = _read_root(root)
    policy = FetchPolicy(deadline=deadline, total_deadline=total_deadline)
    emit(verify_site(site, root_bytes=root_bytes, root_signatures=sigs, policy=policy), fmt)
