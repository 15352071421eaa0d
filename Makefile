# backupctl: `make demo` runs the nightly job on the embedded defaults, `make test` the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ROUNDS ?= 20
# Test processes at once: the suite mostly waits on subprocesses, leases and servers.
TEST_JOBS ?= 4
# make install: a virtualenv at PREFIX, and a backupctl link in BINDIR.
PREFIX ?= /opt/backupctl
BINDIR ?= /usr/local/bin
DEMO   := $(BIN)/backupctl --config examples/demo.toml

.PHONY: demo test lint bench faults install uninstall clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "backupctl needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)  ## back up examples/apps.toml twice on a ledger of its own in .demo/, then show status
	$(DEMO) -v run-nightly
	@echo "--- and again: a rerun of the same night does nothing ---"
	$(DEMO) -v run-nightly
	$(DEMO) status

test: $(STAMP)  ## the whole suite (starts its own throwaway Postgres per test process)
	$(BIN)/pytest -n $(TEST_JOBS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## figures against raw baselines (not part of the tests; takes minutes)
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/enqueue.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/startup.py

faults: $(STAMP)  ## the fault-injection suite: ROUNDS randomized nights under faults
	$(BIN)/python bench/faults.py --rounds $(ROUNDS)

install:  ## production: a virtualenv at PREFIX and a backupctl link in BINDIR
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "backupctl needs Python 3.11 or newer")'
	$(PYTHON) -m venv --clear $(PREFIX)
	$(PREFIX)/bin/pip install --quiet --upgrade pip
	$(PREFIX)/bin/pip install --quiet .
	mkdir -p $(BINDIR)
	ln -sfn $(PREFIX)/bin/backupctl $(BINDIR)/backupctl
	@echo "installed: $(BINDIR)/backupctl -> $(PREFIX)/bin/backupctl"

uninstall:
	rm -f $(BINDIR)/backupctl
	rm -rf $(PREFIX)

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache build
