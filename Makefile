# registry-tool: the two Quick start commands are `make demo` and `make test`.
# Each sets itself up (system tools, its own virtualenv) and needs only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Go: on PATH, else the official tarball's location. verifiers/go/go.mod names the toolchain it
# needs; any Go >= 1.21 downloads that toolchain itself from the Go module proxy (GOTOOLCHAIN=auto).
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

.PHONY: demo test setup system lint typecheck layers unit test-go test-rust samples bench fuzz clean

demo: setup
	$(BIN)/python scripts/demo.py

test: setup lint typecheck layers unit test-go test-rust

setup: system $(STAMP)

system:
	@scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,bench,test]'
	@touch $(STAMP)

lint:
	$(BIN)/ruff check registry_tool tests bench scripts conformance
	$(BIN)/ruff format --check registry_tool

typecheck:
	$(BIN)/mypy

# The import contracts (pyproject.toml [tool.importlinter], docs/architecture.md): pure core, lean client.
layers:
	$(BIN)/lint-imports --no-cache

unit:
	$(BIN)/python -m pytest -n 2 -q

# The edit loop: the Python suite without the tests marked slow (Go and Rust builds, the demo,
# hostile corpora, the full conformance run) or browser (headless Chromium). `make test` runs all.
.PHONY: quick
quick: setup
	$(BIN)/python -m pytest -n 2 -q -m "not slow and not browser"

# The Go verifier: gofmt, vet, unit tests, the example host and the whole conformance suite.
test-go: setup
	@test -x "$(GO)" || { echo "test-go: Go not found at '$(GO)'; fix: install Go >= 1.21 (docs/client-go.md) or pass GO=/path/to/go"; exit 2; }
	@bad="$$(cd verifiers/go && $(dir $(GO))gofmt -l .)"; [ -z "$$bad" ] || { echo "test-go: not gofmt-formatted: $$bad; fix: gofmt -w verifiers/go"; exit 1; }
	cd verifiers/go && export PATH="$(dir $(GO)):$$PATH" && $(GO) vet ./... && $(GO) test -count=1 ./... && \
		CGO_ENABLED=1 CC="$${CC:-clang}" $(GO) test -race -count=1 -run 'SharedByGoroutines' .

# The Rust verifier (verifiers/rust): unit tests, trust vectors, library tests, the conformance
# suite and the lockfile interop test (verifiers/rust/test.sh finds cargo).
test-rust: setup
	verifiers/rust/test.sh

samples: setup
	$(BIN)/python scripts/build_samples.py

# Fuzz every parser of untrusted input for FUZZ_SECONDS seconds each (random inputs; `make test`
# runs the same targets on a fixed, small sample). A crash is reported with its shrunk input.
FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -n 2 -q -m fuzz tests/fuzz

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
