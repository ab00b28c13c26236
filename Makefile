# Two commands do everything on a fresh machine with Python 3.10 to 3.13 and gcc:
#   make demo   set up .venv with backcare alone and print a recommendation for a sample profile
#   make test   add the test, docs, dask and serve extras to .venv and run the whole suite
# Also: make docs (HTML into docs/_build/html), make bench (benchmarks/bench.py), and
# .venv/bin/nox (after make test): make test on every supported Python found (noxfile.py).
#
# PYTHON is the first of python3, python3.13 ... python3.10 that runs and is a supported version
# (requires-python in pyproject.toml); `make test PYTHON=python3.12` picks one.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,10) <= sys.version_info[:2] < (3,14))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# durable-rules 2.0.28's C core calls PyEval_CallObject, which Python 3.13 removed: there it is
# built with the old name mapped to its replacement (its setup.py overwrites CFLAGS, not CPPFLAGS),
# and never taken from pip's wheel cache, which may hold a build made without the flag (pip keys
# cached wheels by interpreter version, not by compiler flags). Importing backcare checks the result.
DURABLE_FIX := CPPFLAGS="$$CPPFLAGS -DPyEval_CallObject=PyObject_CallObject" $(PIP) install --no-cache-dir

.PHONY: demo test docs bench graphviz chromium clean venv-check

# Two stamps: .installed is backcare and its runtime dependencies (all the demo needs),
# .installed-dev adds the extras. Each is redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | venv-check
	@test -n "$(PYTHON)" || { echo "need Python 3.10, 3.11, 3.12 or 3.13 (pass PYTHON=/path/to/python3.x)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	if $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then $(DURABLE_FIX) -e .; else $(PIP) install -e .; fi
	$(PY) -c 'import backcare'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[test,docs,dask,serve]'
	@touch $@

# A .venv made by another Python than the one asked for on the command line is not reused silently.
venv-check:
ifneq ($(origin PYTHON),file)
	@if [ -x $(PY) ]; then \
	  want=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 2; \
	  have=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  [ "$$want" = "$$have" ] || { echo "$(VENV) was made with Python $$have, not $$want ($(PYTHON)): run make clean first" >&2; exit 2; }; \
	fi
endif

# System packages the suite needs, installed where we can (root with apt-get), else named:
# $(call system_package,COMMAND,DEBIAN PACKAGE,WHAT FOR)
system_package = @command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(2) (apt-get install $(2)) for $(3)"; \
	    (apt-get install -y -qq $(2) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(2); }) >/dev/null; \
	  else echo "$(3) need $(1): install the $(2) package (e.g. apt-get install $(2))" >&2; exit 2; fi; }

# The docs' chaining diagram needs Graphviz's `dot`.
graphviz:
	$(call system_package,dot,graphviz,the docs' diagrams)

# The serve extra's browser tests drive Debian's Chromium (not a browser Playwright downloads).
chromium:
	$(call system_package,chromium,chromium,the browser tests)

demo: $(VENV)/.installed
	$(VENV)/bin/backcare recommend examples/profile.json

test: $(VENV)/.installed-dev graphviz chromium
	BACKCARE_NO_SKIPS=1 $(PY) -m pytest
	$(VENV)/bin/backcare rules test rules/

docs: $(VENV)/.installed-dev graphviz
	$(PY) -m sphinx -b html -W --keep-going docs docs/_build/html

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) .nox docs/_build docs/_generated docs/catalogue build dist .pytest_cache .hypothesis .mypy_cache
