# spikecore: two commands do everything on a fresh machine.
#   make run    train offline on the digits, run the simulated core, print a summary
#   make test   the whole test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= out
# pytest-xdist workers; the machine has 2 cores.
JOBS   ?= 2

.PHONY: setup run test test-fast lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/spikecore demo --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist worksteal -q --durations=10

test-fast: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m "not slow"

clean:
	rm -rf $(VENV) build out sim_build .pytest_cache .hypothesis
