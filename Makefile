# `make demo` runs the product on its embedded default; `make test` runs every check.
# Each target creates .venv when it is missing. The demo installs the product alone (`.`);
# the checks install it with the dev toolchain (`.[dev]`: pytest, Playwright, mypy, ruff).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEMO_STAMP = $(VENV)/.demo-stamp
DEV_STAMP = $(VENV)/.dev-stamp
# The edit loop: all but PostgreSQL, Chromium and `slow` (processes, the MiniLM model).
FAST_MARKERS ?= not postgres and not browser and not slow
# pytest-xdist workers for `make test` and `make test-fast` (docs/testing.md). More workers than
# cores: many tests wait on processes, sockets, PostgreSQL and Chromium. `TEST_WORKERS=0` runs
# everything in one process.
TEST_WORKERS ?= 4
FAST_WORKERS ?= 2

.PHONY: demo test test-fast lint bench bench-quick clean

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/digest demo --serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The edit loop, under a minute and a half on 2 cores; `make test` still runs every test. Every
# test in test_semantic.py is `slow`: ignoring the file skips collecting it at all.
test-fast: $(DEV_STAMP)
	$(BIN)/pytest -q -n $(FAST_WORKERS) --dist worksteal -m '$(FAST_MARKERS)' \
		--ignore=tests/test_semantic.py

bench: $(DEV_STAMP)
	$(BIN)/python bench/run_all.py

# CI-sized: 10k subscribers end to end instead of 100k, 100k profiles instead of 1M.
bench-quick: $(DEV_STAMP)
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf var tests/artifacts bench/results.json bench/RESULTS.md
