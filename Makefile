# Two entry points: `make repro` runs the whole study on the defaults, `make test` runs the tests.
# Each creates the virtual environment on first use: `make install` the pipeline's packages
# (requirements.txt), `make install-dev` those plus the tests' and benchmarks'
# (requirements-dev.txt). `make install VENV=/some/where` builds the environment elsewhere.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev repro lint test
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# torch first and on its own, so that nothing after it asks for (and downloads) another build;
# then the pins; then the package with its declared dependencies, which the pins already
# satisfy, so pip installs nothing more (tests/test_packaging.py checks that each one is pinned).
# `pip check` fails the install when the installed versions contradict a declared range.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip check
	touch $@

# Stage commands call `python`: the environment's bin folder goes first on PATH so that they
# run with its interpreter and packages, not whatever `python` the shell would find.
# reports/provenance.md records the commit, host, CPU flags and wall time of a run that re-ran stages.
repro: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m mlret.provenance reports/provenance.md -- dvc repro

# Two workers taking whole files, the end-to-end file first (tests/conftest.py orders it,
# `--no-loadscope-reorder` keeps that order), one BLAS/OpenMP thread each: with two each on
# two cores the suite took 5 min 19 s instead of 4 min 35 s.
# Formatting, lint and types first (seconds), then pytest.
test: install-dev lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder; status=$$?; [ $$status -ne 5 ] || { echo "error: pytest collected no tests" >&2; exit 1; }; exit $$status

# `ruff format .` and `ruff check --fix .` repair most of what this reports.
lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
