# evalkit: `make report` and `make test` are all anyone needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.evalkit-installed

.PHONY: help install report test test-fast lab sample bench system-deps clean

help:
	@echo "make report   create .venv, install, run evalkit on data/raw/ -> reports/index.html"
	@echo "make test     same setup, then the whole test suite"
	@echo "make lab      open JupyterLab with the evalkit kernel"
	@echo "make sample   regenerate the synthetic sample in data/raw/"
	@echo "make bench    speed and scale benchmarks -> benchmarks/RESULTS.md"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name evalkit --display-name "Python (evalkit)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

report: install
	$(VENV)/bin/evalkit run
	@echo "Open $(CURDIR)/reports/index.html"

# R (for the live comparison with sandwich) is installed from Debian packages when
# it is missing and we may install; otherwise those tests say why they are skipped.
system-deps:
	@bash .ci/system-deps

test: install system-deps
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

lab: install
	$(VENV)/bin/jupyter lab notebooks/explore.ipynb

sample: install
	$(VENV)/bin/evalkit simulate --out data/raw --seed 20251123 --scale 1

# Speed and scale figures (medians in one run), appended to benchmarks/RESULTS.md.
bench: install
	$(PY) benchmarks/zscore_throughput.py | tee -a benchmarks/RESULTS.md
	$(PY) benchmarks/batch.py --skip-million
	$(PY) benchmarks/million_rows.py

clean:
	rm -rf reports data/processed/*.parquet .pytest_cache
