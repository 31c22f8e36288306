# The README names these targets. `make run` and `make test` install whatever is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
STAMP_SYS := build/.system-deps

.PHONY: install run run-scaled test lint format bench bench-gas bench-indexer bench-web bench-load chain demo \
	compile clean mutation translations translations-compile

install: $(STAMP_PY) $(STAMP_NODE) $(STAMP_SYS) translations-compile

$(STAMP_PY): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP_SYS): scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	mkdir -p build && touch $@

compile: install
	$(BIN)/escrow compile

run: install
	$(BIN)/python scripts/run_stack.py

# The production shape on one machine: PostgreSQL, Redis, two indexers and keepers (one
# active each), gunicorn instances behind nginx (docs/scaling.md).
run-scaled: install
	$(BIN)/python scripts/run_scaled.py

chain: install
	$(BIN)/escrow chain

demo: install
	$(BIN)/escrow demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check escrow webapp scripts tests
	$(BIN)/ruff format --check escrow webapp scripts tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix escrow webapp scripts tests
	$(BIN)/ruff format escrow webapp scripts tests

bench: bench-gas bench-indexer bench-web bench-load

# Compiles webapp/translations/*/LC_MESSAGES/messages.po into .mo (the app also does it
# when a .po is newer than its .mo).
translations-compile: $(STAMP_PY)
	$(BIN)/pybabel -q compile -d webapp/translations -D messages

# Extracts every translatable text (babel.cfg) and updates the Kazakh and Russian catalogues;
# then translate the new entries in webapp/translations/*/LC_MESSAGES/messages.po.
translations: $(STAMP_PY)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -k lazy_gettext -k lazy_ngettext:1,2 \
		--no-location --sort-output --omit-header -o webapp/translations/messages.pot .
	$(BIN)/pybabel update -i webapp/translations/messages.pot -d webapp/translations \
		-D messages --no-wrap --ignore-obsolete

mutation: install
	$(BIN)/python scripts/mutation_check.py

bench-gas: install
	$(BIN)/python scripts/bench_gas.py

bench-indexer: install
	$(BIN)/python scripts/bench_indexer.py

bench-web: install
	$(BIN)/python scripts/bench_web.py

bench-load: install
	$(BIN)/python scripts/bench_load.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
