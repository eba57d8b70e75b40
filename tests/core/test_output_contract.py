"""One output contract: every command writes its report in every format, with the documented exit codes.

A small real world (two plugins of the sample index, its root and demo keys, a site built by
`build` and served on 127.0.0.1, a trusted client state and a plugin directory) is set up once;
then every command runs in text, json, github and sarif.  The JSON must be the shared envelope,
the SARIF must be SARIF 2.1.0 (the subset GitHub requires and sarif-pydantic's object model), the
github format annotations only.  Network outages exit 2, tampered registries 1, crashes 3 with
the report still written, and -v shows the mirror fallback on stderr while stdout stays JSON.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from registry_tool import _cli
from registry_tool.errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "samples" / "keys"
PLUGINS = ("adler32", "validate_email")


def _sarif_subset() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("_sarif_subset", REPO / "tests" / "ci" / "sarif.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SARIF_SUBSET  # type: ignore[no-any-return]


SARIF_SUBSET = _sarif_subset()
ANNOTATION = re.compile(r"^::(error|warning|notice)( [^:]*)?::.*$")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(folder: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def app() -> Any:
    if not _cli.app.registered_commands:
        _cli._register_areas()
    return _cli.app


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app(), [str(a) for a in args], env=env)


@dataclass
class World:
    root: Path
    url: str
    state: Path
    plugins: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("contract")
    index = root / "index"
    shutil.copytree(REPO / "index", index)
    for plugin in (index / "plugins").iterdir():
        if plugin.name not in PLUGINS:
            shutil.rmtree(plugin)
    site = root / "site"
    done = invoke("build", index, "--out", site, "--key", KEYS / "index.key", "--no-smoke", "--no-cache")
    assert done.exit_code == 0, done.output
    server = serve(site)
    url = url_of(server)
    state, plugins = root / "state", root / "plugins"
    trusted = invoke("client", "trust", url, "--root", index / "root" / "1.root.json", "--state-dir", state)
    assert trusted.exit_code == 0, trusted.output
    done = invoke(
        "client", "install", "validate_email", "--registry", url, "--state-dir", state, "--dir", plugins
    )
    assert done.exit_code == 0, done.output
    try:
        yield World(root, url, state, plugins)
    finally:
        server.shutdown()
        server.server_close()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# command name -> (arguments for a run in ``tmp``, expected exit code).  Paths are relative to
# the world's folder (the current directory), as a repository's paths are for code scanning.
Args = Callable[[World, Path], list[str | Path]]
COMMANDS: dict[str, tuple[Args, int]] = {
    "validate": (lambda w, t: ["validate", "index"], EXIT_OK),
    "smoke": (lambda w, t: ["smoke", "index/plugins/adler32/1.0.0"], EXIT_OK),
    "verify": (lambda w, t: ["verify", "site", "--root", "site/root"], EXIT_OK),
    "root verify": (lambda w, t: ["root", "verify", "--dir", "index/root"], EXIT_OK),
    "key generate": (lambda w, t: ["key", "generate", t / "alice", "--unencrypted"], EXIT_OK),
    "key show": (lambda w, t: ["key", "show", KEYS / "index.pub"], EXIT_OK),
    "sign": (
        lambda w, t: [
            "sign",
            _copy(w.root / "index/plugins/adler32/1.0.0", t / "r"),
            "--key",
            KEYS / "ferritelabs.key",
        ],
        EXIT_OK,
    ),
    "root init": (
        lambda w, t: [
            "root",
            "init",
            "--registry",
            "x",
            "--dir",
            t / "root",
            "--root-key",
            KEYS / "root.pub",
            "--index-key",
            KEYS / "index.pub",
        ],
        EXIT_OK,
    ),
    "root add-maintainer": (
        lambda w, t: [
            "root",
            "add-maintainer",
            "bob",
            "--pubkey",
            KEYS / "extism-community.pub",
            "--plugin",
            "bob_*",
            "--dir",
            _copy(w.root / "index/root", t / "root"),
        ],
        EXIT_OK,
    ),
    "root renew": (
        lambda w, t: ["root", "renew", "--dir", _copy(w.root / "index/root", t / "root")],
        EXIT_OK,
    ),
    "root sign": (
        lambda w, t: [
            "root",
            "sign",
            "--key",
            KEYS / "root.key",
            "--dir",
            _copy(w.root / "index/root", t / "root"),
        ],
        EXIT_OK,
    ),
    "build": (
        lambda w, t: [
            "build",
            "index",
            "--out",
            t / "site",
            "--key",
            KEYS / "index.key",
            "--no-smoke",
            "--no-cache",
        ],
        EXIT_OK,
    ),
    "resign": (
        # A copied site: the signer has no record of it here, so the operator names its version.
        lambda w, t: [
            "resign",
            _copy(w.root / "site", t / "site"),
            "--key",
            KEYS / "index.key",
            "--expect-version",
            str(json.loads((w.root / "site" / "registry.json").read_bytes())["version"]),
        ],
        EXIT_OK,
    ),
    "init": (lambda w, t: ["init", t / "reg", "--host", "ferrite", "--tool-ref", "0" * 40], EXIT_OK),
    # Not a git repository: the check stops with a usage error, and still writes its report.
    "ci check": (lambda w, t: ["ci", "check", "--base", "main"], EXIT_USAGE),
    "client trust": (
        lambda w, t: ["client", "trust", w.url, "--root", "index/root/1.root.json", "--state-dir", t / "s"],
        EXIT_OK,
    ),
    "client search": (
        lambda w, t: ["client", "search", "", "--registry", w.url, "--state-dir", _copy(w.state, t / "s")],
        EXIT_OK,
    ),
    "client info": (
        lambda w, t: [
            "client",
            "info",
            "adler32",
            "--registry",
            w.url,
            "--state-dir",
            _copy(w.state, t / "s"),
        ],
        EXIT_OK,
    ),
    "client install": (
        lambda w, t: [
            "client",
            "install",
            "adler32",
            "--registry",
            w.url,
            "--state-dir",
            _copy(w.state, t / "s"),
            "--dir",
            t / "p",
        ],
        EXIT_OK,
    ),
    "client update": (
        lambda w, t: [
            "client",
            "update",
            "--registry",
            w.url,
            "--state-dir",
            _copy(w.state, t / "s"),
            "--dir",
            _copy(w.plugins, t / "p"),
        ],
        EXIT_OK,
    ),
    "client list": (lambda w, t: ["client", "list", "--dir", w.plugins], EXIT_OK),
    "client remove": (
        lambda w, t: ["client", "remove", "validate_email", "--dir", _copy(w.plugins, t / "p")],
        EXIT_OK,
    ),
    "client verify": (
        lambda w, t: ["client", "verify", "--dir", w.plugins, "--state-dir", w.state],
        EXIT_OK,
    ),
    "client verify-site": (
        lambda w, t: ["client", "verify-site", w.url, "--root", "index/root/1.root.json"],
        EXIT_OK,
    ),
}

FORMATS = ("text", "json", "github", "sarif")


def assert_valid(fmt: str, stdout: str, command: str, code: int) -> None:
    """``stdout`` is a well-formed document of format ``fmt`` for ``command``, agreeing with ``code``."""
    assert "Traceback" not in stdout
    if fmt == "json":
        doc = json.loads(stdout)
        assert doc["format_version"] == 1 and doc["command"] == command
        assert isinstance(doc["results"], list) and set(doc["summary"]) >= {"subjects", "failed", "errors"}
        assert doc["ok"] is (code == EXIT_OK)
    elif fmt == "sarif":
        doc = json.loads(stdout)
        jsonschema.validate(doc, SARIF_SUBSET)
        from sarif_pydantic import Sarif

        [run] = Sarif.model_validate(doc).runs
        rules = {r.id: r for r in run.tool.driver.rules or []}
        assert all(r.rule_id in rules for r in run.results or [])
        assert all(str(r.help_uri).startswith("https://") for r in rules.values())
        assert bool(run.results) is (code != EXIT_OK)
    elif fmt == "github":
        annotations = [ln for ln in stdout.splitlines() if ln.lstrip().startswith("::")]
        assert all(ANNOTATION.match(ln) for ln in annotations), annotations
        assert bool(annotations) is (code != EXIT_OK)
    else:
        assert stdout.strip() or code != EXIT_OK
        assert not stdout.lstrip().startswith("{")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_writes_its_report_in_every_format(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, fmt: str
) -> None:
    monkeypatch.chdir(world.root)
    args, expected = COMMANDS[command]
    result = invoke(*args(world, tmp_path), "--format", fmt)
    assert result.exit_code == expected, result.output
    assert_valid(fmt, result.stdout, command, result.exit_code)


def test_every_command_of_the_app_is_in_the_contract_test() -> None:
    import typer

    def names(group: Any, prefix: str = "") -> set[str]:
        found: set[str] = set()
        for name in group.list_commands(None):
            sub = group.get_command(None, name)
            if hasattr(sub, "list_commands"):
                found |= names(sub, f"{prefix}{name} ")
            else:
                found.add(prefix + name)
        return found

    every = names(typer.main.get_group(app()))
    # Root edits share one code path (`_edit`): add-maintainer and renew stand for the rest.
    same_path = {"root pin-config", "root revoke", "root rotate-keys"}
    assert every - same_path == set(COMMANDS)


# --------------------------------------------------------------------------- exit codes


def _trusted_then_gone(world: World, tmp_path: Path) -> tuple[str, Path]:
    """A registry served on 127.0.0.1, trusted into a fresh state dir, then shut down.

    Returns its URL (the port now refuses connections) and the state dir.
    """
    server = serve(world.root / "site")
    url = url_of(server)
    state = tmp_path / "s"
    trusted = invoke(
        "client", "trust", url, "--root", world.root / "index/root/1.root.json", "--state-dir", state
    )
    assert trusted.exit_code == EXIT_OK, trusted.output
    server.shutdown()
    server.server_close()
    return url, state


def test_a_network_outage_exits_2_with_the_report_written(world: World, tmp_path: Path) -> None:
    url, state = _trusted_then_gone(world, tmp_path)
    for fmt in FORMATS:
        result = invoke("client", "search", "--registry", url, "--state-dir", state, "--format", fmt)
        assert result.exit_code == EXIT_USAGE, result.output
        assert "could not" in result.stderr or "refused" in result.stderr, result.stderr
        assert "HTTPConnectionPool" not in result.stderr and "Max retries" not in result.stderr, result.stderr
        assert_valid(fmt, result.stdout, "client search", result.exit_code)
        if fmt == "json":
            assert json.loads(result.stdout)["error"]["rule"] == "fetch-failed"


def test_a_tampered_registry_exits_1_not_2(world: World, tmp_path: Path) -> None:
    site = _copy(world.root / "site", tmp_path / "site")
    top = site / "registry.json"
    top.write_bytes(top.read_bytes().replace(b'"version"', b'"version" ', 1))
    server = serve(site)
    try:
        state = _copy(world.state, tmp_path / "s")
        # The state is bound to the world's URL: trust the same root under this server's URL.
        result = invoke(
            "client", "trust", url_of(server), "--root", world.root / "index/root/1.root.json",
            "--state-dir", state, "--format", "json",
        )  # fmt: skip
        assert result.exit_code == EXIT_CHECK_FAILED, result.output
        assert json.loads(result.stdout)["error"]["rule"] == "index-signature"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_internal_error_exits_3_and_still_writes_the_report(
    world: World, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    import registry_tool.client as client

    def boom(*_args: object, **_kwargs: object) -> object:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(client, "list_installed", boom)
    result = invoke("client", "list", "--dir", world.plugins, "--format", fmt)
    assert result.exit_code == EXIT_INTERNAL
    assert "please report it" in result.stderr and "Traceback" not in result.stderr
    assert "ZeroDivisionError" in result.stdout  # the report names the crash
    if fmt == "json":
        [finding] = json.loads(result.stdout)["results"][0]["findings"]
        assert finding["rule"] == "internal-error"
    elif fmt == "sarif":
        assert json.loads(result.stdout)["runs"][0]["results"][0]["ruleId"] == "internal-error"


@pytest.mark.parametrize("how", ["--debug", "REGISTRY_TOOL_DEBUG"])
def test_debug_shows_the_traceback_of_an_internal_error(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import registry_tool.client as client

    def boom(*_args: object, **_kwargs: object) -> object:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(client, "list_installed", boom)
    flags, env = (["--debug"], None) if how == "--debug" else ([], {"REGISTRY_TOOL_DEBUG": "1"})
    result = invoke(*flags, "client", "list", "--dir", world.plugins, env=env)
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


# --------------------------------------------------------------------------- logging


def test_verbose_shows_a_mirror_fallback_on_stderr_and_json_stays_clean(world: World, tmp_path: Path) -> None:
    url, state = _trusted_then_gone(world, tmp_path)
    args = [
        "client",
        "search",
        "--registry",
        url,
        "--mirror",
        world.url,
        "--state-dir",
        state,
        "--format",
        "json",
    ]
    quiet = invoke(*args)
    assert quiet.exit_code == EXIT_OK, quiet.output
    assert "trying the next source" not in quiet.stderr
    loud = invoke("-v", *args)
    assert loud.exit_code == EXIT_OK, loud.output
    assert f"source {url} failed (fetch-failed" in loud.stderr and "trying the next source" in loud.stderr
    assert "fetched" not in loud.stderr  # debug records need -vv or REGISTRY_TOOL_LOG=debug
    assert json.loads(loud.stdout)["command"] == "client search"  # nothing logged into the document
    debug = invoke(*args, env={"REGISTRY_TOOL_LOG": "debug"})
    assert re.search(rf"fetched {re.escape(world.url)}registry.json \(\d+ bytes\)", debug.stderr), (
        debug.stderr
    )


def test_verbose_shows_the_root_chain_steps(world: World, tmp_path: Path) -> None:
    result = invoke(
        "-v", "client", "trust", world.url, "--root", world.root / "index/root/1.root.json",
        "--state-dir", tmp_path / "s",
    )  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert "root chain: stepped to root version 2" in result.stderr


def test_an_unknown_log_level_is_a_usage_error() -> None:
    result = invoke("client", "list", env={"REGISTRY_TOOL_LOG": "loud"})
    assert result.exit_code == EXIT_USAGE and "REGISTRY_TOOL_LOG" in result.output


def test_a_log_record_quoting_a_server_holds_no_workflow_command() -> None:
    """-v logs what servers say (a mirror's error text): a legacy ##[ command must stay text."""
    import logging

    from registry_tool._logging import _OneLine

    record = logging.LogRecord(
        "registry_tool",
        logging.INFO,
        __file__,
        1,
        "source %s failed (%s)",
        ("m", "##[warning]x\n::error::y"),
        None,
    )
    line = _OneLine("%(message)s").format(record)
    assert "##[" not in line and "\n" not in line and "::error" in line and not line.startswith("::")
