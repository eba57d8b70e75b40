"""Write the schema validators that ship in the package (registry_tool/manifest/_schemas/).

For every schema checked on a hot path (plugin.toml's, registry.toml's and the root's), fastjsonschema's
``compile_to_code`` turns ``schemas/NAME`` into Python once, here, so that no run of the tool
generates code (~150 ms, more than a whole warm ``validate``).  Run it after changing a schema:

    .venv/bin/python scripts/gen_schema_validators.py          # rewrite the modules
    .venv/bin/python scripts/gen_schema_validators.py --check  # exit 1 if one differs

A module records the digest of its schema and the fastjsonschema version that wrote it; ``--check``
also reports a module another fastjsonschema version wrote.  tests/manifest/test_schema_fast_path.py
fails when a committed module was generated from another schema (or, with the same fastjsonschema
version installed, is not exactly what this script writes), and checks that the shipped code gives
the verdicts of the installed fastjsonschema's own ``compile``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from registry_tool.manifest import source  # noqa: E402
from registry_tool.manifest.config import CONFIG_SCHEMA  # noqa: E402
from registry_tool.manifest.model import PLUGIN_SCHEMA  # noqa: E402
from registry_tool.trust.root import ROOT_SCHEMA  # noqa: E402

SCHEMAS = (PLUGIN_SCHEMA, CONFIG_SCHEMA, ROOT_SCHEMA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale modules (exit 1)")
    args = parser.parse_args()
    stale = []
    for name in SCHEMAS:
        path = source.shipped_validator_path(name)
        text = source.generate_validator_module(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        for path in stale:
            print(f"stale: {path.relative_to(REPO)}; fix: run scripts/gen_schema_validators.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
