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

# make demo [DATA=/path/to/coco]: train and evaluate on generated data (or
# a COCO-format dataset) on the CPU, then draw the results; see README "Demo".
demo: env
	$(PY) demo/quickstart.py $(DATA)

bench: env
	$(PY) tools/analysis_tools/benchmark.py
