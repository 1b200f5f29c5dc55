# camscan: `make demo` and `make test` work on a fresh machine (they create .venv on first use).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Byte-compile the sources: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) Python never caches
# them, and every `python -m scanner` (the tests start hundreds) would compile them again (~0.3 s each).
BYTECODE = $(PY) -m compileall -q scanner tests benchmarks >/dev/null

.PHONY: demo test bench lint fuzz schema clean

# A package index that fails once (a dropped connection while pip builds its isolated build environment) gets
# one more try after a pause, so a passing hiccup of the network does not fail a fresh machine's set-up.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip || (sleep 10 && $(PY) -m pip install --quiet --upgrade pip)
	$(PY) -m pip install --quiet -e '.[dev]' || (sleep 10 && $(PY) -m pip install --quiet -e '.[dev]')
	touch $(STAMP)

demo: $(STAMP)
	$(BYTECODE)
	$(PY) -m scanner demo

test: $(STAMP)
	bash scripts/system-deps.sh
	$(BYTECODE)
	$(PY) -m pytest -q

# bench_scan builds network namespaces: it needs root (without it, it says so and is skipped).
bench: $(STAMP)
	$(BYTECODE)
	$(PY) benchmarks/bench_identify.py
	$(PY) benchmarks/bench_scan.py
	$(PY) benchmarks/bench_pcap.py

# Every atheris fuzz target (tests/fuzz/) for FUZZ_SECONDS each, two at a time; crashes are kept in .fuzz/.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

lint: $(STAMP)
	$(VENV)/bin/ruff check scanner tests benchmarks
	$(VENV)/bin/mypy

# Regenerate the committed JSON Schema of the report after a deliberate change to scanner/model.py.
schema: $(STAMP)
	$(PY) -m scanner schema > reports/schema/scan-report.schema.json

clean:
	rm -rf $(VENV) build dist camscan-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
	find scanner tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
