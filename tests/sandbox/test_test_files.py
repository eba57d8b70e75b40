"""A test's input_file/expect_file is read bounded, inside the release folder, never through a link.

``smoke`` runs releases validate may never have seen (a reviewer's local run, a CI job): it read
``/etc/passwd`` and ``../../secret`` and showed them in the report, hung on a FIFO, and read a
link to ``/dev/zero`` until memory ran out (5 GB in 3.5 s, then exit 3).  validate and ci check
refuse a test file over the cap (1 GiB of zeros is 5 MB in git, and every test got a copy).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from registry_tool.format.rules import MAX_TEST_FILE_BYTES
from registry_tool.manifest import load_manifest, load_registry_config
from registry_tool.manifest.validate import validate_release
from registry_tool.sandbox.harness import SmokeSetupError, case_from_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tests" / "examples" / "valid" / "core-bytes-input"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    folder = tmp_path / "index" / "plugins" / "example" / "1.0.0"
    shutil.copytree(EXAMPLE, folder)
    (tmp_path / "outside.bin").write_bytes(b"secret")
    return folder


def _point_input_at(release: Path, name: str) -> None:
    text = (release / "plugin.toml").read_text()
    text = text.replace('input_file = "tests/in.bin"', f"input_file = {name!r}")
    (release / "plugin.toml").write_text(text)


def _make(release: Path, kind: str) -> str:
    data = release / "tests" / "in.bin"
    if kind == "escape":
        return "../../../../outside.bin"
    if kind == "absolute":
        return str(release.parents[3] / "outside.bin")
    data.unlink()
    if kind == "fifo":
        os.mkfifo(data)
    elif kind == "dev-zero":
        data.symlink_to("/dev/zero")
    elif kind == "link-inside":
        (release / "tests" / "real.bin").write_bytes(b"abc")
        data.symlink_to("real.bin")
    elif kind == "too-large":
        with data.open("wb") as fh:
            fh.truncate(MAX_TEST_FILE_BYTES + 1)  # sparse: no disk used
    return "tests/in.bin"


@pytest.mark.parametrize("kind", ["escape", "absolute", "fifo", "dev-zero", "link-inside", "too-large"])
def test_smoke_refuses_a_test_file_it_must_not_read(release: Path, kind: str) -> None:
    _point_input_at(release, _make(release, kind))
    manifest = load_manifest(release / "plugin.toml")
    spec = manifest.tests[1]
    with pytest.raises(SmokeSetupError) as err:
        case_from_spec(spec, manifest.abi)
    assert err.value.code == "smoke-setup"
    assert "secret" not in str(err.value.what)


def test_a_missing_test_file_says_installed_releases_hold_none(release: Path) -> None:
    """A host smoke-running an installed plugin (the demo's way) was told to check the path."""
    (release / "tests" / "in.bin").unlink()
    manifest = load_manifest(release / "plugin.toml")
    with pytest.raises(SmokeSetupError) as err:
        case_from_spec(manifest.tests[1], manifest.abi)
    assert "does not exist" in str(err.value.what)
    assert "installed by the client" in (err.value.fix or "") and "in the index" in (err.value.fix or "")


def test_a_test_file_at_the_cap_is_read(release: Path) -> None:
    with (release / "tests" / "in.bin").open("wb") as fh:
        fh.truncate(MAX_TEST_FILE_BYTES)
    manifest = load_manifest(release / "plugin.toml")
    case = case_from_spec(manifest.tests[1], manifest.abi)
    assert case.input is not None and len(case.input) == MAX_TEST_FILE_BYTES


def test_validate_refuses_a_test_file_over_the_cap(release: Path) -> None:
    import wasmtime

    (release / "module.wasm").write_bytes(wasmtime.wat2wasm((release / "module.wat").read_text()))
    config = load_registry_config(REPO / "index" / "registry.toml")
    assert [f for f in validate_release(release, config).findings if f.severity.value == "error"] == []
    with (release / "tests" / "in.bin").open("wb") as fh:
        fh.truncate(MAX_TEST_FILE_BYTES + 1)
    found = [f for f in validate_release(release, config).findings if f.rule == "test-spec"]
    assert len(found) == 1 and "more than the 4 MiB" in found[0].message, [f.message for f in found]


def test_smoke_refuses_an_expect_regex_that_does_not_compile(release: Path) -> None:
    """In the worker a bad pattern was worker_crashed: "report this: the engine crashed"."""
    text = (release / "plugin.toml").read_text().replace("expect = [5]", 'expect_regex = "(unclosed"')
    (release / "plugin.toml").write_text(text)
    manifest = load_manifest(release / "plugin.toml")
    with pytest.raises(SmokeSetupError, match="is no regular expression"):
        case_from_spec(manifest.tests[0], manifest.abi)


def test_smoke_refuses_numbers_expected_from_an_abi_that_returns_text(release: Path) -> None:
    """An Extism or WASI test with expect = [3] crashed the worker (float() of the output text),
    blamed on the engine; validate refuses it as test-spec."""
    manifest = load_manifest(release / "plugin.toml")
    assert manifest.tests[0].expect == (5,)
    with pytest.raises(SmokeSetupError, match="list of numbers only applies to the core ABI"):
        case_from_spec(manifest.tests[0], "extism")


def test_the_worker_judges_text_that_is_no_number_list_wrong_output() -> None:
    from registry_tool.sandbox import Case, Outcome
    from registry_tool.sandbox.abis import Produced
    from registry_tool.sandbox.worker import compare

    case = Case("t", "f", expect_kind="values", expect=[3])
    outcome, detail = compare(case, Produced(output=b'{"count": 3}'), b"")
    assert outcome is Outcome.wrong_output and "no list of numbers" in detail


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_smoke_refuses_an_artifact_that_is_no_regular_file(release: Path, kind: str) -> None:
    """The worker refused it with a traceback reported as worker_crashed ("the engine crashed")."""
    from registry_tool.sandbox.harness import job_for

    wasm = release / "module.wasm"
    if kind == "fifo":
        os.mkfifo(wasm)
    else:
        wasm.symlink_to("/dev/zero")
    config = load_registry_config(REPO / "index" / "registry.toml")
    manifest = load_manifest(release / "plugin.toml", config)
    with pytest.raises(SmokeSetupError, match="is no regular file"):
        job_for(manifest, config)


@pytest.mark.parametrize(
    ("name", "said"),
    [("nope/../tests/in.bin", "steps up with '..'"), ("tests/link.bin", "is a symbolic link")],
)
def test_validate_refuses_the_test_file_names_smoke_refuses(release: Path, name: str, said: str) -> None:
    """validate resolved names as text and followed links; smoke's open refused them."""
    import wasmtime

    (release / "module.wasm").write_bytes(wasmtime.wat2wasm((release / "module.wat").read_text()))
    (release / "tests" / "link.bin").symlink_to("in.bin")
    _point_input_at(release, name)
    config = load_registry_config(REPO / "index" / "registry.toml")
    found = [f.message for f in validate_release(release, config).findings if f.rule == "test-spec"]
    assert any(said in m for m in found), found
    manifest = load_manifest(release / "plugin.toml")
    with pytest.raises(SmokeSetupError):
        case_from_spec(manifest.tests[1], manifest.abi)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("env", {"GREETING": "hi\0there"}, "env.GREETING holds a NUL"),
        ("env", {"A=B": "x"}, "holds '='"),
        ("argv", ["prog", "a\0b"], "argv[1] holds a NUL"),
    ],
)
def test_smoke_refuses_argv_and_env_the_module_would_see_otherwise(
    release: Path, field: str, value: object, said: str
) -> None:
    # The worker passed "hi" (cut at the NUL) and a variable A = "B=x": smoke said ok where validate
    # refused the test (test-spec), and the module saw something else than the test says.
    from dataclasses import replace

    manifest = load_manifest(release / "plugin.toml")
    spec = replace(manifest.tests[0], **{field: value})
    with pytest.raises(SmokeSetupError) as err:
        case_from_spec(spec, manifest.abi)
    assert said in err.value.what and err.value.fix


def test_a_file_many_tests_share_crosses_to_the_worker_once(tmp_path: Path) -> None:
    """64 tests of one 4 MiB input and expected output made a 680 MB job and took the parent to
    2.4 GB: each distinct file is sent once, and held once."""
    import json

    from registry_tool.sandbox import Case, ImportPolicy
    from registry_tool.sandbox.engine import EngineSpec, Limits
    from registry_tool.sandbox.harness import _shared_bytes
    from registry_tool.sandbox.worker import Job

    data = bytes(range(256)) * 16384  # 4 MiB
    cases = _shared_bytes(
        Case(f"t{i}", "f", input=bytes(data), expect_kind="bytes", expect=bytes(data)) for i in range(64)
    )
    assert len({id(c.input) for c in cases} | {id(c.expect) for c in cases}) == 1
    job = Job("m.wasm", "extism", cases, Limits(), EngineSpec(), ImportPolicy())
    encoded = json.dumps(job.to_json())
    assert len(encoded) < 6 * 1024 * 1024, len(encoded)
    back = Job.from_json(json.loads(encoded))
    assert [c.input == data and c.expect == data for c in back.cases] == [True] * 64
