# specinv developer tasks. `make demo` and `make test` are the two set-up commands of README.md.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.specinv-installed

.PHONY: venv demo test test-all bench roundtrip clean

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

roundtrip: $(STAMP)
	$(PY) benchmarks/roundtrip.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache example.wav
