# couponapi: `make serve` and `make test` set everything up themselves (venv, packages,
# a private PostgreSQL). `make help` lists the targets.
VENV ?= .venv
BIN := $(VENV)/bin
# One venv; each stamp marks the extras of uv.lock installed for a target (scripts/bootstrap-venv).
SERVE_READY := $(VENV)/.serve-ready
TEST_READY := $(VENV)/.test-ready
BENCH_READY := $(VENV)/.bench-ready
BROWSER := $(VENV)/.browser
LOCK := pyproject.toml uv.lock scripts/bootstrap-venv
POOLER := $(VENV)/.pgbouncer

.PHONY: help serve test pytest lint format clean bench bench-ratelimit bench-webhooks multihost

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(SERVE_READY): $(LOCK)
	./scripts/bootstrap-venv $(VENV) loadtest
	touch $@

$(TEST_READY): $(LOCK)
	./scripts/bootstrap-venv $(VENV) loadtest chart dev
	touch $@

$(BENCH_READY): $(LOCK)
	./scripts/bootstrap-venv $(VENV) loadtest bench
	touch $@

serve: $(SERVE_READY) ## serve the API on :1323 (ARGS="--workers 2 --host 0.0.0.0" to change)
	$(BIN)/couponapi serve $(ARGS)

test: lint pytest ## lint, type-check, then run the whole test suite

$(BROWSER): scripts/ensure-chromium
	./scripts/ensure-chromium
	touch $@

$(POOLER): scripts/ensure-pgbouncer
	./scripts/ensure-pgbouncer
	touch $@

pytest: $(TEST_READY) $(BROWSER) $(POOLER) ## run the test suite only (ARGS="-k name" to select)
	$(BIN)/pytest $(ARGS)

lint: $(TEST_READY) ## ruff and mypy --strict (src, tests, benchmarks)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(TEST_READY) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(BENCH_READY) ## benchmark suite, ~15 min (ARGS="--quick" for a short run); see benchmarks/results
	./benchmarks/ensure-tools
	$(BIN)/python -m benchmarks.run $(ARGS)

bench-ratelimit: $(BENCH_READY) ## what the claim rate limiter costs, off vs on (~1.5 min)
	./benchmarks/ensure-tools
	$(BIN)/python -m benchmarks.ratelimit

bench-webhooks: $(BENCH_READY) ## the hot claim with a webhook endpoint vs none, and the sender's lag (~5 min)
	./benchmarks/ensure-tools
	$(BIN)/python -m benchmarks.webhooks

multihost: $(BENCH_READY) ## 1, 2, 3 hosts (network namespaces) on one PostgreSQL (~1 min, root)
	./benchmarks/multihost.sh

clean: ## remove the venv and caches (keeps the database in .couponapi)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
