"""An ABI is one object: every ``AbiSpec`` has exactly one runner, and the schemas list exactly the specs."""

from __future__ import annotations

import json
from pathlib import Path

from registry_tool.manifest.abi import ABI_SPECS, ABIS
from registry_tool.sandbox.abis import DEFAULT_ABI_RULES, ImportPolicy
from registry_tool.sandbox.runners import RUNNERS, adapter_class

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_every_abi_spec_has_exactly_one_runner_and_every_runner_a_spec() -> None:
    assert set(RUNNERS) == set(ABI_SPECS)
    for name in RUNNERS:
        runner = adapter_class(name)
        assert runner.name == name
        assert runner(ImportPolicy()).name == name


def test_the_schema_enums_are_the_abi_registry() -> None:
    plugin = json.loads((SCHEMAS / "plugin.schema.json").read_text())
    config = json.loads((SCHEMAS / "registry-config.schema.json").read_text())
    plugin_abi = plugin["properties"]["plugin"]["properties"]["abi"]
    allowed = config["properties"]["abis"]["properties"]["allowed"]["items"]
    assert plugin_abi["enum"] == list(ABIS)
    assert allowed["enum"] == list(ABIS)
    assert config["properties"]["abis"]["properties"]["allowed"]["description"] == (
        f"a non-empty subset of {', '.join(ABIS)}"
    )
    assert plugin_abi["description"] == f"one of {', '.join(ABIS)}"


def test_the_default_import_rules_are_the_specs_patterns() -> None:
    for name, spec in ABI_SPECS.items():
        assert [(r.module, r.name) for r in DEFAULT_ABI_RULES[name]] == list(spec.imports)
