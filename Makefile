# The README's two commands are `make run` and `make test`; both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test generate check-contract lint typecheck pytest

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/conversation-service serve

test: $(BIN)/.installed
	$(MAKE) check-contract lint typecheck pytest

generate: $(BIN)/.installed
	$(BIN)/python scripts/protos.py generate

check-contract: $(BIN)/.installed
	$(BIN)/python scripts/protos.py check

lint: $(BIN)/.installed
	$(BIN)/ruff check server tests scripts
	$(BIN)/ruff format --check server tests scripts

typecheck: $(BIN)/.installed
	$(BIN)/mypy server tests scripts

pytest: $(BIN)/.installed
	$(BIN)/pytest
