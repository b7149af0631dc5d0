#!/usr/bin/env bash
# Build the npm package `tidings-client` into pkg/ (generated: never edit it by hand) and
# print its gzipped weight.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wasm

OUT=pkg
WASM=target/wasm32-unknown-unknown/wasm-release/tidings_client.wasm
cargo build -p tidings-client --target wasm32-unknown-unknown --profile wasm-release
rm -rf "$OUT"
# --weak-refs: a feed whose JavaScript handle is garbage-collected frees its Rust side.
wasm-bindgen --target web --weak-refs --out-dir "$OUT" --out-name tidings_client "$WASM"

if [ ! -x client-wasm/node_modules/.bin/wasm-opt ]; then
  (cd client-wasm && npm ci --no-audit --no-fund --loglevel=error)
fi
# Exactly the features rustc's wasm32 target emits and every current browser runs
# (`--all-features` would let wasm-opt use encodings browsers reject).
client-wasm/node_modules/.bin/wasm-opt -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/tidings_client_bg.wasm" -o "$OUT/tidings_client_bg.wasm"
# The package must load: compile it as an engine would.
node -e 'WebAssembly.compile(require("fs").readFileSync(process.argv[1])).catch((e) => {
  console.error(`pkg/tidings_client_bg.wasm does not compile: ${e.message}`); process.exit(1); })' \
  "$OUT/tidings_client_bg.wasm"
# ... and the JS glue must link: every name it imports from the snippets must exist (an
# import of a missing export fails only at load time, in every browser). Importing is safe
# without a window: the package does nothing at import.
node --input-type=module -e 'await import(process.argv[1]).catch((e) => {
  console.error(`pkg/tidings_client.js does not load: ${e.message}`); process.exit(1); });' \
  "$PWD/$OUT/tidings_client.js"

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed "s/\"version\": \"0.0.0\"/\"version\": \"$VERSION\"/" client-wasm/package.template.json > "$OUT/package.json"
cp client-wasm/README.md "$OUT/README.md"
rm -f "$OUT/.gitignore"

wasm_gz=$(gzip -9 -c "$OUT/tidings_client_bg.wasm" | wc -c)
js_gz=$(cat "$OUT/tidings_client.js" "$OUT"/snippets/*/js/*.js | gzip -9 | wc -c)
total=$(( wasm_gz + js_gz ))
printf 'pkg/: tidings-client %s  wasm %s B + JS %s B = %s B gzipped (budget 30720 B)\n' \
  "$VERSION" "$wasm_gz" "$js_gz" "$total"
if [ "$total" -gt 30720 ]; then
  # Reported, not fatal: see README "Package size" for where the bytes go.
  printf '\033[33mwarning:\033[0m pkg/ is %s B over the 30 KiB gzipped budget\n' "$(( total - 30720 ))" >&2
fi
