# Every target sets up its environment first (idempotent: seconds once it is built).
# STACK=default: .venv, torch 2.13 (the newest torch CI proves);
# STACK=oldest:  .venv-torch21, torch 2.1 (the oldest); see tools/setup_env.sh.
STACK ?= default
ifeq ($(STACK),oldest)
VENV ?= .venv-torch21
else ifeq ($(STACK),default)
VENV ?= .venv
else
$(error STACK must be 'default' or 'oldest', got '$(STACK)')
endif
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DATA ?=

.PHONY: env test env-oldest test-oldest demo bench
env:
	@MMPARC_VENV="$(abspath $(VENV))" bash tools/setup_env.sh $(STACK)

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

# The same on the oldest supported stack (.venv-torch21).
env-oldest:
	@$(MAKE) --no-print-directory env STACK=oldest

test-oldest:
	@$(MAKE) --no-print-directory test STACK=oldest

# make demo [DATA=/path/to/coco]: train and evaluate on generated data (or
# a COCO-format dataset) on the CPU, then draw the results; see README "Demo".
demo: env
	$(PY) -m demo.quickstart $(DATA)

bench: env
	$(PY) tools/analysis_tools/benchmark.py
