# ftlab's everyday commands. Each creates .venv with pip on first use (PyTorch comes from the
# machine's local wheel cache or PyPI; versions pinned by constraints.txt).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: setup demo test test-fast lint format ui bench constraints clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	@# The tests start a real PostgreSQL server from the Debian package's binaries.
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  (echo "installing PostgreSQL (Debian package postgresql) for the tests"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)
	touch $@

setup: $(VENV)/.installed  ## create .venv and install ftlab (editable) with the tested versions

demo: setup  ## the main job: fine-tune MiniLM on VADER regression, offline, tracked in ./mlruns
	$(BIN)/ftlab train

test: setup  ## the whole test suite, the slow real-model run included (what CI runs)
	$(BIN)/pytest -q -n 2 --dist loadfile

test-fast: setup  ## everything but the slow real-model runs
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow"

lint: setup
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: setup
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

ui: setup  ## the MLflow UI on ./mlruns at http://127.0.0.1:5000
	$(BIN)/ftlab ui

bench: setup  ## benchmarks/: speed figures, both sides in one run; JSON in benchmarks/results/
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

constraints: setup  ## re-pin constraints.txt to what .venv holds now
	( echo "# Exact versions ftlab is tested with (pip install -c constraints.txt ...). Regenerate: make constraints"; \
	  $(PIP) freeze --exclude-editable | grep -v '^ftlab' ) > constraints.txt

clean:
	rm -rf outputs multirun .pytest_cache
