"""``nesting_depth`` (the nesting cap in front of the compiled schema) measures what the definition says:
a scalar or an empty table/array at the top is 0, each table or array around a value adds 1."""

from __future__ import annotations

import random

import pytest

from registry_tool._toml import nesting_depth
from registry_tool.manifest.source import MAX_DEPTH, schema_accepts


def _reference(value: object) -> int:
    if isinstance(value, dict):
        return max((1 + _reference(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((1 + _reference(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    "value",
    [
        1,
        "x",
        {},
        [],
        {"a": {}},
        {"a": []},
        {"a": [[]]},
        [[[1]]],
        {"a": [1, {"b": {"c": [2]}}]},
        [[], [[]], 3],
    ],
)
def test_depth_of_shapes(value: object) -> None:
    assert nesting_depth(value) == _reference(value)


def test_depth_of_random_documents() -> None:
    rng = random.Random(17)

    def document(budget: int) -> object:
        if budget == 0 or rng.random() < 0.3:
            return rng.choice([1, "x", 2.5, True])
        if rng.random() < 0.5:
            return {str(i): document(budget - 1) for i in range(rng.randint(0, 3))}
        return [document(budget - 1) for _ in range(rng.randint(0, 3))]

    for _ in range(3000):
        value = document(10)
        assert nesting_depth(value) == _reference(value)


def test_one_level_too_deep_is_never_accepted_by_the_fast_path() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    assert nesting_depth(deep) == MAX_DEPTH + 1
    assert not schema_accepts({"plugin": {"x": deep}}, "plugin.schema.json")
