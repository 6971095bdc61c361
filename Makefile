# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench bench-rate bench-replay clean

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
	$(VENV)/bin/ruff check adacompress tests bench notebooks

# CNN timings, decide() at 0.2/2/12 MP against its floor, and the observation cost/bytes trade (~15 min on 2 cores).
bench: install
	$(PY) bench/bench_inference.py --out bench/results/inference.json
	$(PY) bench/bench_decide.py --out bench/results/decide.json
	$(PY) bench/bench_observation.py --out bench/results/observation.json

# The README's rate-accuracy tables: the shipped agents against every fixed quality on the 500 held-out
# photos of ../shared/data/imagenet-sample (about 15 minutes per hit rule on 2 cores).
SAMPLE ?= ../shared/data/imagenet-sample
bench-rate: install
	for rule in in-labels top1; do \
	  $(VENV)/bin/adacompress bench --backend local --images $(SAMPLE) --subset odd --rule $$rule \
	    --out bench/results/local-$$rule || exit 1; \
	done
	$(PY) bench/readme_table.py

clean:
	rm -rf $(VENV) build *.egg-info

# Drift scenarios on the 500 held-out sample photos, both rule sets side by side, then day-to-night under 40
# daemon seeds (~15 minutes on 2 cores).
bench-replay: install
	for scenario in day-to-night provider-swap; do \
	  $(VENV)/bin/adacompress replay $$scenario --backend local --images $(SAMPLE) --subset odd \
	    --out bench/results/replay/$$scenario --no-progress || exit 1; \
	done
	$(PY) bench/bench_drift_seeds.py
	$(PY) bench/readme_table.py
