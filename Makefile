# The two commands a newcomer needs:  make run   and   make test   (make test-fast: a quick subset)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# examples/releases/ holds frozen older versions, so ./modules offers an update out of the box.
EXAMPLES := $(wildcard examples/plugins/*/metadata.json examples/releases/*/metadata.json)

export PLUGIN_LOCAL_DIR ?= $(CURDIR)/modules
export PLUGDOCK_HOME ?= $(CURDIR)/instance
# Two test files at a time: most tests wait on servers, databases and a browser, not the CPU.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: run run-billing billing-web test test-fast test-lowest lock bench lint modules services clean web browser

# pyproject.toml declares ranges; constraints.txt pins the exact versions installed here.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e ".[dev]" -c constraints.txt
	$(BIN)/pip install --quiet --no-deps openapi-python-client==0.29.1  # see pyproject's dev extra
	touch $(STAMP)

# The lower end of the ranges: every direct dependency at its oldest declared version
# (constraints-lowest.txt) in a venv of its own, running the quick tests.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed-stamp
$(LOWEST_STAMP): pyproject.toml constraints-lowest.txt
	test -d $(LOWEST) || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip==26.3
	$(LOWEST)/bin/pip install --quiet -e ".[server,test]" -c constraints-lowest.txt
	touch $@

test-lowest: $(LOWEST_STAMP) $(WEB_DEPS)
	$(LOWEST)/bin/pytest $(TEST_FAST_ARGS) -m "$(FAST_MARKERS)" -p no:cacheprovider

# Re-pin constraints.txt to the newest versions the ranges allow (then run make test).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip==26.3
	.venv-lock/bin/pip install --quiet -e ".[dev]"
	{ sed -n '1,/^$$/p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

# Pack every example plugin (and its frozen older releases) into the local source folder.
modules: $(STAMP) web
	mkdir -p modules
	for meta in $(EXAMPLES); do $(BIN)/plugdock pack $$(dirname $$meta) -o modules >/dev/null || exit 1; done
	@ls modules

run: modules web
	bash scripts/demo.sh

# The billing example host (examples/hosts/billing): its own app, users and UI, plugdock inside.
run-billing: modules billing-web
	bash scripts/billing.sh

# The billing host's UI (examples/hosts/billing/web → its dist/), for run-billing and the tests.
BILLING_WEB := examples/hosts/billing/web
BILLING_WEB_SOURCES := $(shell find $(BILLING_WEB)/src -type f 2>/dev/null) $(BILLING_WEB)/index.html $(BILLING_WEB)/vite.config.ts

billing-web: $(BILLING_WEB)/dist/index.html

# @plugdock/react, built into packages/react/dist/: the billing UI depends on it as
# "file:../../../../packages/react" (a link npm ci makes; its lock entry never goes stale).
REACT_DEPS := packages/react/node_modules/.package-lock.json
REACT_DIST := packages/react/dist/index.js
REACT_SOURCES := $(shell find packages/react/src -type f 2>/dev/null) packages/react/build.mjs packages/react/package.json

$(REACT_DIST): $(REACT_DEPS) $(REACT_SOURCES)
	cd packages/react && npm run --silent build

$(BILLING_WEB)/node_modules/.package-lock.json: $(BILLING_WEB)/package.json $(BILLING_WEB)/package-lock.json
	cd $(BILLING_WEB) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BILLING_WEB)/dist/index.html: $(BILLING_WEB)/node_modules/.package-lock.json $(REACT_DIST) $(BILLING_WEB_SOURCES)
	cd $(BILLING_WEB) && npx vite build --logLevel warn

services:
	bash scripts/ensure-services.sh

# The panel-level tests once more with every plugin in its own sandboxed process
# (PLUGDOCK_ISOLATION=process; tests/isolation/test_isolation.py runs in both passes).
PROCESS_MODE_TESTS := tests/host/test_panel.py tests/host/test_lifecycle_api.py \
	tests/plugin_code/test_chatbot_plugin.py tests/browser/test_browser_lifecycle.py \
	tests/host/test_hardening.py

test: modules services web billing-web browser lint test-lowest
	$(BIN)/pytest $(PYTEST_ARGS)
	PLUGDOCK_ISOLATION=process $(BIN)/pytest $(PYTEST_ARGS) $(PROCESS_MODE_TESTS)

bench: modules
	$(BIN)/python bench/install.py
	$(BIN)/python bench/runtime.py
	$(BIN)/python bench/remote.py
	$(BIN)/python bench/upgrade.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/replicas.py
	$(BIN)/python bench/isolation.py
	$(BIN)/python bench/frames.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/filters.py

# The web UI (web/ → src/plugdock/host/static/); also provides the esbuild that packs plugin UIs.
WEB_STATIC := src/plugdock/host/static/.build-stamp
WEB_DEPS := web/node_modules/.package-lock.json
# The shell bundles @plugdock/react's sources (packages/react/src, through web/tsconfig.json's paths).
WEB_SOURCES := $(shell find web/src packages/react/src -type f 2>/dev/null) web/build.mjs web/index.html web/frame.html web/package.json
# @plugdock/react's own tools (its typecheck, lint and npm build; the shell does not need them):
# REACT_DEPS, with the billing UI's rules above.

web: $(WEB_STATIC)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_STATIC): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && node build.mjs

$(REACT_DEPS): packages/react/package.json packages/react/package-lock.json
	cd packages/react && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The static checks `make test` runs first (a few seconds each; see docs/architecture.md).
# After WEB_DEPS: prerequisites are expanded where the rule is read.
lint: $(STAMP) $(WEB_DEPS) $(REACT_DEPS) $(REACT_DIST) $(BILLING_WEB)/node_modules/.package-lock.json
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd web && npm run --silent typecheck
	cd web && npm run --silent lint
	cd packages/react && npm run --silent typecheck
	cd packages/react && npm run --silent lint
	cd $(BILLING_WEB) && npm run --silent typecheck

# The tests that need only the venv and web/node_modules (esbuild packs the plugins' UIs): no
# database server, browser, plugin process or server socket, and none marked slow (the markers
# in pyproject.toml, applied in tests/conftest.py). 31-39 s on this 2-core VM when it is quiet.
# Two files at a time, as make test: one process took 48-54 s; three processes, or single
# tests spread instead of files, were no faster.
FAST_MARKERS := not (dbserver or browser or processes or server or slow)
TEST_FAST_ARGS ?= -n 2 --dist loadfile
test-fast: $(STAMP) $(WEB_DEPS)
	$(BIN)/pytest $(TEST_FAST_ARGS) -m "$(FAST_MARKERS)"

# Debian's chromium for the browser tests (tests/browser/).
browser:
	bash scripts/ensure-browser.sh

clean:
	rm -rf $(VENV) $(LOWEST) modules instance instance-billing build web/node_modules \
		src/plugdock/host/static packages/react/node_modules packages/react/dist \
		tests/browser/hosts/.cache examples/hosts/billing/web/node_modules \
		examples/hosts/billing/web/dist
