# The two commands: `make run` and `make test`. Both create the virtualenv and install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

# The JavaScript SDK's test dependency (ws), for tests/clients/test_sdk_node.py. Without
# npm (or the registry) that test says why it skipped; nothing else needs Node.
JS_DEPS := clients/js/node_modules/.package-lock.json

.PHONY: run test lint types format venv clean js-deps

$(STAMP): requirements.txt requirements-dev.txt
	@scripts/system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	@scripts/run-dev

$(JS_DEPS): clients/js/package.json clients/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  (cd clients/js && npm ci --no-audit --no-fund --loglevel=error) \
	    || echo "npm ci failed in clients/js: the SDK's node tests will say so"; \
	else \
	  echo "npm not found: the SDK's node tests will be skipped (apt-get install nodejs npm)"; \
	fi

js-deps: $(JS_DEPS)

# The static checks, in the order `make test` runs them: style, import contracts
# (pyproject.toml [tool.importlinter]), types (pyproject.toml [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The types alone (also part of `make lint`, and so of `make test`).
types: $(STAMP)
	$(BIN)/mypy

test: lint js-deps
	@command -v chromium >/dev/null 2>&1 \
	  || echo "Chromium not found: the demo page's browser test will be skipped (apt-get install chromium)"
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache .import_linter_cache clients/js/node_modules test-artifacts
