# specinv developer tasks. `make demo` and `make test` are the two set-up commands of README.md.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.specinv-installed
DOCS_STAMP := $(VENV)/.specinv-docs-installed

.PHONY: venv demo test test-all docs bench roundtrip clean

# torch==2.13.0 first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/specinv invert --example -o example.wav

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --doctest-modules tests specinv_cli

test-all: $(STAMP)
	$(PY) -m pytest -q --doctest-modules tests specinv_cli

# The docs extra (Sphinx, sphinx-click, myst-parser) goes into .venv the first time. -E reads
# every page again (a warning is never hidden by an up-to-date page); -n -W: a reference that
# does not resolve fails the build. Offline: nothing is downloaded while building.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -E -W -n --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

roundtrip: $(STAMP)
	$(PY) benchmarks/roundtrip.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache example.wav docs/_build docs/_generated
