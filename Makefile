# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch first, pinned: the CPU build comes from local disk, while an unpinned torch pulls GB of CUDA wheels.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/adacompress demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check adacompress tests bench

bench: install
	$(PY) bench/bench_inference.py --out bench/results/inference.json

clean:
	rm -rf $(VENV) build *.egg-info
