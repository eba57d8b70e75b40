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

from registry_tool.manifest.abi import link_import
from registry_tool.sandbox.abis import (
    Adapter,
    Case,
    ImportPolicy,
    LinkRefusedError,
    MissingExportError,
    Produced,
)

RUN_INTERFACE = "wasi:cli/run"
_RUN_CALLS = (None, RUN_INTERFACE, "run", "_start")


def check_component_imports(engine: wasmtime.Engine, comp: component.Component, policy: ImportPolicy) -> None:
    """Refuse a component import the policy does not allow, or one only a stub could provide."""
    for name in comp.type.imports(engine):
        allowed = policy.allowed(name, "")
        decision = link_import("component", name, "", "instance", allowed)  # validate's rule
        if not allowed:
            raise LinkRefusedError(
                f"import {name} is not allowed: neither the component ABI nor a declared permission grants it"
            )
        if not decision.linked:
            raise LinkRefusedError(f"component ABI: {decision.reason}")


class ComponentAdapter(Adapter):
    """The ``component`` runner: ``wasi:cli/run#run`` with WASI 0.2, a fresh instance per test.

    The component linker (wasmtime's WASI 0.2) and the import check are made once per release.
    """

    name = "component"

    def __init__(self, policy: ImportPolicy) -> None:
        """Create the runner of one release; ``prepare`` links it to its component."""
        super().__init__(policy)
        self._linker: component.Linker | None = None
        self._run_export = ""
        self._refused: Exception | None = None

    def prepare(self, engine: wasmtime.Engine, comp: component.Component) -> None:
        """Check the imports and find ``wasi:cli/run`` once; a refusal is every test's outcome."""
        try:
            check_component_imports(engine, comp, self.policy)
            names = [n for n in comp.type.exports(engine) if n.split("@")[0] == RUN_INTERFACE]
            if not names:
                raise MissingExportError(f"the component does not export {RUN_INTERFACE}")
        except (LinkRefusedError, MissingExportError) as err:
            self._refused = err
            return
        self._run_export = names[0]
        self._linker = component.Linker(engine)
        self._linker.add_wasip2()

    def run(self, comp: component.Component, store: wasmtime.Store, case: Case) -> Produced:
        """Instantiate in the test's store and call ``run``; raises like a module run does."""
        if case.call not in _RUN_CALLS:
            raise MissingExportError(
                f"component ABI: calling '{case.call}' is not supported yet; only {RUN_INTERFACE} runs"
            )
        if self._refused is not None:
            raise self._refused
        assert self._linker is not None, "prepare() links the component first"
        try:
            instance = self._linker.instantiate(store, comp)
        except wasmtime.WasmtimeError as err:
            text = str(err)
            if "matching implementation was not found" not in text:
                raise
            # An interface wasmtime's WASI 0.2 does not provide: a link error, not a trap.
            raise LinkRefusedError(f"component ABI: {text.splitlines()[0]}") from None
        interface = instance.get_export_index(store, self._run_export)
        index = instance.get_export_index(store, "run", interface) if interface is not None else None
        func = instance.get_func(store, index) if index is not None else None
        if func is None:
            raise MissingExportError(f"{self._run_export} has no 'run' function")
        try:
            result = func(store)
        except wasmtime.ExitTrap as exit_trap:
            return Produced(exit_code=exit_trap.code)
        # run returns result<_, _>: err is the program's failure, like a non-zero exit status.
        return Produced(exit_code=0 if getattr(result, "tag", "ok") == "ok" else 1)
