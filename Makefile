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
# make install EXTRAS=notify: optional extras too (notify: notifications through Apprise).
EXTRAS ?=
DEMO   := $(BIN)/backupctl --config examples/demo.toml

.PHONY: demo test lint bench faults screenshot install uninstall clean

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
	$(BIN)/python bench/drill.py
	$(BIN)/python bench/restore.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/history.py

faults: $(STAMP)  ## the fault-injection suite: ROUNDS randomized nights under faults
	$(BIN)/python bench/faults.py --rounds $(ROUNDS)

screenshot: $(STAMP)  ## docs/report.png: four weeks of the example fleet, `report --html`, headless Chromium
	$(BIN)/python -m scripts.screenshot --out docs/report.png

install:  ## production: a virtualenv at PREFIX and a backupctl link in BINDIR
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "backupctl needs Python 3.11 or newer")'
	@# PREFIX is the virtualenv itself: never a shared folder such as /usr/local.
	@if [ -e "$(PREFIX)" ] && [ ! -f "$(PREFIX)/pyvenv.cfg" ]; then \
	  echo "make install: $(PREFIX) exists and is not a backupctl virtualenv; choose another PREFIX (it is the venv itself)" >&2; exit 2; fi
	@# An existing install is upgraded in place (a venv cannot be moved, and a failed
	@# pip install leaves the installed version in place for tonight's cron line).
	[ -f "$(PREFIX)/pyvenv.cfg" ] || $(PYTHON) -m venv "$(PREFIX)"
	"$(PREFIX)/bin/pip" install --quiet --upgrade pip
	"$(PREFIX)/bin/pip" install --quiet --upgrade ".$(if $(EXTRAS),[$(EXTRAS)])"
	mkdir -p "$(BINDIR)"
	ln -sfn "$(PREFIX)/bin/backupctl" "$(BINDIR)/backupctl"
	@echo "installed: $(BINDIR)/backupctl -> $(PREFIX)/bin/backupctl"

uninstall:
	@if [ -e "$(PREFIX)" ] && [ ! -f "$(PREFIX)/pyvenv.cfg" ]; then \
	  echo "make uninstall: $(PREFIX) is not a backupctl virtualenv; left alone" >&2; exit 2; fi
	if [ "$$(readlink "$(BINDIR)/backupctl")" = "$(PREFIX)/bin/backupctl" ]; then rm -f "$(BINDIR)/backupctl"; fi
	rm -rf "$(PREFIX)"

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache build
