# deepalert — developer entry points. `make help` lists them.

CARGO ?= cargo
ARGS ?=

.PHONY: help serve example test lint fmt bench clean

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

serve: ## Run `deepalert serve` on its embedded defaults (127.0.0.1:8080, ./deepalert-data)
	$(CARGO) run --release --locked -p deepalert-cli --bin deepalert -- serve $(ARGS)

example: ## Run `deepalert serve` with the example plug-ins (examples/deepalert.toml)
	$(CARGO) run --release --locked -p deepalert-cli --bin deepalert -- serve --config examples/deepalert.toml $(ARGS)

test: ## Run every test (unit, pipeline, end to end against the real binary)
	@command -v python3 >/dev/null || { echo "python3 is needed by the example plug-ins the end-to-end tests run: install Python 3" >&2; exit 1; }
	$(CARGO) test --workspace --locked

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Benchmark the embedded engine (prints alerts/s, overhead p50/p99, raw SQLite rate)
	$(CARGO) bench --locked -p deepalert-local --bench pipeline

clean: ## Remove build outputs
	$(CARGO) clean
