"""Start-up cost is paid only for the command that runs (behavioural checks, never timings).

`registry-tool --help` must not import typer, rich, the verifiers' heavy dependencies or any
command area; a command imports only the area that defines it; a plain `validate` imports no
CLI framework and, once its cache is warm, none of the libraries whose verdicts it remembers.
The launcher's static help, command table and fast-path options must agree with the typer app,
and the fast path must print exactly what the typer command prints.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from registry_tool import _cli, _launch, report
from registry_tool.errors import RegistryToolError
from registry_tool.manifest import validate_paths

REPO = Path(__file__).resolve().parents[2]

# Not needed to print the help: each costs from 10 ms to several hundred at import.
HEAVY = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "markdown_it",
    "pygments",
    "wasmtime",
    "jsonschema",
    "fastjsonschema",
    "cryptography",
    "requests",
    "tomlkit",
    "semantic_version",
    "registry_tool._cli",
    "registry_tool.registry",
    "registry_tool.sandbox",
    "registry_tool.client",
    "registry_tool.manifest",
)


def _modules_after(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run the real entry point in a fresh interpreter; return its exit code, stdout and sys.modules."""
    probe = (
        "import json, sys, io, contextlib\n"
        "from registry_tool._launch import main\n"
        f"sys.argv = ['registry-tool', *{list(argv)!r}]\n"
        "out = io.StringIO()\n"
        "code = 0\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code if isinstance(exc.code, int) else 1\n"
        "print(json.dumps([code, out.getvalue(), sorted(sys.modules)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **(env or {})},
    )
    code, out, modules = json.loads(proc.stdout.splitlines()[-1])
    return code, out, set(modules)


def _loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_help_imports_no_heavy_module() -> None:
    code, out, modules = _modules_after("--help")
    assert code == 0
    assert out == _launch.HELP
    assert [p for p in HEAVY if _loaded(modules, p)] == []


def test_version_imports_no_heavy_module() -> None:
    code, out, modules = _modules_after("--version")
    assert (code, out) == (0, "registry-tool 0.1.0\n")
    assert [p for p in HEAVY if _loaded(modules, p)] == []


def test_a_command_imports_only_its_area() -> None:
    code, out, modules = _modules_after(
        "--debug", "validate", "index/plugins/adler32/1.0.0", "--format", "json"
    )
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    assert "registry_tool._cli.validate" in modules  # a global option: typer parses it
    others = [f"registry_tool._cli.{a}" for a in _cli.AREAS if a != "validate"]
    assert [m for m in others if m in modules] == []
    # What validate does not need: the builder, the client, the network, rich and the sandbox runner.
    for package in ("registry_tool.registry", "registry_tool.client", "requests", "rich", "cryptography"):
        assert not _loaded(modules, package), package


# What a plain `validate` never needs: the CLI framework, the other commands, the network.
NOT_FOR_VALIDATE = (
    "typer",
    "click",
    "pydantic",
    "jsonschema",
    "fastjsonschema",  # its generated validators ship in the package: no run generates code
    "cryptography",
    "requests",
    "tomlkit",
    "registry_tool._cli",
    "registry_tool.registry",
    "registry_tool.sandbox",
    "registry_tool.client",
    "registry_tool.signing",
    "registry_tool.trust",
)
# What it needs only until its cache remembers their verdicts.
REMEMBERED = ("wasmtime", "license_expression", "semantic_version", "importlib.metadata")
# What even a cold run does not need for a release in the common forms (an SPDX id list, a strict
# version, comparator ranges): those are decided from license_expression's data and a regex.
NOT_WHEN_COLD = ("license_expression", "semantic_version", "importlib.metadata")


