# Every target sets up .venv first (idempotent: seconds once it is built).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DATA ?=

.PHONY: env test demo bench
env:
	@bash tools/setup_env.sh

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

demo: env
	$(PY) tools/demo.py $(DATA)

bench: env
	$(PY) tools/benchmark.py
