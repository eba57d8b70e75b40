# registry-tool: the two Quick start commands are `make demo` and `make test`.
# Each sets itself up (system tools, its own virtualenv) and needs only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup system lint typecheck unit test-rust samples bench clean

demo: setup
	$(BIN)/python scripts/demo.py

test: setup lint typecheck unit test-rust

setup: system $(STAMP)

system:
	@scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

lint:
	$(BIN)/ruff check registry_tool tests bench scripts conformance
	$(BIN)/ruff format --check registry_tool

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/python -m pytest -n 2 -q

# The Rust verifier (verifiers/rust): unit tests, trust vectors, the conformance suite.
test-rust: setup
	verifiers/rust/test.sh

samples: setup
	$(BIN)/python scripts/build_samples.py

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
