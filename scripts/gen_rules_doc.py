#!/usr/bin/env python3
"""Write docs/rules.md, the table of every rule id, from the catalogue in registry_tool/rules.py.

python scripts/gen_rules_doc.py          # rewrite docs/rules.md
python scripts/gen_rules_doc.py --check  # exit 1 when docs/rules.md is not what the catalogue says
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "rules.md"

_AREAS = {
    "validate": "`validate` (manifests, modules, registry.toml)",
    "ci": "`ci check` (index pull requests)",
    "dependencies": "Dependencies (`validate`, `ci check`, `build`, the client)",
    "trust": "Keys, signatures and the root of trust (`verify`, `root`, `sign`)",
    "smoke": "`smoke` (the sandbox)",
    "build": "`build` and `resign`",
    "client": "The client (`client ...`)",
    "lockfile": "The plugin directory and the lockfile (`client ...`)",
    "general": "Every command",
}


def render() -> str:
    """The Markdown of docs/rules.md."""
    from registry_tool.rules import RULES

    lines = [
        "# Rule ids",
        "",
        "Every finding a command reports carries one of these rule ids (JSON `rule`, SARIF `ruleId`,",
        "the title of a GitHub annotation). The severity is the one a finding has unless the command",
        "says otherwise (for example `permission-escalation` is a warning with",
        "`ci check --allow-escalation`). SARIF links each rule to the page that explains it.",
        "",
        "Generated from `registry_tool/rules.py` by `python scripts/gen_rules_doc.py`; a test fails",
        "when this page is stale.",
    ]
    for area, title in _AREAS.items():
        rules = [r for r in RULES.values() if r.area == area]
        if not rules:
            continue
        lines += ["", f"## {title}", "", "| rule | severity | meaning | explained in |", "|---|---|---|---|"]
        for r in rules:
            page, _, anchor = r.doc.partition("#")
            link = f"[{Path(page).name}]({Path(page).name if page.startswith('docs/') else '../' + page}"
            link += f"#{anchor})" if anchor else ")"
            summary = r.summary.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            lines.append(f"| `{r.id}` | {r.severity.value} | {summary} | {link} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` compare it."""
    text = render()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/gen_rules_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
