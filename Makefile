# Two commands on a fresh machine: `make demo` and `make test`. Everything they
# need (venv, Python deps incl. chDB, Java/Maven, Kafka jars) is set up here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup system-deps kafka-jars test demo lint clean down

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

system-deps:
	./scripts/install-system-deps.sh

kafka-jars: $(STAMP) system-deps
	$(BIN)/python -c 'from errstream_core.settings import get_settings as g; from errstream.local.kafka import resolve_kafka_jars as r; s = g(); print("kafka jars:", r(s.kafka_version, s.cache_dir))'

setup: $(STAMP) system-deps kafka-jars

test: setup
	$(BIN)/python -m pytest

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
