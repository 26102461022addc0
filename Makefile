# OpenRouter Key Vending: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/orkv-target
export CARGO_TERM_COLOR ?= never
export CHECKPOINT_DISABLE = 1

.PHONY: demo test venv build lint docs-check unit clean package package-check infra-test localstack-test supply-chain bench fuzz soak

## Lambda architecture of `make package`: x86_64 (default) or arm64 (needs the
## aarch64-unknown-linux-gnu Rust target: rustup target add aarch64-unknown-linux-gnu).
ARCH ?= x86_64
PACKAGE_DIR ?= $(CARGO_TARGET_DIR)/lambda
## The local rotation driver (moto stand-in) is linked into the function binaries only with
## this: demo, tests, soak and bench use it; `make package` never does.
LOCAL_ROTATION := --features provision/local-rotation,rotate/local-rotation,sweep/local-rotation

venv:
	@tools/setup-venv.sh

build:
	cargo build --workspace --bins $(LOCAL_ROTATION)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets $(LOCAL_ROTATION) -- -D warnings
	cargo clippy -p provision -p rotate -p sweep -- -D warnings
	cargo clippy -p orkv-tests --test on_localstack -- -D warnings

## Release builds of every function as <PACKAGE_DIR>/<function>/bootstrap.zip (cargo-lambda + zig,
## linked for Amazon Linux 2023's glibc).
package: venv
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --release --output-format zip \
	  $(if $(filter arm64,$(ARCH)),--arm64,--x86-64) --lambda-dir "$(PACKAGE_DIR)" \
	  -p provision -p rotate -p sweep
	@for f in provision rotate sweep; do ls -l "$(PACKAGE_DIR)/$$f/bootstrap.zip" | awk '{printf "%-60s %9d bytes\n", $$9, $$5}'; done

## The packaged binaries hold no local stand-in (and refuse ORKV_LOCAL_ROTATION_INVOKE_URL).
package-check: build package
	tests/infra/check-package.sh "$(PACKAGE_DIR)"

## Terraform: fmt, validate, checkov, apply/plan/destroy of the example against moto, policy check,
## the suites' policy snapshot, and (after the suites) every granted action used.
infra-test: venv build package
	tests/infra/terraform-test.sh "$(PACKAGE_DIR)"

## Runs every test: unit, integration (moto + emulator), end to end (the real binary) and the
## infrastructure test.
test: venv build lint docs-check
	rm -rf "$(CARGO_TARGET_DIR)/orkv-iam"
	cargo test --workspace --no-fail-fast $(LOCAL_ROTATION)
	$(MAKE) --no-print-directory localstack-test
	$(MAKE) --no-print-directory supply-chain
	$(MAKE) --no-print-directory infra-test
	$(MAKE) --no-print-directory package-check

## The second AWS: the suites that need no rotation stand-in (provision, store, the provision
## binary) against LocalStack (host mode, pinned; its virtualenv is kept outside the checkout).
localstack-test: build package
	tests/localstack/run.sh

## README, CONTRIBUTING and docs/: every link resolves, every document is reachable from the
## README, every test a document cites exists.
docs-check:
	python3 tools/check-docs.py

## cargo deny (advisories, licenses, bans, sources) and cargo audit, offline when the RustSec
## snapshot is beside the checkout.
supply-chain:
	tools/supply-chain.sh

## Long fuzzing run of every parser (property tests, release mode); `make test` runs a short one.
FUZZ_CASES ?= 5000000
fuzz:
	set -o pipefail; PROPTEST_CASES=$(FUZZ_CASES) cargo test --release -p orkv-tests --test fuzz -- --nocapture --test-threads 2 2>&1 \
	  | tee /dev/stderr | awk '/^fuzz / { i += $$3; n += $$5 } END { printf "fuzz: %d inputs, %d parser executions in all\n", i, n }'

## The long chaos soak (the short one runs in `make test`): 10,000 operations, 500 kills.
soak: venv
	cargo build --release -p orkv-tests -p provision -p rotate -p sweep --bins $(LOCAL_ROTATION)
	ORKV_SOAK_BIN_DIR="$(CARGO_TARGET_DIR)/release" \
	  "$(CARGO_TARGET_DIR)/release/soak" docs/soak-results.json

## Benchmarks (never part of `make test`): release binaries against moto + the emulator.
## Table on stdout; the same figures in docs/bench-results.json.
## The bench measures the packaged binaries themselves (they never see the local driver: the
## bench plays Secrets Manager's part in its own process).
bench: venv package
	cargo build --release -p orkv-tests --bin bench
	ORKV_BENCH_BIN_DIR="$(CARGO_TARGET_DIR)/$(if $(filter arm64,$(ARCH)),aarch64,x86_64)-unknown-linux-gnu/release" \
	ORKV_BENCH_PACKAGE_DIR="$(PACKAGE_DIR)" "$(CARGO_TARGET_DIR)/release/bench" docs/bench-results.json

## The main job end to end on embedded defaults (moto + the emulator + cargo lambda).
demo: venv build
	tools/demo.sh

clean:
	rm -rf .venv
