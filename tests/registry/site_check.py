"""Reading a built site back in tests: pins checked, every document validated by the JSON schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def read_site(site: Path, *, schemas: bool = True) -> Any:
    """The publication in a built site (pins checked), every document validated by the JSON schemas."""
    import json

    import jsonschema

    from registry_tool.registry.document import read_site_dir

    if schemas:
        by_type = {
            t: jsonschema.Draft202012Validator(json.loads((SCHEMAS / f).read_text()))
            for t, f in (
                ("registry-node", "registry-node.schema.json"),
                ("registry-plugin", "registry-plugin.schema.json"),
                ("registry-catalog", "registry-catalog.schema.json"),
            )
        }
        top = json.loads((site / "registry.json").read_bytes())
        jsonschema.Draft202012Validator(json.loads((SCHEMAS / "registry.schema.json").read_text())).validate(
            top
        )
        for path in sorted((site / "meta").rglob("*.json")):
            doc = json.loads(path.read_bytes())
            by_type[doc["_type"]].validate(doc)
    return read_site_dir(site)
