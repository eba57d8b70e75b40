"""The page against the independent conformance suite (conformance/, FORMAT2-SPEC 10).

Every case that pins a root and then refreshes once (no transport fault, no optional feature) is
replayed in the browser: the case's site is served with the page added, the pinned root is the
case's root file and the page's clock is the step's `now`.  The page must reach the client's
verdict: verified where `refresh` succeeds, the same error class where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from registry_tool.registry.catalog import write_catalog

from .conftest import Server

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("REGISTRY_TOOL_CONFORMANCE_DIR", REPO / "conformance"))


def refresh_cases() -> list[dict[str, Any]]:
    out = []
    for path in sorted((SUITE / "cases").glob("*.json")):
        case = json.loads(path.read_bytes())
        steps = case["steps"]
        if (
            case["requires"]
            or [s["op"] for s in steps] != ["pin", "refresh"]
            or not steps[0]["expect"]["ok"]
            or any("serve" in s for s in steps)
            or steps[0]["site"] != steps[1]["site"]
        ):
            continue
        out.append(case)
    return out


def materialise(site: str, dest: Path) -> None:
    """Resolve an overlay site (`_site.json`: base + changed files - deleted paths) into dest."""
    src = SUITE / site
    overlay = src / "_site.json"
    if overlay.exists():
        spec = json.loads(overlay.read_bytes())
        materialise(f"sites/{spec['base']}", dest)
        for path in spec.get("deleted", []):
            target = dest / path
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_site.json"))


def test_page_reaches_the_conformance_verdicts(browser: Any, server: Server) -> None:
    if not (SUITE / "cases").is_dir():
        pytest.skip(f"no conformance suite at {SUITE}")
    cases = refresh_cases()
    assert len(cases) >= 20, "the suite should hold many pin+refresh cases"
    for case in cases:
        pin = case["steps"][0]
        folder = server.root / "conformance" / case["id"]
        shutil.rmtree(folder, ignore_errors=True)
        materialise(pin["site"], folder)
        root_rel = Path(pin["root"]).relative_to(pin["site"])
        write_catalog(folder, (folder / root_rel).read_bytes())
    mismatches = []
    batch = 8  # pages verify concurrently; each is awaited before the next batch opens
    for start in range(0, len(cases), batch):
        pages = []
        for case in cases[start : start + batch]:
            # One context per case: pages of one origin share storage, and the page keeps state
            # per registry (the highest version seen), so cases must not see each other's.
            page = browser.new_context().new_page()
            now = case["steps"][1]["now"]
            page.clock.set_fixed_time(datetime.fromisoformat(now.replace("Z", "+00:00")))
            page.goto(f"{server.url}conformance/{case['id']}/", wait_until="commit")
            pages.append((case, page))
        for case, page in pages:
            page.wait_for_selector("#badge[data-state=verified], #badge[data-state=failed]", timeout=30000)
            if page.get_attribute("#badge", "data-state") == "verified":
                got = "ok"
            else:
                got = page.get_attribute(".failure", "data-error")
            expect = case["steps"][1]["expect"]
            want = "ok" if expect["ok"] else expect["error"]
            if got != want:
                mismatches.append(f"{case['id']}: page {got}, client {want} ({page.inner_text('#badge')!r})")
            page.context.close()
    print(f"\nconformance: {len(cases) - len(mismatches)} of {len(cases)} pin+refresh cases agree")
    assert not mismatches, "\n".join(mismatches)
