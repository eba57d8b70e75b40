"""The component ABI: WASI 0.2 components exporting ``wasi:cli/run``.

Supported: run-to-completion of ``wasi:cli/run#run`` with argv, environment and stdin as the test
declares and stdout/stderr captured, under the same fuel, epoch, store limits and output cap as
modules.  WASI 0.2 comes from wasmtime's own implementation (``Linker.add_wasip2``) with nothing
preopened and no network.  Imports are gated by the same policy as modules.

Not supported yet (each ends in a clear outcome, never a silent pass): calling exports other than
``wasi:cli/run`` (``missing_export``), stubs for permission-gated non-WASI imports (``link_error``),
and peak-memory figures (component memories are not exported; reported as null).
"""

from __future__ import annotations

import wasmtime
from wasmtime import component

from registry_tool.sandbox.abis import Case, ImportPolicy, LinkRefusedError, MissingExportError, Produced

RUN_INTERFACE = "wasi:cli/run"
_RUN_CALLS = (None, RUN_INTERFACE, "run", "_start")


def check_component_imports(engine: wasmtime.Engine, comp: component.Component, policy: ImportPolicy) -> None:
    for name in comp.type.imports(engine):
        if not policy.allowed(name, ""):
            raise LinkRefusedError(
                f"import {name} is not allowed: neither the component ABI nor a declared permission grants it"
            )
        if not name.startswith("wasi:"):
            raise LinkRefusedError(
                f"component ABI: a host stub for the permission-gated import {name} is not supported yet"
            )


def run_component(
    engine: wasmtime.Engine,
    comp: component.Component,
    case: Case,
    store: wasmtime.Store,
    policy: ImportPolicy,
) -> Produced:
    """Instantiate with WASI 0.2 and call ``wasi:cli/run#run``; raises like a module run does."""
    if case.call not in _RUN_CALLS:
        raise MissingExportError(
            f"component ABI: calling '{case.call}' is not supported yet; only {RUN_INTERFACE} runs"
        )
    check_component_imports(engine, comp, policy)
    names = [n for n in comp.type.exports(engine) if n.split("@")[0] == RUN_INTERFACE]
    if not names:
        raise MissingExportError(f"the component does not export {RUN_INTERFACE}")
    linker = component.Linker(engine)
    linker.add_wasip2()
    instance = linker.instantiate(store, comp)
    interface = instance.get_export_index(store, names[0])
    index = instance.get_export_index(store, "run", interface) if interface is not None else None
    func = instance.get_func(store, index) if index is not None else None
    if func is None:
        raise MissingExportError(f"{names[0]} has no 'run' function")
    try:
        result = func(store)
    except wasmtime.ExitTrap as exit_trap:
        return Produced(exit_code=exit_trap.code)
    # run returns result<_, _>: err is the program's failure, like a non-zero exit status.
    return Produced(exit_code=0 if getattr(result, "tag", "ok") == "ok" else 1)
