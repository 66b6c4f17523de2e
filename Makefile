# The two commands a newcomer needs:  make run   and   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXAMPLES := $(wildcard examples/plugins/*/metadata.json)

export PLUGIN_LOCAL_DIR ?= $(CURDIR)/modules
export PLUGDOCK_HOME ?= $(CURDIR)/instance

.PHONY: run test bench lint modules services clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Pack every example plugin into the local source folder.
modules: $(STAMP)
	mkdir -p modules
	for meta in $(EXAMPLES); do $(BIN)/plugdock pack $$(dirname $$meta) -o modules >/dev/null || exit 1; done
	@ls modules

run: modules
	bash scripts/demo.sh

services:
	bash scripts/ensure-services.sh

test: modules services
	$(BIN)/ruff check src tests bench examples
	$(BIN)/pytest $(PYTEST_ARGS)

bench: modules
	$(BIN)/python bench/install.py
	$(BIN)/python bench/remote.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf $(VENV) modules instance build