def test_plain_validate_imports_no_cli_framework_and_with_a_warm_cache_no_prover(tmp_path: Path) -> None:
    """Cold, only wasmtime of the provers is imported; warm, none."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = ("validate", "index/plugins/adler32/1.0.0", "--format", "json")
    cold_code, cold_out, cold = _modules_after(*argv, env=env)
    warm_code, warm_out, warm = _modules_after(*argv, env=env)
    assert (cold_code, warm_code) == (0, 0)
    assert json.loads(cold_out) == json.loads(warm_out)
    assert json.loads(warm_out)["ok"] is True
    for modules in (cold, warm):
        assert [p for p in NOT_FOR_VALIDATE if _loaded(modules, p)] == []
        assert not _loaded(modules, "rich")  # --format json renders without it
    assert _loaded(cold, "wasmtime")  # the first run decides: wasmtime validates the module
    assert [p for p in NOT_WHEN_COLD if _loaded(cold, p)] == []
    assert [p for p in REMEMBERED if _loaded(warm, p)] == []
    # What the cache holds is verdicts only: no generated code, whether shipped or not.
    stored = {p.suffix for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert stored == {".ok"}


@pytest.mark.parametrize(
    ("case", "prover"),
    [("bad-spdx-unknown-id", "license_expression"), ("host-range-disjoint", "semantic_version")],
)
def test_what_the_cold_path_does_not_accept_its_library_decides(
    tmp_path: Path, case: str, prover: str
) -> None:
    """A license or range outside the common forms, or a refusal, is still the library's verdict."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    path = REPO / "tests/examples/invalid" / case
    argv = ("validate", str(path), "--config", str(REPO / "tests/examples/registry.toml"), "-f", "json")
    code, out, modules = _modules_after(*argv, env=env)
    assert code == 1
    assert _loaded(modules, prover)
    assert json.loads(out) == json.loads(_cli_run("--debug", *argv).stdout)


def test_an_invalid_release_is_decided_again_with_a_warm_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    case = REPO / "tests/examples/invalid/invalid-wasm-truncated"
    argv = ("validate", str(case), "--config", str(REPO / "tests/examples/registry.toml"), "-f", "json")
    first = _modules_after(*argv, env=env)
    second = _modules_after(*argv, env=env)
    assert first[0] == second[0] == 1
    assert json.loads(first[1]) == json.loads(second[1])
    assert _loaded(second[2], "wasmtime")  # a refusal is never remembered: wasmtime decides again


def _cli_run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry_tool", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["index/plugins/adler32/1.0.0"],
        ["index/plugins/adler32/1.0.0", "--format", "json"],
        ["-f", "sarif", "index/plugins/adler32/1.0.0", "index/plugins/adler32"],
        ["--config=index/registry.toml", "index/plugins/adler32/1.0.0", "--format=github"],
        ["-c", "tests/examples/registry.toml", "tests/examples/invalid/bad-spdx-unknown-id", "-f", "json"],
        ["tests/examples/invalid/host-range-disjoint", "-c", "tests/examples/registry.toml"],
    ],
)
def test_the_fast_path_prints_what_the_typer_command_prints(args: list[str]) -> None:
    assert _launch.parse_plain(args, _launch.FAST_COMMANDS["validate"].options) is not None
    fast = _cli_run("validate", *args)
    typed = _cli_run("--debug", "validate", *args)  # a global option: the typer app runs it
    assert (fast.returncode, fast.stdout, fast.stderr) == (typed.returncode, typed.stdout, typed.stderr)
    assert fast.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["no/such/release"], 2, "does not exist"),
        (["index/plugins/adler32/1.0.0", "--format", "yaml"], 2, "yaml"),
        ([], 2, "Missing argument"),
        (["index/plugins/adler32/1.0.0", "-f", "json", "--config", "no/such.toml"], 2, "does not exist"),
    ],
)
def test_what_the_fast_path_cannot_print_the_typer_layer_reports(
    args: list[str], code: int, message: str
) -> None:
    fast = _cli_run("validate", *args)
    typed = _cli_run("--debug", "validate", *args)
    assert fast.returncode == typed.returncode == code
    assert fast.stdout == typed.stdout
    assert message in fast.stderr


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["a"], (["a"], {})),
        (["a", "b", "-f", "json"], (["a", "b"], {"format": "json"})),
        (["--format=sarif", "a", "--config", "r.toml"], (["a"], {"format": "sarif", "config": "r.toml"})),
        (["-c", "x", "a"], (["a"], {"config": "x"})),
        (["-"], (["-"], {})),
        # Everything else is the typer app's to parse and, if need be, refuse.
        ([], None),
        (["-f", "json"], None),
        (["a", "--help"], None),
        (["a", "--"], None),
        (["a", "--verbose"], None),
        (["a", "-c=x"], None),
        (["a", "-cx"], None),
        (["a", "--config"], None),
        (["a", "--config="], None),
        (["a", "--config", "-f"], None),
        (["a", "--unknown", "x"], None),
    ],
)
def test_what_is_a_plain_command_line(args: list[str], parsed: object) -> None:
    assert _launch.parse_plain(args, _launch.FAST_COMMANDS["validate"].options) == parsed


