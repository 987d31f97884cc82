# Set-up and the two entry points of the README: `make demo` and `make test`.
# Both create .venv in the checkout, install torch==2.13.0 first (a CPU build on
# machines without CUDA; see DEVELOPERS.md), then the package.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-quick lint install install-test chromium clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(VENV)/bin/python
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/p3m doctor
	$(VENV)/bin/p3m weights fetch default
	$(VENV)/bin/p3m demo demo_out

# Test files are spread over TEST_WORKERS processes (pytest-xdist), a whole file to
# each, so a file's fixtures are built once; 2 fits the 2-core machines CI runs on.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The slowest tests are listed at the end: CI must stay under 20 minutes.
test: install-test chromium
	$(VENV)/bin/ruff check src tests benchmarks
	$(PYTEST) --durations=20

# The quick loop while developing: no training runs, no demo, no real-photo engine.
test-quick: install-test
	$(PYTEST) -m "not slow"

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks

# The demo page test runs in headless Chromium (Debian's package); install it when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; the demo page test will be skipped"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
