# The README's two commands, `make run` and `make test`, do all set-up on a fresh
# Debian machine with Python 3.11: a venv (with the build tools pyproject.toml asks
# for, so that tests/test_install.py builds a wheel offline), the project in strict
# editable mode (so mypy sees it), and the system tools the tests use (Graphviz, Chromium, SPIN).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint typecheck pytest diagrams bench mutation clean setup system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/pip install -q -e '.[dev,dask]' --config-settings editable_mode=strict
	touch $(STAMP)

# Graphviz's `dot` renders SVG/PNG; Chromium opens the HTML report in a test; SPIN
# (with gcc) model-checks the Promela export.
# Installed with apt-get when missing and we are root; otherwise we say exactly what
# to install.
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v spin >/dev/null 2>&1 || missing="$$missing spin"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

setup: $(STAMP) system-deps

# The reference client through the conformance suite, in process and over the wire.
CLIENT_CMD := $(BIN)/sephb client --sylink {sylink} --state-dir {state_dir} --time-scale {time_scale} \
              --log-dir {log_dir}

run: setup
	$(BIN)/sephb model
	$(BIN)/sephb diagram --all -o out/diagrams
	$(BIN)/sephb conform --report out/conform-in-process
	$(BIN)/sephb conform --client-cmd '$(CLIENT_CMD)' --report out/conform-wire
	$(BIN)/sephb validate conformance/examples/reference.har --data

test: setup
	$(BIN)/ruff check model diagrams conformance tests
	$(BIN)/mypy --strict -p sephb.model -p sephb.diagrams -p sephb.conformance
	$(BIN)/mypy --strict tests
	$(BIN)/python -m pytest

diagrams: setup
	$(BIN)/sephb diagram --all -o docs/diagrams/

bench: setup
	$(BIN)/python tests/benchmarks/bench_paths.py

# The mutation score of the reference client's core (judged by `sephb conform` under
# both readings) and store (judged by its tests); docs/mutation.md. cosmic-ray comes
# with the `mutation` extra, installed on top of the usual set-up. About 30 minutes.
MUTATION_STAMP := $(VENV)/.installed-mutation

$(MUTATION_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,dask,mutation]' --config-settings editable_mode=strict
	touch $(MUTATION_STAMP)

mutation: setup $(MUTATION_STAMP)
	$(BIN)/python tests/benchmarks/bench_mutation.py --out out/mutation

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache .hypothesis
