#!/usr/bin/env bash
# Build the SvelteKit demo into demo/build (served at / by the tidings server):
# the npm package pkg/ first when it is missing or older than its sources, the demo's npm
# dependencies, then svelte-check (0 errors, 0 warnings) and vite build. A second run with
# nothing changed does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

# Anything newer than $1 among the following paths?
newer_than() {
  local stamp=$1
  shift
  [ -n "$(find "$@" -newer "$stamp" -print -quit 2>/dev/null)" ]
}

# pkg/package.json is written at the end of scripts/build-pkg.sh: its age is the package's.
PKG_SOURCES=(Cargo.toml Cargo.lock protocol client-wasm/src client-wasm/js client-wasm/build.rs client-wasm/Cargo.toml
  client-wasm/package.template.json client-wasm/README.md scripts/build-pkg.sh scripts/pkg-toolchain.sh)
if [ ! -f pkg/package.json ] || newer_than pkg/package.json "${PKG_SOURCES[@]}"; then
  scripts/build-pkg.sh
fi

# The package's .wasm must instantiate in a browser; if it does not, every page of the demo
# fails. Checked here (Node's V8) so a broken package is one clear line, not a test timeout.
node --input-type=module -e "
  import { readFileSync } from 'node:fs';
  await WebAssembly.compile(readFileSync('pkg/tidings_client_bg.wasm')).catch((error) => {
    console.error('pkg/tidings_client_bg.wasm does not compile: ' + error.message);
    console.error('(the demo cannot start with it; see the wasm-opt flags in scripts/build-pkg.sh)');
    process.exit(1);
  });
"

scripts/setup.sh npm

DEMO_SOURCES=(demo/src demo/static demo/package.json demo/package-lock.json demo/svelte.config.js
  demo/vite.config.ts demo/tsconfig.json pkg)
if [ -f demo/build/index.html ] && ! newer_than demo/build/index.html "${DEMO_SOURCES[@]}"; then
  say "demo/build is up to date"
  exit 0
fi

cd demo
say "svelte-check"
node_modules/.bin/svelte-kit sync
node_modules/.bin/svelte-check --tsconfig ./tsconfig.json --fail-on-warnings --output human
say "vite build"
node_modules/.bin/vite build --logLevel warn
# adapter-static writes index.html first and assets after: stamp the build as complete.
touch build/index.html
say "built demo/build"
