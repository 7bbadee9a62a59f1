# `make test` is the whole suite: it installs and starts what the tests need first.
PYTHON ?= python3

.PHONY: test up services bench image chaos

services:
	bash deploy/dev-services.sh

test: services
	$(PYTHON) -m pytest

up:
	$(PYTHON) -m pip install -q -e . && dispatch up

# Dispatch's container image (deploy/Containerfile), built through podman's Docker API from
# the Debian base container-services.sh makes, pushed to the local registry; a no-op when
# the package is unchanged. INFRA=1 also builds the podman overlay's etcd/Redis/registry.
image:
	bash deploy/container-services.sh
	$(PYTHON) deploy/build-image.py $(if $(INFRA),--infra)

# Faults under load (not part of `make test`; about 5-10 minutes): worker SIGKILLs, Redis
# FLUSHDB, an etcd outage, a 3-member etcd cluster losing its leader, `dispatch up`
# SIGKILLed. Each prints `N ok, M lost, K stuck, D executed twice`; fails on a lost or
# stuck run. Uses Redis database 7 (DISPATCH_CHAOS_REDIS) and flushes it.
chaos: services
	$(PYTHON) -m tests.chaos.run
