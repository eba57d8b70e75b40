#!/usr/bin/env python3
"""Regenerate docs/screenshots/catalog-*.png: the catalog page's main views in Debian's Chromium.

The site is the browser tests' format-2 fixture (tests/catalog/site_fixture.py), built for a fixed
time, and the page's clock is fixed too, so the pictures only change when the page does.
Run: .venv/bin/python scripts/catalog_screenshots.py
"""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))

from tests.catalog.site_fixture import KEYS, build_site  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BUILT = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
VIEWED = BUILT + timedelta(hours=2)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp)
        build_site(served / "good", now=BUILT)
        build_site(served / "wrong-key", now=BUILT, index_key=KEYS["mallory"])
        handler = functools.partial(_Quiet, directory=str(served))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}/"
        shots = [
            ("catalog-list.png", "good/", "light", (1100, 820), False),
            ("catalog-plugin.png", "good/#/plugin/validate_email", "light", (1100, 900), True),
            ("catalog-root.png", "good/#/root", "light", (1100, 900), True),
            ("catalog-failure.png", "wrong-key/", "light", (1100, 520), False),
            ("catalog-dark.png", "good/#/plugin/visit_counter", "dark", (1100, 820), False),
            ("catalog-phone.png", "good/", "light", (390, 844), False),
        ]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                for name, path, scheme, (w, h), full in shots:
                    page = browser.new_page(viewport={"width": w, "height": h}, color_scheme=scheme)
                    page.clock.set_fixed_time(VIEWED)
                    page.goto(base + path)
                    page.wait_for_selector("#badge[data-state=verified], #badge[data-state=failed]")
                    page.wait_for_load_state("networkidle")
                    page.evaluate("document.activeElement && document.activeElement.blur()")
                    page.screenshot(path=str(OUT / name), full_page=full)
                    print(f"wrote {(OUT / name).relative_to(ROOT)}")
                    page.close()
                browser.close()
        finally:
            httpd.shutdown()


if __name__ == "__main__":
    main()
