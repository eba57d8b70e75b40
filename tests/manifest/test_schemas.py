"""The JSON Schemas: valid draft-07, and an independent tool (check-jsonschema) agrees with them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "tests" / "examples"


@pytest.mark.parametrize("name", ["plugin.schema.json", "registry-config.schema.json"])
def test_schema_is_valid_draft7(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def _check_jsonschema(schema: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMAS / schema), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_jsonschema_accepts_every_sample_and_valid_example() -> None:
    manifests = sorted((REPO / "index" / "plugins").glob("*/*/plugin.toml"))
    manifests += sorted((EXAMPLES / "valid").rglob("plugin.toml"))
    proc = _check_jsonschema("plugin.schema.json", manifests)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    configs = [REPO / "index" / "registry.toml", EXAMPLES / "registry.toml"]
    proc = _check_jsonschema("registry-config.schema.json", configs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_jsonschema_rejects_the_schema_level_negative_cases() -> None:
    cases = ["unknown-key-did-you-mean", "wrong-type-version", "missing-license", "abi-enum", "bad-name"]
    for case in cases:
        proc = _check_jsonschema("plugin.schema.json", [EXAMPLES / "invalid" / case / "plugin.toml"])
        assert proc.returncode == 1, f"{case}: {proc.stdout}"
