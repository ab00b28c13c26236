# Two commands do everything on a fresh machine with Python 3.10-3.12 and gcc:
#   make demo   set up .venv and print a recommendation for a sample profile
#   make test   set up .venv with the test extras and run the whole suite
# Also: make docs (HTML into docs/_build/html), make bench (benchmarks/bench.py).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,10) <= sys.version_info[:2] < (3,13))' && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test docs bench graphviz chromium clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.10, 3.11 or 3.12 (durable-rules does not import on 3.13)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[test,docs,dask,serve]'
	@touch $@

# The docs' chaining diagram needs Graphviz's `dot`; install it where we can.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Graphviz (apt-get install graphviz) for the docs' diagram"; \
	    (apt-get install -y -qq graphviz >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz; }) >/dev/null; \
	  else echo "the docs need Graphviz's dot: install the graphviz package (e.g. apt-get install graphviz)" >&2; exit 2; fi; }

# The serve extra's browser tests drive Debian's Chromium (not a browser Playwright downloads).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium (apt-get install chromium) for the browser tests"; \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }) >/dev/null; \
	  else echo "the browser tests need Chromium: install the chromium package (e.g. apt-get install chromium)" >&2; exit 2; fi; }

demo: $(VENV)/.installed
	$(VENV)/bin/backcare recommend examples/profile.json

test: $(VENV)/.installed graphviz chromium
	BACKCARE_NO_SKIPS=1 $(PY) -m pytest
	$(VENV)/bin/backcare rules test rules/

docs: $(VENV)/.installed graphviz
	$(PY) -m sphinx -b html -W --keep-going docs docs/_build/html

bench: $(VENV)/.installed
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) docs/_build docs/_generated build dist .pytest_cache .hypothesis .mypy_cache