def test_the_fast_path_never_runs_with_global_options_or_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []
    command = _launch.FAST_COMMANDS["validate"]
    monkeypatch.setitem(_launch.FAST_COMMANDS, "validate", command._replace(run=lambda *a: ran.append(a)))
    _launch.run_fast(["--debug", "validate", "a"])
    _launch.run_fast(["-v", "validate", "a"])
    monkeypatch.setenv(_launch.LOG_ENV, "debug")
    _launch.run_fast(["validate", "a"])
    assert ran == []
    monkeypatch.delenv(_launch.LOG_ENV)
    _launch.run_fast(["validate", "a"])
    assert ran == [(["a"], {})]


def test_fast_path_options_are_the_typer_commands() -> None:
    """The fast path reads the spellings the typer command declares, and knows all of them."""
    app = typer.Typer()
    app.callback()(lambda: None)
    importlib.import_module("registry_tool._cli.validate").register(app)
    command = typer.main.get_group(app).commands["validate"]
    options = {p.name: p for p in command.params if p.param_type_name == "option" and p.name != "help"}
    fast = {o.dest: o for o in _launch.FAST_COMMANDS["validate"].options}
    assert set(options) == {"config", "fmt"}
    assert sorted(options["config"].opts) == sorted(fast["config"].flags)
    assert sorted(options["fmt"].opts) == sorted(fast["format"].flags)
    assert [p.name for p in command.params if p.param_type_name == "argument"] == ["paths"]
    assert options["config"].help == fast["config"].help
    assert options["fmt"].help == fast["format"].help
    assert command.params[0].help == _launch.VALIDATE_PATHS_HELP


def test_static_help_is_what_typer_prints() -> None:
    """The launcher's --help text is the full app's help on an 80-column terminal (click wraps at 78)."""
    app = _cli.app
    if not app.registered_commands:
        _cli._register_areas()
    result = CliRunner().invoke(app, ["--help"], terminal_width=78)
    assert result.exit_code == 0
    assert result.output == _launch.HELP


def test_every_command_is_registered_by_its_area() -> None:
    full = typer.main.get_group(_full_app())
    assert set(full.list_commands(None)) == set(_launch.COMMAND_AREAS)  # type: ignore[arg-type]
    for command, area in _launch.COMMAND_AREAS.items():
        one = typer.Typer()
        importlib.import_module(f"registry_tool._cli.{area}").register(one)
        one.callback()(lambda: None)
        assert command in typer.main.get_group(one).list_commands(None), command  # type: ignore[arg-type]


def test_unknown_commands_go_to_the_full_app() -> None:
    assert _launch.area_for(["nosuch"]) is None
    assert _launch.area_for(["--debug", "verify", "x"]) == "keys"
    assert _launch.area_for(["--debug"]) is None
    assert _launch.area_for(["-vv", "--debug", "validate", "x"]) == "validate"
    code, _, modules = _modules_after("nosuch")
    assert code == 2
    assert all(f"registry_tool._cli.{a}" in modules for a in _cli.AREAS)


