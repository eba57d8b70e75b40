"""The one test world: keys, root chains, releases, signed index trees, built sites, an
in-memory site simulator behind the client's fetcher interface, and the CLI runner.

The ci, registry and client tests build their registries here; their conftest files only
choose data (which releases, which clock, which registry.toml).
"""

from tests.world.index import (
    FIXED_NOW,
    MAINTAINERS,
    IndexTree,
    Keys,
    add_module,
    forge_plugin_document,
    forge_top,
    make_root_chain,
    manifest_text,
    new_key,
    registry_toml,
    wasm,
    write_meta,
    yank_text,
)
from tests.world.simulator import SIM_URL, Network, SiteSimulator, read_tree
from tests.world.tool import TOOL, check_jsonschema_command, run_tool, tool_shim

__all__ = [
    "FIXED_NOW",
    "MAINTAINERS",
    "SIM_URL",
    "TOOL",
    "IndexTree",
    "Keys",
    "Network",
    "SiteSimulator",
    "add_module",
    "check_jsonschema_command",
    "forge_plugin_document",
    "forge_top",
    "make_root_chain",
    "manifest_text",
    "new_key",
    "read_tree",
    "registry_toml",
    "run_tool",
    "tool_shim",
    "wasm",
    "write_meta",
    "yank_text",
]
