"""Compile a component in a process of its own and print its top-level import and export names.

Run by ``wasm._compiled_component_info`` as ``python -m registry_tool.manifest._component_probe
ADDRESS_SPACE FEATURES_JSON`` with the component on stdin.  Its types are only available from a
compiled component, and compiling is where a hostile one costs: 900,000 empty functions in 3.6 MB
took 25 s and 4.9 GB in the process of ``validate`` (and of ``ci check``, the build and the
client), and two of them aborted it.  Here the address space is capped before wasmtime is
imported and the caller's timeout ends the process, so such a component is a finding.

Output, one JSON line: ``{"imports": [...], "exports": [...]}`` or ``{"error": "..."}``; any other
end (a signal, an exit status with no line) is the caller's to explain.
"""

from __future__ import annotations

import json
import resource
import sys


def main() -> int:
    """Cap the address space, compile stdin's component, print its names (exit 0) or its error."""
    address_space, features = int(sys.argv[1]), json.loads(sys.argv[2])
    # Never above a hard limit the caller's process already has (a smaller one stays).
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        address_space = min(address_space, hard)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file behind
    data = sys.stdin.buffer.read()

    import wasmtime.component

    from registry_tool.manifest import wasm
    from registry_tool.manifest.wasm import _first_line, make_engine

    # On the calling thread, as a forked smoke worker compiles: a thread pool of one thread per
    # core, each with its own malloc arena, does not fit the address space on a many-core host.
    wasm._forked()

    engine = make_engine({**features, "component_model": True})
    names: dict[str, object]
    try:
        ctype = wasmtime.component.Component(engine, data).type
        names = {"imports": list(ctype.imports(engine)), "exports": list(ctype.exports(engine))}
    except wasmtime.WasmtimeError as err:
        names = {"error": _first_line(err)}
    sys.stdout.write(json.dumps(names) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