def _full_app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    for area in _cli.AREAS:
        importlib.import_module(f"registry_tool._cli.{area}").register(app)
    return app


# --------------------------------------------------------------------------- text output without rich


def test_validate_text_to_a_pipe_imports_no_rich() -> None:
    code, out, modules = _modules_after("validate", "index/plugins/adler32/1.0.0")
    assert code == 0
    assert out.endswith("ok   index/plugins/adler32/1.0.0\nvalidate: 2 checked, 0 failed: passed\n")
    assert not _loaded(modules, "rich")


def _example_reports() -> list[report.Report]:
    globs = ("tests/examples/valid/*", "tests/examples/invalid/*", "index/plugins/*/*")
    trees = sorted(p for pattern in globs for p in REPO.glob(pattern) if p.is_dir())
    config = REPO / "tests/examples/registry.toml"
    reports = []
    for tree in trees:
        try:
            reports.append(validate_paths([tree], config_path=config))
        except RegistryToolError as err:  # a tree validate refuses to read: the error's report
            reports.append(report.Report.from_error("validate", err))
    return reports


def _hostile_reports() -> list[report.Report]:
    """Untrusted strings that rich would read as markup, emoji codes or escapes if it parsed them."""
    strings = [
        "[red]x[/red]",
        "[link=https://example.invalid]click[/link]",
        "[bold",
        "\\[b]",
        "ends with a backslash\\",
        "two\\\\",
        ":thumbs_up: :smile:",
        "tab\tnewline\nesc\x1b[31m",
        "é 中文 \u202e",
        " spaced  ",
    ]
    reports = []
    for text in strings:
        findings = [
            report.Finding(f"rule{text}", text, severity=sev, file=text, line=1, field=text, fix=text)
            for sev in report.Severity
        ]
        reports.append(report.Report("validate", [report.CheckResult(text, findings)]))
        reports.append(report.Report("validate", [report.CheckResult(text)]))
    return reports


def _render(rep: report.Report) -> str:
    out = io.StringIO()
    report.render_text(rep, out)
    return out.getvalue()


def test_text_to_a_non_terminal_is_what_rich_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain writer prints, byte for byte, what rich prints to a non-terminal (every example tree)."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    reports = [*_example_reports(), *_hostile_reports()]
    assert len(reports) > 100
    plain = [_render(r) for r in reports]
    monkeypatch.setattr(report, "_colours", lambda out: True)  # rich, which sees no terminal
    assert [_render(r) for r in reports] == plain
    assert any("FAIL" in text for text in plain)
    assert any(text.startswith("ok ") for text in plain)


def test_untrusted_text_prints_as_it_is_in_both_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    for rep in _hostile_reports():
        subject = report.printable(rep.results[0].subject)
        plain = _render(rep)
        assert plain.splitlines()[0].endswith(" " + subject)
        if rep.results[0].findings:
            assert f" error {report.printable(rep.results[0].findings[0].text())}\n" in plain
        monkeypatch.setattr(report, "_colours", lambda out: True)
        assert _render(rep) == plain
        monkeypatch.undo()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_or_forced_colour_gets_rich_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    rep = report.Report("validate", [report.CheckResult("x", [report.Finding("r", "m")])])
    terminal = _Terminal()
    report.render_text(rep, terminal)
    assert "\x1b[31mFAIL\x1b[0m x\n" in terminal.getvalue()
    monkeypatch.setenv("FORCE_COLOR", "1")  # a CI log that asks for colour: rich decides, as before
    assert "\x1b[31mFAIL\x1b[0m x\n" in _render(rep)
    monkeypatch.delenv("FORCE_COLOR")
    assert _render(rep) == "FAIL x\n     error m.\nvalidate: 1 checked, 1 failed: failed\n"
