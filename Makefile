# Thin wrapper for people who like `make test`: everything lives in dev.py (standard library
# only; make is never required). Same as: python3 dev.py COMMAND.
PYTHON ?= python3
DEV := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))dev.py

.PHONY: help course test lint fix bench reality clean

help:
	@$(PYTHON) $(DEV) --help

course:
	$(PYTHON) $(DEV) course

test:
	$(PYTHON) $(DEV) test

lint:
	$(PYTHON) $(DEV) lint

fix:
	$(PYTHON) $(DEV) lint --fix

bench:
	$(PYTHON) $(DEV) bench

reality:
	$(PYTHON) $(DEV) reality

clean:
	$(PYTHON) $(DEV) clean
