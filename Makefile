# Two commands for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PY_DIRS := $(wildcard src tests bench scripts)
# Reinstall whenever pyproject.toml changes. Two stamps: serving needs only clickstats and its
# dependencies; the tools and oracles of `make test` come on top (`make run` skips them).
SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
SERVE_STAMP := $(VENV)/.installed-serve-$(SUM)
DEV_STAMP := $(VENV)/.installed-dev-$(SUM)
# uv (put into the venv by pip) resolves and installs several times faster than pip.
UV := $(BIN)/uv pip install -q --python $(BIN)/python

.PHONY: install install-serve run demo test lint sysdeps browser-deps node-deps bench clean

$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(UV) -e .
	rm -f $(VENV)/.installed-serve-*
	touch $@

$(DEV_STAMP): $(SERVE_STAMP)
	$(UV) -e '.[dev]'
	$(UV) --no-deps 'gbstats==0.8.0'
	rm -f $(VENV)/.installed-dev-*
	touch $@

install-serve: $(SERVE_STAMP)

install: $(DEV_STAMP)

run: install-serve
	$(BIN)/clickstats serve --host 127.0.0.1 --port $(PORT) $(if $(STORE),--store $(STORE))

# Simulated traffic into the default store (docs/SEARCH.md): numbers on the dashboard at once.
demo: install-serve
	$(BIN)/clickstats simulate --users 200 --searches 3000

lint: install
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy src

# System tools the tests drive (curl runs the README's examples as written).
sysdeps:
	command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)

# Headless Chromium for tests/browser (Playwright drives Debian's build: nothing is downloaded).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Algolia's search-insights, from the npm registry, for tests/browser/test_search_insights.py:
# the real client's UMD build, installed beside the venv (not vendored, not committed), once
# per version (the test names the version it expects).
SEARCH_INSIGHTS_VERSION := 2.17.3
SEARCH_INSIGHTS_DIR := $(VENV)/npm/search-insights-$(SEARCH_INSIGHTS_VERSION)
SEARCH_INSIGHTS := $(SEARCH_INSIGHTS_DIR)/node_modules/search-insights/dist/search-insights.min.js

$(SEARCH_INSIGHTS):
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm install --no-save --no-audit --no-fund --prefix $(SEARCH_INSIGHTS_DIR) search-insights@$(SEARCH_INSIGHTS_VERSION)

node-deps: $(SEARCH_INSIGHTS)

test: lint sysdeps browser-deps node-deps
	$(BIN)/pytest -q

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
