"""CLI commands for the build area: ``build`` and ``resign`` (thin wrappers over registry_tool.registry)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from registry_tool._cli import FormatOption, emit, handle_errors
from registry_tool.errors import UsageError
from registry_tool.report import OutputFormat

KeyOption = Annotated[
    list[Path],
    typer.Option(
        "--key",
        "-k",
        help="Index secret key (minisign format). Repeat for a k-of-n index threshold.",
        exists=False,
    ),
]
PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        help="Name of an environment variable holding the key passphrase (else a prompt on a TTY).",
    ),
]
VersionOption = Annotated[
    int | None,
    typer.Option(
        "--registry-version",
        min=1,
        max=2**53,  # registry.json's integers (format.strictjson.MAX_SAFE_INTEGER)
        help="Explicit registry version; must exceed the published one.",
    ),
]


def clock(environ: Mapping[str, str]) -> tuple[datetime, datetime]:
    """(document clock, verification clock): SOURCE_DATE_EPOCH pins the first, never the second."""
    real = datetime.now(UTC).replace(microsecond=0)
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch is None or epoch == "":
        return real, real
    try:
        return datetime.fromtimestamp(int(epoch), UTC), real
    except (ValueError, OverflowError):
        raise UsageError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not an integer number of seconds",
            fix="set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)",
        ) from None


def load_keys(paths: list[Path], passphrase_env: str | None) -> list[Any]:
    """The index secret keys, with the passphrase rules every signing command uses."""
    from registry_tool.signing.keyfiles import load_secret_key

    if not paths:
        raise UsageError("no index key given", fix="pass --key INDEX_KEY")
    return [load_secret_key(path, passphrase_env) for path in paths]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; otherwise no callback at all."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]build"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,  # no refresh thread: a build forks its workers only while it has none
    ) as bar:
        task = bar.add_task("", total=None)
        shown = [0.0]

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)
            if time.monotonic() - shown[0] >= 0.1 or done == total:
                shown[0] = time.monotonic()
                bar.refresh()

        yield update


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("build")
    @handle_errors
    def build_cmd(
        index: Annotated[Path, typer.Argument(help="The index folder (registry.toml, root/, plugins/).")],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="The site folder to write (replaced atomically).")
        ],
        key: KeyOption,
        previous: Annotated[
            str | None,
            typer.Option(
                "--previous", help="The published site (folder or http(s)/file URL) for rollback checks."
            ),
        ] = None,
        registry_version: VersionOption = None,
        no_smoke: Annotated[
            bool, typer.Option("--no-smoke", help="Skip the smoke run (records null figures).")
        ] = False,
        cache_dir: Annotated[
            Path | None, typer.Option("--cache-dir", help="Build cache folder (default: platform cache).")
        ] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Verify everything from scratch.")] = False,
        jobs: Annotated[
            int,
            typer.Option(
                "--jobs",
                "-j",
                min=1,
                help="Processes verifying releases not in the cache: this one and N-1 workers.",
            ),
        ] = min(os.cpu_count() or 1, 8),
        fmt: FormatOption = OutputFormat.text,
        passphrase_env: PassphraseEnv = None,
    ) -> None:
        """Build the static signed registry SITE from INDEX (honours SOURCE_DATE_EPOCH)."""
        from registry_tool.registry.build import BuildOptions, BuildRefusedError, build_site
        from registry_tool.registry.cache import default_cache_path

        now, verify_now = clock(os.environ)
        keys = load_keys(key, passphrase_env)
        cache_path = None if no_cache else (cache_dir / "build-cache.json" if cache_dir else None)
        if cache_path is None and not no_cache:
            cache_path = default_cache_path(index)
        with progress_bar(fmt is OutputFormat.text) as progress:
            options = BuildOptions(
                index=index,
                out=out,
                keys=keys,
                now=now,
                verify_now=verify_now,
                previous=previous,
                registry_version=registry_version,
                smoke=not no_smoke,
                cache_path=cache_path,
                progress=progress,
                jobs=jobs,
            )
            try:
                result = build_site(options)
            except BuildRefusedError as err:
                emit(err.report, fmt)
        emit(result.report(), fmt)

    @app.command("resign")
    @handle_errors
    def resign_cmd(
        site: Annotated[Path, typer.Argument(help="A site written by `registry-tool build`.")],
        key: KeyOption,
        validity: Annotated[
            str | None,
            typer.Option("--validity", help="New validity window like 7d (default: the current window)."),
        ] = None,
        registry_version: VersionOption = None,
        expect_version: Annotated[
            int | None,
            typer.Option(
                "--expect-version",
                help="The version SITE's registry.json must have (needed where this signer has no"
                " record of the site, e.g. a fresh CI runner).",
            ),
        ] = None,
        fmt: FormatOption = OutputFormat.text,
        passphrase_env: PassphraseEnv = None,
    ) -> None:
        """Re-sign SITE's registry.json with a new version and a fresh expiry, nothing else."""
        from registry_tool.manifest import UnitError, parse_duration
        from registry_tool.registry.resign import resign_site

        window = None
        if validity is not None:
            try:
                window = timedelta(seconds=parse_duration(validity))
            except UnitError as err:
                raise UsageError(str(err), fix="pass --validity like 7d or 12h") from None
        now, verify_now = clock(os.environ)
        keys = load_keys(key, passphrase_env)
        result = resign_site(
            site,
            keys,
            now,
            validity=window,
            registry_version=registry_version,
            verify_now=verify_now,
            expect_version=expect_version,
        )
        emit(result.report(), fmt)
