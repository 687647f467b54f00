# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv and installs the package (with its test, torch and ray extras) on
# first use; constraints.txt pins torch to the CPU-only release these machines hold on
# disk (an unpinned torch would pull a CUDA build of several GB).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,torch,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cloudchain demo

lint: $(STAMP)
	$(BIN)/ruff check cloudchain tests
	$(BIN)/ruff format --check cloudchain tests

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
