# okemesh.istio — the two commands users run:
#   make demo   set everything up, start kubesim (a local Kubernetes API simulator) and run
#               site.yml against it; `make demo INVENTORY=inventories/my-oke` targets real clusters
#   make test   set everything up and run every test (what CI runs)
SHELL := /bin/bash
VENV := .venv
INVENTORY ?=

.PHONY: setup demo demo-stop test test-real unit sanity lint build-check integration bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh $(INVENTORY)

demo-stop:
	@bash scripts/demo.sh --stop

test: setup
	@bash scripts/test.sh

# A real Istio release against kubesim (not part of `make test`): ISTIO_RELEASE=<unpacked istio-x.y.z>,
# or ISTIO_VERSION=x.y.z to download it from Istio's GitHub releases (checked against its .sha256).
test-real: setup
	@ISTIO_RELEASE="$(ISTIO_RELEASE)" ISTIO_VERSION="$(ISTIO_VERSION)" bash scripts/test_real.sh

unit: setup
	@bash scripts/test.sh unit

sanity: setup
	@bash scripts/test.sh sanity

lint: setup
	@bash scripts/test.sh lint

integration: setup
	@bash scripts/test.sh integration

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; PATH=$(CURDIR)/$(VENV)/bin:$$PATH PYTHONPATH=$(CURDIR):$(CURDIR)/.collections $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf .collections tests/output .pytest_cache .ruff_cache okemesh-istio-*.tar.gz
