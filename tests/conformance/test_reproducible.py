"""conformance/generate.py reproduces the committed keys, sites and cases byte for byte."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "conformance"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("conformance_generate", SUITE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for sub in ("keys", "sites", "cases")
        for p in sorted((folder / sub).rglob("*"))
        if p.is_file()
    }


def test_generator_output_equals_committed_files(tmp_path: Path) -> None:
    generate = _generator()
    count = generate.write(tmp_path)
    assert count >= 100
    fresh, committed = _tree(tmp_path), _tree(SUITE)
    assert sorted(fresh) == sorted(committed), "run `python conformance/generate.py` and commit the result"
    differing = [name for name in fresh if fresh[name] != committed[name]]
    assert not differing, f"regenerate the suite; these files differ: {differing[:10]}"
