# Two commands on a fresh machine: `make demo` and `make test`. Everything they
# need (venv, Python deps incl. chDB, Java/Maven, Kafka jars) is set up here.
# Versions come from requirements/lock.txt (scripts/lock-deps.sh writes it), so a clean clone installs the
# same versions next month as today; `make test-latest` runs the suite on the newest versions pyproject allows.
SHELL  := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
LOCK   ?= requirements/lock.txt
BIN    := $(VENV)/bin
# PIP_CONSTRAINT reaches pip's isolated build environment too, so the build backend is pinned as well.
PIN    := $(if $(LOCK),PIP_CONSTRAINT=$(abspath $(LOCK)),)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)

.PHONY: setup system-deps kafka-jars test unit test-cluster test-latest lock demo lint clean down

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PIN) $(BIN)/pip install -q --upgrade pip setuptools wheel
	$(PIN) $(BIN)/pip install -q $(if $(LOCK),,--upgrade --upgrade-strategy eager) -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

system-deps:
	./scripts/install-system-deps.sh

kafka-jars: $(STAMP) system-deps
	$(BIN)/python -c 'from errstream_core.settings import get_settings as g; from errstream.local.kafka import resolve_kafka_jars as r; s = g(); print("kafka jars:", r(s.kafka_version, s.cache_dir))'

setup: $(STAMP) system-deps kafka-jars

# Tests run side by side in TEST_WORKERS processes (pytest-xdist) sharing one broker, each with its own ClickHouse;
# a file's tests stay on one worker (--dist loadfile), so a module's servers and fixtures start once.
# Three on two cores: the suite keeps both busy with three, and a fourth made it no faster (CONTRIBUTING.md has
# the times). PYTHONDONTWRITEBYTECODE is cleared for pytest alone: with it set (as on some CI machines) every
# test process rewrites the asserts of all 240 test modules again at each run, 4 s of CPU each; without it
# pytest keeps the rewritten modules in __pycache__ (ignored by git).
TEST_WORKERS ?= 3
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
# The tests start about 270 Python processes (roles, CLI commands): compiled once here, each one reads our modules'
# bytecode instead of compiling them again (0.2 s of CPU a start where PYTHONDONTWRITEBYTECODE is set, as on
# CI machines). compileall only rewrites what changed.
BYTECODE := $(BIN)/python -m compileall -q -j 0 errstream errstream_core producers stream_processors sinks reports schemas bench

test: setup
	$(BYTECODE)
	$(PYTEST)

# The tests that need no server: a minute, for every change.
unit: $(STAMP)
	$(BYTECODE)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load tests/unit

# The three-broker cluster tests (opt-in: they start three brokers beside the suite's own).
test-cluster: setup
	ERRSTREAM_TEST_CLUSTER=1 $(BIN)/python -m pytest -m cluster tests/e2e

# The whole suite on the newest versions pyproject.toml's ranges allow, in a venv of its own built afresh:
# upstream drift shows up here before it reaches a user. Refresh the lock with `make lock` once it passes.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test VENV=.venv-latest LOCK=
	@echo "versions that differ from $(LOCK) (< lock, > latest):"
	@diff <(grep -v '^#' $(LOCK) | sort -f) <(.venv-latest/bin/pip freeze --all --exclude-editable | sort -f) || true

lock:
	./scripts/lock-deps.sh

demo: setup
	$(BIN)/errstream demo

down:
	$(BIN)/errstream local down

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy schemas errstream_core producers stream_processors sinks reports errstream bench tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .errstream
