# OpenRouter Key Vending: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/orkv-target
export CARGO_TERM_COLOR ?= never
export CHECKPOINT_DISABLE = 1

.PHONY: demo test venv build lint unit clean

venv:
	@tools/setup-venv.sh

build:
	cargo build --workspace --bins

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Runs every test: unit, integration (moto + emulator) and end to end (the real binary).
test: venv build lint
	cargo test --workspace --no-fail-fast

## The main job end to end on embedded defaults (moto + the emulator + cargo lambda).
demo: venv build
	tools/demo.sh

clean:
	rm -rf .venv
