# The two commands: `make demo` (install, then plan and apply examples/quickstart on the
# embedded simulated clouds) and `make test` (install, lint, type-check, all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STATE ?= .reconciler-demo

.PHONY: install backends demo test lint unit bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-cloud-backends.sh
	bash scripts/install-cloud-backends.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: install
	rm -rf $(DEMO_STATE)
	$(BIN)/reconciler validate examples/quickstart
	$(BIN)/reconciler plan examples/quickstart --state $(DEMO_STATE)
	$(BIN)/reconciler apply examples/quickstart --state $(DEMO_STATE) --auto-approve
	$(BIN)/reconciler plan examples/quickstart --state $(DEMO_STATE) --detailed-exitcode
	$(BIN)/reconciler show examples/quickstart --state $(DEMO_STATE)
	$(BIN)/reconciler explain vm/default/batch examples/quickstart --state $(DEMO_STATE)

lint: install
	$(BIN)/ruff check reconciler tests bench scripts
	$(BIN)/ruff format --check reconciler tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# Real servers the integration tests start: etcd + a kube-apiserver built from
# Debian's Kubernetes source (cached under ~/.cache/reconciler/kube).
backends:
	bash scripts/install-kube-apiserver.sh

unit: install backends
	$(BIN)/pytest

test: lint unit

bench: install
	$(BIN)/python bench/broker_bench.py
	$(BIN)/python bench/plan_bench.py

clean:
	rm -rf $(VENV) $(DEMO_STATE) $(MULTICLOUD_STATE) .reconciler .pytest_cache .mypy_cache .ruff_cache

# examples/multicloud on local emulators (libvirtd+qemu, moto, Swift + OpenStack fake,
# SeaweedFS): start them, validate, plan, apply, re-plan (must be "No changes"), show;
# the emulators are stopped even when a step fails. Needs root for the private libvirtd.
.PHONY: multicloud
MULTICLOUD_STATE ?= .reconciler-multicloud
multicloud: install
	@$(BIN)/python scripts/emulators.py start --state-dir $(MULTICLOUD_STATE) && \
	( set -e; . $(MULTICLOUD_STATE)/env.sh; \
	  $(BIN)/reconciler validate examples/multicloud; \
	  $(BIN)/reconciler plan $$MULTICLOUD_MANIFESTS; \
	  $(BIN)/reconciler apply $$MULTICLOUD_MANIFESTS --auto-approve; \
	  $(BIN)/reconciler plan $$MULTICLOUD_MANIFESTS --detailed-exitcode; \
	  $(BIN)/reconciler show $$MULTICLOUD_MANIFESTS ); \
	status=$$?; $(BIN)/python scripts/emulators.py stop --state-dir $(MULTICLOUD_STATE); exit $$status
