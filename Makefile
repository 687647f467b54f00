# The two commands of the quick start: `make demo` and `make test` (which installs Debian's
# Chromium for the browser tests when it is missing); and `make fuzz`, which
# runs every fuzz target (fuzz/targets.py) for FUZZ_RUNS inputs, one after the other.
# Each creates .venv and installs the package (with its test, torch and ray extras) on
# first use; constraints.txt pins torch to the CPU-only release these machines hold on
# disk (an unpinned torch would pull a CUDA build of several GB).

PYTHON ?= python3
# Inputs per fuzz target: at 2,500 (transaction, wal_file) to 200,000 (rfc3339) a second
# on one core, 1M per target take about 45 minutes in all.
FUZZ_RUNS ?= 1000000
# A time limit per fuzz target in seconds (0: none), whichever of the two comes first.
FUZZ_SECONDS ?= 0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint fuzz clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,torch,ray]'
	touch $(STAMP)

# DEMO_ARGS: e.g. --stay, to keep the network running after the demo (for the web UI).
DEMO_ARGS ?=

demo: $(STAMP)
	$(BIN)/cloudchain demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cloudchain tests fuzz
	$(BIN)/ruff format --check cloudchain tests fuzz

test: lint $(CHROMIUM)
	CLOUDCHAIN_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q

# The browser tests (tests/test_ui_browser.py) drive the distribution's Chromium through
# Playwright; Playwright's own browser download is never used. Installed when missing.
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

# Fails if any target crashed; the inputs are under .fuzz/crashes/<target>/.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz all --runs $(FUZZ_RUNS) --max-seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .fuzz build *.egg-info
