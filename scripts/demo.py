#!/usr/bin/env python3
"""The main job, end to end, on the bundled sample index (README Quick start: `make demo`).

validate -> smoke-run -> verify the root chain -> build the signed static site -> serve it
on 127.0.0.1 -> trust it, search, install (with permission approval), verify and run a
plugin through the verifying client -> stop the server.  Everything lands in .demo/.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("REGISTRY_TOOL_DEMO_DIR", ROOT / ".demo"))
INDEX = ROOT / "index"
INDEX_KEY = ROOT / "samples" / "keys" / "index.key"


def step(title: str, *args: str | Path) -> None:
    print(f"\n\033[1m==> {title}\033[0m\n$ registry-tool {' '.join(map(str, args))}", flush=True)
    done = subprocess.run([sys.executable, "-m", "registry_tool", *map(str, args)], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"demo: step '{title}' failed with exit code {done.returncode}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_installed(plugins: Path, state: Path, name: str) -> None:
    """Load the verified bytes through the host API and run the plugin's own tests in the sandbox."""
    from registry_tool.client import load_plugin
    from registry_tool.manifest import load_manifest, load_registry_config
    from registry_tool.sandbox import smoke_release

    loaded = load_plugin(plugins, name, state_dir=state)  # signatures and digests checked again
    # A host hands loaded.wasm to its engine with loaded.manifest's limits.  The demo re-runs the
    # release's own tests instead, and the sandbox reads the folder the lockfile names: the bytes
    # just verified, unless something writes to the plugin folder in between.
    outcomes = smoke_release(load_manifest(plugins / loaded.entry.manifest), load_registry_config(INDEX))
    print(f"loaded {name} {loaded.entry.version}: {len(loaded.wasm)} verified bytes")
    for o in outcomes:
        print(f"  {o.name}: {o.outcome} (fuel {o.fuel_consumed}, {o.wall_ms:.1f} ms)")
    if not all(o.passed for o in outcomes):
        sys.exit(f"demo: {name} did not pass its tests in the sandbox")


def check_dependency_recorded(plugins: Path) -> None:
    """The lockfile records the graph: email_domain's dependency and who requires validate_email."""
    from registry_tool.client import list_installed

    entries = {e.name: e for e in list_installed(plugins)}
    deps = entries["email_domain"].dependencies
    required_by = entries["validate_email"].required_by
    print(f"\nemail_domain depends on {deps}; validate_email is required by {list(required_by)}")
    if "validate_email" not in deps or "email_domain" not in required_by:
        sys.exit("demo: the lockfile does not record email_domain's dependency")


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    site, state, plugins = WORK / "site", WORK / "state", WORK / "plugins"
    step("Validate every manifest and module of the sample index", "validate", INDEX)
    step("Smoke-run every plugin's tests in the sandbox", "smoke", INDEX, "--jobs", "2")
    step("Verify the root chain", "root", "verify", "--dir", INDEX / "root")
    step("Build the signed static registry", "build", INDEX, "--out", site, "--key", INDEX_KEY)
    server = serve(site)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"\nserving {site} at {url}")
    if (site / "index.html").exists():
        print(f"browse the catalog (verified in the page): {url}index.html")
    try:
        client = ["--registry", url, "--state-dir", state]
        step(
            "Pin the registry's root (first use)",
            "client",
            "trust",
            url,
            "--root",
            INDEX / "root" / "1.root.json",
            "--state-dir",
            state,
        )
        step("Search the verified registry", "client", "search", "", *client)
        step(
            "Install a plugin (verifies root, index and maintainer signatures, digests)",
            "client",
            "install",
            "validate_email@^1.0",
            *client,
            "--dir",
            plugins,
        )
        step(
            "Install a plugin with a dependency (email_domain needs validate_email ^1.0: the plan keeps it)",
            "client",
            "install",
            "email_domain",
            *client,
            "--dir",
            plugins,
        )
        step(
            "Install a permission-gated plugin with explicit approval",
            "client",
            "install",
            "visit_counter",
            *client,
            "--dir",
            plugins,
            "--allow",
            "keys",
        )
        step("List installed plugins", "client", "list", "--dir", plugins)
        step(
            "Re-verify installed files offline against the lockfile",
            "client",
            "verify",
            "--dir",
            plugins,
            "--state-dir",
            state,
        )
        print("\n\033[1m==> Run the installed plugin once in the sandbox\033[0m")
        run_installed(plugins, state, "validate_email")
        check_dependency_recorded(plugins)
    finally:
        server.shutdown()
    print("\ndemo: all steps passed")


if __name__ == "__main__":
    main()
