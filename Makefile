# The two set-up commands in the README are `make demo` and `make test`.
# Each creates .venv, installs what it needs (system packages too when root) and runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench system clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,geo]'
	touch $(STAMP)

system:
	bash scripts/setup-system.sh

demo: $(STAMP)
	$(BIN)/flowscope analyze captures/sample_session.pcap --out out/demo --force

test: system $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out
