#!/usr/bin/env bash
# Build the npm package `tidings-client` into pkg/ (generated: never edit it by hand), print
# its size report and its gzipped weight, and fail when it is over budget.
#
# The weight is what issue 13 and the README count: every .wasm and .js file in pkg/, each
# gzipped at level 9, added up. Over PKG_BUDGET bytes the build fails, so the package cannot
# grow back unnoticed. README "Package size" says what each step below buys.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wasm
. scripts/pkg-toolchain.sh
BUDGET=${PKG_BUDGET:-34000}

if [ ! -x client-wasm/node_modules/.bin/wasm-opt ] || [ ! -x client-wasm/node_modules/.bin/esbuild ]; then
  (cd client-wasm && npm ci --no-audit --no-fund --loglevel=error)
fi

OUT=pkg
WORK=${CARGO_TARGET_DIR:-target}/pkg/stage # the intermediate files, for a look when a number surprises
TARGET_DIR=${CARGO_TARGET_DIR:-target}/pkg # apart from the stable builds: different toolchain and flags
WASM=$TARGET_DIR/wasm32-unknown-unknown/wasm-release/tidings_client.wasm

# std rebuilt with the crate (-Z build-std) under the same flags, so that its panics abort at
# once and its formatting is dropped with them.
RUSTFLAGS="$PKG_RUSTFLAGS" cargo +"$PKG_TOOLCHAIN" build -p tidings-client \
  --target wasm32-unknown-unknown --profile wasm-release --target-dir "$TARGET_DIR" \
  -Z build-std=std,panic_abort

rm -rf "$WORK" && mkdir -p "$WORK"
# --weak-refs: a feed whose JavaScript handle is garbage-collected frees its Rust side.
# --encode-into always: every browser has TextEncoder.encodeInto; no fallback in the glue.
wasm-bindgen --target web --weak-refs --encode-into always --out-dir "$WORK" \
  --out-name tidings_client "$WASM"
# The imports between the module and its glue get short names (they are nobody else's).
node scripts/short-names.mjs "$WORK/tidings_client_bg.wasm" "$WORK/tidings_client.js" \
  "$WORK/tidings_client.d.ts" "$WORK/tidings_client_bg.wasm.d.ts"

# Exactly the features rustc's wasm32 target emits and every current browser runs
# (`--all-features` would let wasm-opt use encodings browsers reject). Low memory: Rust's
# stack grows down from 1 MiB towards 0, so the first KiB is only ever touched by a stack
# within a KiB of overflowing. Flattening and re-relooping first, then -Oz to a fixed point:
# the smallest of the pass orders tried (README "Package size").
FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
PASSES=(--flatten --rereloop -Oz -Oz --converge --low-memory-unused)
rm -rf "$OUT" && mkdir -p "$OUT"
client-wasm/node_modules/.bin/wasm-opt "${PASSES[@]}" "${FEATURES[@]}" \
  --strip-debug --strip-producers --strip-target-features \
  "$WORK/tidings_client_bg.wasm" -o "$OUT/tidings_client_bg.wasm"
# The size report, from the same passes with the names kept (and the check that nothing
# formats). Run apart: keeping the names costs the optimized module a few bytes.
client-wasm/node_modules/.bin/wasm-opt "${PASSES[@]}" "${FEATURES[@]}" -g \
  "$WORK/tidings_client_bg.wasm" -o "$WORK/named.wasm"
node scripts/wasm-size.mjs "$WORK/named.wasm" "${PKG_REPORT_TOP:-15}"

# The package's entry: the glue's exports, and the classes of js/feed.js bound to them. Every
# script of js/ sits beside the snippets wasm-bindgen copied (the same files), so that each is
# one module, imported by the glue and by feed.js alike.
SNIPPETS=$(find "$WORK/snippets" -mindepth 1 -maxdepth 1 -type d)
[ "$(echo "$SNIPPETS" | wc -l)" -eq 1 ] || { echo "expected one snippet directory in $WORK/snippets" >&2; exit 1; }
cp client-wasm/js/*.js "$SNIPPETS/js/"
cat > "$WORK/index.js" <<JS
import * as wasm from './tidings_client.js';
import { bind } from './snippets/${SNIPPETS##*/}/js/feed.js';
export { default, initSync, liveResources } from './tidings_client.js';
export const { TodoFeed, EventStream } = bind(wasm);
JS
# ... as one minified ES module, as every JavaScript library ships: comments and long local
# names are most of the glue's bytes. Properties named `_x` are private to the bundle (the
# scripts' own fields, one of the glue's) and get short names too. Exports, the wasm's
# import names and `new URL('tidings_client_bg.wasm', import.meta.url)` stay as they are.
client-wasm/node_modules/.bin/esbuild "$WORK/index.js" --bundle --format=esm \
  --minify --mangle-props='^_[a-z]' --target=es2022 --log-level=warning \
  --outfile="$OUT/tidings_client.js"
# The declarations: wasm-bindgen's (`init`, `liveResources`, and the `wire` namespace build.rs
# generates), then js/api.d.ts, the classes and options, after its import of that namespace.
cp "$WORK/tidings_client_bg.wasm.d.ts" "$OUT/"
WIRE_IMPORT="import type { wire } from './wire.js';"
grep -qxF "$WIRE_IMPORT" client-wasm/js/api.d.ts || { echo "js/api.d.ts: expected the line $WIRE_IMPORT" >&2; exit 1; }
{ cat "$WORK/tidings_client.d.ts"; awk -v wire="$WIRE_IMPORT" 'after; $0 == wire { after = 1 }' client-wasm/js/api.d.ts; } > "$OUT/tidings_client.d.ts"

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
cp client-wasm/README.md "$OUT/README.md"

total=0
sizes=()
while IFS= read -r file; do
  size=$(gzip -9 -c "$file" | wc -c)
  total=$(( total + size ))
  sizes+=("${file#"$OUT"/} $size B")
done < <(find "$OUT" -type f \( -name '*.wasm' -o -name '*.js' \) | sort)
summary=$(IFS=+; echo "${sizes[*]}" | sed 's/+/ + /g')
printf 'pkg/: tidings-client %s  %s = %s B gzipped -9 (budget %s B)\n' \
  "$VERSION" "$summary" "$total" "$BUDGET"
if [ "$total" -gt "$BUDGET" ]; then
  printf '\033[31merror:\033[0m pkg/ is %s B over its budget of %s B (gzip -9 of each .wasm and .js).\n' \
    "$(( total - BUDGET ))" "$BUDGET" >&2
  echo 'The size report above lists the largest functions; README "Package size" the levers.' >&2
  exit 1
fi
# Last, and only within budget: pkg/package.json's age is the package's (build-demo.sh).
sed "s/\"version\": \"0.0.0\"/\"version\": \"$VERSION\"/" client-wasm/package.template.json > "$OUT/package.json"
