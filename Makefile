# The README's two commands are `make run` and `make test`; both build .venv first, from
# uv.lock only. `make lock` refreshes the lock: a reviewed commit of its own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv, pinned with hashes in scripts/uv-requirements.txt, in a venv of its own.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv uses the machine's Python, never one it would download.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test bench lock wheel generate check-contract lint typecheck pytest \
	postgres-server chromium promtool mutation

$(UV): scripts/uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes -r scripts/uv-requirements.txt
	touch $@

# Exactly what uv.lock names (runtime, dev and bench), the project itself editable; a
# package the lock does not name is removed.
$(BIN)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	touch $@

venv: $(BIN)/.installed

lock: $(UV)
	$(UV) lock --upgrade

# The wheel and its runtime requirements (from the lock, with hashes) in dist/, as the
# Containerfile builds them.
wheel: $(UV)
	UV=$(UV) sh scripts/package.sh build dist

run: $(BIN)/.installed
	$(BIN)/conversation-service serve --demo

test: $(BIN)/.installed
	$(MAKE) check-contract lint typecheck pytest

# Not part of `make test`: speed is measured here, never in a test. Needs h2load
# (Debian nghttp2-client) and wrk, installed here, and PostgreSQL on 127.0.0.1:5432.
# The first run builds the 1,000,000-conversation data set (.cache/bench/ and the
# PostgreSQL database conversations_bench_1m_v1); later runs reuse it.
bench: $(BIN)/.installed
	command -v h2load >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nghttp2-client wrk)
	$(BIN)/python -m bench.run

# Not part of `make test`: mutation testing of the modules that hold the service's rules
# ([tool.mutmut] in pyproject.toml) against the unit tests, in mutmut's copy of the tree
# (mutants/). Each run starts afresh: mutmut's kept results do not follow changed tests.
# Run it before calling a change to those modules done; its last line is the score.
MUTATION_SECONDS ?= 1800
mutation: $(BIN)/.installed
	rm -rf mutants
	timeout $(MUTATION_SECONDS) $(BIN)/mutmut run || \
		echo "mutmut stopped after $(MUTATION_SECONDS) s or failed: the score counts what it checked"
	$(BIN)/python scripts/mutation_score.py

generate: $(BIN)/.installed
	$(BIN)/python scripts/protos.py generate

check-contract: $(BIN)/.installed
	$(BIN)/python scripts/protos.py check

# Redocly's CLI from the npm registry, exactly as scripts/redocly/package-lock.json names it
# (the machine's Node.js and npm run it); it sends no telemetry and looks for no update.
REDOCLY := scripts/redocly/node_modules/.bin/redocly
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

$(REDOCLY): scripts/redocly/package-lock.json
	npm ci --prefix scripts/redocly --no-audit --no-fund --loglevel=error
	touch $@

lint: $(BIN)/.installed $(REDOCLY)
	$(BIN)/ruff check server tests scripts bench harness
	$(BIN)/ruff format --check server tests scripts bench harness
	$(BIN)/hadolint Containerfile
	$(REDOCLY) lint --config scripts/redocly/redocly.yaml generated/conversations/v4/openapi.json

typecheck: $(BIN)/.installed
	$(BIN)/mypy server tests scripts bench harness

# The tests use the PostgreSQL on 127.0.0.1:5432, or, when nothing answers there, a
# private cluster that tests/postgres_cluster.py starts for the run and removes after.
pytest: $(BIN)/.installed postgres-server chromium promtool
	$(BIN)/python -m tests.postgres_cluster -- $(BIN)/pytest

# The server binaries (initdb, pg_ctl): the private cluster and the fault tests run them.
postgres-server:
	@(ls /usr/lib/postgresql/*/bin/initdb || command -v initdb) >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql)

# Debian's chromium: the API explorer's test drives it headless (through Playwright, which
# downloads no browser of its own).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# promtool, alone out of Debian's prometheus package (no server, no service started): the
# metrics tests check a scrape and docs/prometheus/alerts.yml with it.
PROMTOOL := $(TOOLS)/bin/promtool
promtool: $(PROMTOOL)

$(PROMTOOL):
	rm -rf $(TOOLS)/debs && mkdir -p $(TOOLS)/debs $(TOOLS)/bin
	cd $(TOOLS)/debs && (apt-get download -qq prometheus || \
		(apt-get update -qq && apt-get download -qq prometheus))
	dpkg-deb --fsys-tarfile $(TOOLS)/debs/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.part
	chmod +x $@.part && mv $@.part $@ && rm -rf $(TOOLS)/debs
