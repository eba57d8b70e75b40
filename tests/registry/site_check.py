"""Reading a built site back in tests: pins checked, every document validated by the JSON schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from registry_tool.format import REGISTRY_JSON, TopDocument
from registry_tool.signing import read_signatures
from registry_tool.trust import Root, verify_index_signatures

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


def assert_valid_site(site: Path, index: object, *, signatures: bool = True) -> TopDocument:
    """What a client checks: the top document's signature, then every pinned document and file."""
    data = (site / REGISTRY_JSON).read_bytes()
    top = TopDocument.parse(data)
    if signatures:
        root = Root.parse((site / "root" / f"{top.root_version}.root.json").read_bytes())
        verify_index_signatures(root, data, read_signatures(site / REGISTRY_JSON))
    pub = read_site(site, schemas=False)
    for release in pub.releases():
        for ref in (release.manifest, release.wasm):
            data = (site / ref.path).read_bytes()
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref.sha256, ref.size), ref.path
    return top
