# tidings — `make demo` runs the server with the demo; `make test` runs every check and test.
# Every step installs what it needs (scripts/setup.sh) and skips what is already there.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
WASM := --target wasm32-unknown-unknown

.PHONY: help setup demo cluster server pkg bench test lint doc test-rust test-client test-types test-e2e test-proxy test-api

help:
	@echo "make demo    build everything, then serve the demo at http://127.0.0.1:8000 (SQLite: ./tidings.db)"
	@echo "make test    every check and test: what CI runs (.ci/run)"
	@echo "make cluster the demo on two processes sharing PostgreSQL, behind nginx (http://127.0.0.1:8080)"
	@echo "make pkg     build the npm package into pkg/ and print its gzipped size"
	@echo "make bench   run the load benchmark and rewrite BENCHMARKS.md (about 35 minutes)"
	@echo "make server  run the server alone (release build)"

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

cluster:
	scripts/cluster.sh

server:
	$(CARGO) run --release -p tidings-server

pkg:
	scripts/build-pkg.sh

bench:
	tests/load/bench.sh

# --- make test -------------------------------------------------------------------------

test: lint doc test-rust test-client test-types test-e2e test-proxy test-api
	@echo "all checks and tests passed"

# Links in the docs; Rust's format and clippy (host and wasm); the package's scripts (js/)
# against their declarations (tsc, checkJs) and under ESLint.
lint:
	node scripts/check-links.mjs
	scripts/setup.sh wasm js-tools
	$(CARGO) fmt --all -- --check
	client-wasm/node_modules/.bin/tsc -p client-wasm/js
	cd client-wasm && node_modules/.bin/eslint js
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p tidings-protocol -p tidings-client --all-targets $(WASM) -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# Rust tests; the server's run on SQLite and on a throwaway PostgreSQL cluster.
test-rust:
	scripts/setup.sh postgres
	scripts/with-postgres.sh $(CARGO) test --workspace

# The client in headless Chromium against a real server: the package as it ships (pkg/), and
# the Rust API (TodoStream), which Rust apps build themselves.
test-client: pkg
	scripts/test-client.sh

# The package's TypeScript types, used the way an application uses them, under --strict.
test-types: pkg
	client-wasm/node_modules/.bin/tsc -p client-wasm/tests/types/tsconfig.json

# The demo (svelte-check, build) and the end-to-end browser tests.
test-e2e:
	scripts/test-e2e.sh

# The shipped nginx config (deploy/nginx) in front of real tidings processes: slow and idle
# clients closed on deadline, the event stream unbuffered and resumable through it.
test-proxy:
	scripts/test-proxy.sh

# schemathesis against a live server from its own OpenAPI document (bounded: API_FUZZ_SECS).
test-api:
	scripts/test-api.sh
