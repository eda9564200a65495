# modelbus — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install run run-quiet run-bounded test test-unit test-e2e test-faults bench schemas lint clean

help:
	@echo "make run        start broker, Redis, simulator, all services and the gateway, with sample traffic"
	@echo "make run-quiet  the same without sample traffic"
	@echo "make run-bounded the same on a broker with retention (flat memory, slow): for long runs"
	@echo "make test       every test but the fault scenarios (unit, contract, end-to-end)"
	@echo "make test-faults the fault-injection suite alone, with its ledger table"
	@echo "make bench      every benchmark; figures to stdout, JSON and PNG to bench/results"
	@echo "make bench-peers modelbus side by side with the LiteLLM proxy (QUICK=1: a smoke run)"
	@echo "make schemas    regenerate schemas/json and schemas/asyncapi.json from the event models"

install:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --quiet

run: install
	$(UV) run modelbus run

run-quiet: install
	$(UV) run modelbus run --no-demo

run-bounded: install
	$(UV) run modelbus run --no-demo --bounded

test: install
	$(UV) run pytest -m "not faults"

test-unit: install
	$(UV) run pytest -m "not e2e"

test-e2e: install
	$(UV) run pytest -m e2e

test-faults: install
	$(UV) run pytest -m faults

bench: install
	$(UV) run python bench/run_all.py

.PHONY: bench-peers
bench-peers: install
	PEERS_UV="$(UV)" $(UV) run python -m bench.peers $(if $(QUICK),--quick)

bench-audit: install
	$(UV) run python bench/audit_bench.py

schemas: install
	$(UV) run python -m modelbus_schemas.jsonschema
	$(UV) run python -m modelbus_schemas.asyncapi

lint: install
	$(UV) run ruff check .

clean:
	rm -rf .modelbus .pytest_cache
