# deepalert — developer entry points. `make help` lists them.

CARGO ?= cargo
ARGS ?=
VENV := .venv
PYTHON ?= python3
# The pipeline's functions, and `builtin` (any built-in inspector or emitter on Lambda).
LAMBDAS := receptor dispatcher inspector-gateway review-invoker emitter-publisher event-router flow-runner builtin

.PHONY: help serve example test fuzz lint fmt bench cost venv browser build check-arm64-build deploy deploy-builtins remove audit clean

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# `make serve` builds without the EC2, IAM and SSM clients (most of a fresh build's time);
# SERVE_FEATURES=aws adds them (aws-context inspector, IAM/EC2 flow steps, SSM secrets).
SERVE_FEATURES ?=
SERVE_BUILD := --profile serve --locked -p deepalert-cli --bin deepalert --no-default-features $(if $(SERVE_FEATURES),--features $(SERVE_FEATURES))

serve: ## Run `deepalert serve` on its embedded defaults (127.0.0.1:8080, ./deepalert-data)
	$(CARGO) run $(SERVE_BUILD) -- serve $(ARGS)

example: ## Run `deepalert serve` with the example plug-ins (examples/deepalert.toml)
	$(CARGO) run $(SERVE_BUILD) -- serve --config examples/deepalert.toml $(ARGS)

test: venv browser ## Run every test (unit, pipeline, end to end, web page in Chromium, AWS stack on moto, template checks, an arm64 build)
	# The AWS stack tests run the Lambda binaries: cargo test builds a package's binaries
	# only for its own integration tests.
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --locked
	# What `make serve` builds: without the aws feature, AWS pieces refuse clearly.
	$(CARGO) test --locked -p deepalert-plugins --no-default-features --test without_aws
	$(MAKE) check-arm64-build
	$(MAKE) audit

# The web page's test drives Debian's Chromium (headless); its own download is not reachable.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## Install Debian's chromium for the browser test (if missing)
	@command -v chromium >/dev/null || { \
	  $(SUDO) apt-get install -y --no-install-recommends chromium || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }; }
	@chromium --version

# cargo-fuzz needs a nightly toolchain that CI cannot install: the parsers of outside input
# are fuzzed with proptest instead. `make test` runs 256 cases per property.
FUZZ_CASES ?= 200000
fuzz: ## Long fuzz run of every parser of outside input (alerts, inspector output, verdicts, events, config, Rego input)
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked -p deepalert-core --test properties
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked -p deepalert-local --test config_properties
	PROPTEST_CASES=$$(( $(FUZZ_CASES) / 20 )) $(CARGO) test --release --locked -p deepalert-plugins --test properties

# `make build`'s path (cargo-lambda + zig, arm64, the lambda profile) for one function, so
# a break there shows in CI; its zip must hold an aarch64 bootstrap.
check-arm64-build: ## Build the receptor for arm64 as `make build` does and check its zip
	$(MAKE) build LAMBDAS=receptor
	$(VENV)/bin/python tools/deploy.py --check-zip target/lambda/receptor/bootstrap.zip --arch arm64

cost: venv ## What an alert costs on AWS (measured on moto): prints the table per service
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --locked -p deepalert-aws --test cost -- --nocapture

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p deepalert-plugins -p deepalert-cli --no-default-features --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Benchmark the embedded engine (alerts/s, overhead p50/p99, raw SQLite rate) and rules eval on a trail file (events/s)
	$(CARGO) bench --profile serve --locked -p deepalert-local --bench pipeline
	$(CARGO) bench --profile serve --locked -p deepalert-cli --no-default-features --bench trail

# The project's Python tools live in .venv, one stamp per requirements file.
$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3 is needed (tests run moto, cfn-lint and the example plug-ins): install python3" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(VENV)/.%-tools: tools/%-requirements.txt $(VENV)/bin/python
	$(VENV)/bin/pip install -q -r $<
	@touch $@

venv: $(VENV)/.test-tools ## Install the test tools (moto, cfn-lint, jsonnet) into .venv

# DEEPALERT_POLICY_DIR (set by `make deploy` from ReviewerPolicies) builds Rego policies into review-invoker;
# DEEPALERT_RULE_POLICY_DIR (from the Rego rule of Rules) builds Rego rules into event-router.
build: $(VENV)/.build-tools ## Build one arm64 Lambda zip per function into target/lambda/<name>/bootstrap.zip
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --locked --profile lambda --arm64 --output-format zip $(addprefix --bin ,$(LAMBDAS))
	@for f in $(LAMBDAS); do printf '%-20s %s bytes\n' $$f "$$(stat -c %s target/lambda/$$f/bootstrap.zip)"; done

deploy: $(VENV)/.test-tools $(VENV)/.deploy-tools ## Build, then deploy to AWS as configured in deploy.jsonnet and stack.jsonnet
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python tools/deploy.py $(ARGS)

deploy-builtins: $(VENV)/.test-tools $(VENV)/.deploy-tools ## Build `builtin`, then deploy examples/aws/builtins.yaml with builtins.jsonnet
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python tools/deploy.py --builtins $(ARGS)

# YES=1 removes without asking.
remove: $(VENV)/.test-tools $(VENV)/.deploy-tools ## Delete the stack, its forwarders and the built-ins stack (asks first; YES=1 does not)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python tools/deploy.py --remove $(if $(YES),--yes) $(ARGS)

# checkov pins boto3/botocore versions that the AWS CLI and moto do not take: its own venv.
AUDIT_VENV := .venv-audit
$(AUDIT_VENV)/.tools: tools/audit-requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3 is needed for make audit: install python3" >&2; exit 1; }
	$(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install -q -r $<
	@touch $@

audit: $(VENV)/.test-tools $(AUDIT_VENV)/.tools ## cfn-lint and checkov on the three templates (skips and their reasons: tools/audit.yaml)
	$(VENV)/bin/python tools/audit.py --checkov $(AUDIT_VENV)/bin/checkov

clean: ## Remove build outputs
	$(CARGO) clean
