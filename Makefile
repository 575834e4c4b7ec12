# Two commands: `make demo` and `make test`. Both build .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration clean-room clean bench image image-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rd-connector demo

test: $(STAMP) lint typecheck clean-room
	$(BIN)/pytest

# The wheel as users get it: every module and schema in it, installed outside the checkout, the demo run.
clean-room: $(STAMP)
	.ci/clean-room $(BIN)/python

lint: $(STAMP)
	$(BIN)/ruff check connector tests deploy setup.py
	$(BIN)/ruff format --check connector tests deploy setup.py

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

# Benchmark suite (not part of `make test`); prints one JSON document and a table (see BENCHMARKS.md).
# The Quix Streams peer gets its own venv: quixstreams pins confluent-kafka < 2.13, which would downgrade .venv's.
# The peer imports connector.mapping (no-deps install): its own dependencies are listed here too (the stamp names the list).
QUIX_VENV := benchmarks/.venv-quix
BENCH_ARGS ?=
bench: $(STAMP)
	@test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	@test -f $(QUIX_VENV)/.installed-2 || { $(QUIX_VENV)/bin/pip install --quiet --upgrade pip && \
	  $(QUIX_VENV)/bin/pip install --quiet 'quixstreams==3.28.1' fastavro pyyaml && \
	  $(QUIX_VENV)/bin/pip install --quiet --no-deps -e . && touch $(QUIX_VENV)/.installed-2; }
	$(BIN)/python benchmarks/suite.py $(BENCH_ARGS)

# The container image (docker or podman; see deploy/image/), and its smoke test against the embedded broker
# and the mock RD on the host. Neither runs in `make test`: CI has no container engine.
image:
	deploy/image/build.sh

image-test: $(STAMP) image
	$(BIN)/python deploy/image/smoke_test.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
