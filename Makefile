# The README's two commands, `make run` and `make test`, do all set-up on a fresh
# Debian machine with Python 3.11: a venv, the project in strict editable mode (so
# mypy sees it), and the system tools the tests use (Graphviz's dot).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS :=

.PHONY: run test lint typecheck pytest diagrams bench clean setup system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# Graphviz's `dot` renders SVG/PNG. Installed with apt-get when missing and we are
# root; otherwise we say exactly what to install.
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

setup: $(STAMP) system-deps

run: setup
	$(BIN)/sephb model
	$(BIN)/sephb diagram --all -o out/

test: setup
	$(BIN)/ruff check model diagrams conformance tests
	$(BIN)/mypy --strict -p sephb.model -p sephb.diagrams -p sephb.conformance
	$(BIN)/python -m pytest

diagrams: setup
	$(BIN)/sephb diagram --all -o docs/diagrams/

bench: setup
	$(BIN)/python tests/benchmarks/bench_paths.py

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache .hypothesis
