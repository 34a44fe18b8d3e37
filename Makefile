# Two entry points: `make repro` runs the whole study on the defaults, `make test` runs the tests.
# Each creates the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install repro test
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

repro: install
	$(BIN)/dvc repro

test: install
	$(BIN)/python -m pytest -q; status=$$?; [ $$status -ne 5 ] || { echo "error: pytest collected no tests" >&2; exit 1; }; exit $$status
