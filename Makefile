# `make test` is the whole suite: it installs and starts what the tests need first.
PYTHON ?= python3

.PHONY: test up services bench

services:
	bash deploy/dev-services.sh

test: services
	$(PYTHON) -m pytest

up:
	$(PYTHON) -m pip install -q -e . && dispatch up
