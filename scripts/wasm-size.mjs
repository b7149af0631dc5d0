// The package's size report: the largest functions of a wasm module, by the bytes of their
// bodies, named from the module's name section (build-pkg.sh runs it on the optimized module
// before the names are stripped). It also fails when std's formatting machinery is in the
// module: nothing reachable from the exports may format (no `format!`, `Display`, `Debug`),
// and this is what keeps it that way.
//
// Usage: node scripts/wasm-size.mjs <module.wasm> [how many functions to list]
import { readFileSync } from 'node:fs';
import { WasmReader } from './wasm-reader.mjs';

const [file, top = '15'] = process.argv.slice(2);
const bytes = readFileSync(file);

const wasm = new WasmReader(bytes);
const u32 = () => wasm.u32();
const name = () => wasm.name();

let imported = 0; // functions are numbered imports first
const bodies = []; // [size] per defined function
const names = new Map();
const sections = new Map();
const SECTION = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export',
  'start', 'element', 'code', 'data', 'data count', 'tag'];
while (wasm.at < bytes.length) {
  const id = bytes[wasm.at++];
  const size = u32();
  const end = wasm.at + size;
  let label = SECTION[id] ?? `section ${id}`;
  if (id === 0) {
    label = `custom "${name()}"`;
    if (label === 'custom "name"') {
      while (wasm.at < end) {
        const kind = bytes[wasm.at++];
        const length = u32();
        const next = wasm.at + length;
        if (kind === 1) {
          for (let count = u32(); count > 0; count--) names.set(u32(), name());
        }
        wasm.at = next;
      }
    }
  } else if (id === 2) {
    for (let count = u32(); count > 0; count--) {
      name();
      name();
      if (wasm.descriptor().kind === 0) imported++;
    }
  } else if (id === 10) {
    for (let count = u32(); count > 0; count--) {
      const length = u32();
      bodies.push(length);
      wasm.at += length;
    }
  }
  sections.set(label, (sections.get(label) ?? 0) + size);
  wasm.at = end;
}

const kb = (n) => `${n}`.padStart(7);
console.log(`${file}: ${bytes.length} B, ${imported} imported and ${bodies.length} own functions`);
for (const [label, size] of [...sections].sort((a, b) => b[1] - a[1])) {
  console.log(`${kb(size)}  ${label}`);
}
// Legacy symbol hashes (`::h0123…`) only make the report harder to read.
const label = (i) => (names.get(imported + i) ?? `#${imported + i}`).replace(/::h[0-9a-f]{16}$/, '');
const functions = bodies.map((size, i) => ({ size, name: label(i) }));
functions.sort((a, b) => b.size - a.size);
console.log(`largest functions (bytes of body):`);
for (const f of functions.slice(0, Number(top))) console.log(`${kb(f.size)}  ${f.name}`);

if (names.size === 0) {
  console.error(`${file} has no function names: run this on the module before stripping`);
  process.exit(1);
}
const formatting = functions.filter((f) => /\bcore::fmt::/.test(f.name));
if (formatting.length) {
  console.error(`error: std's formatting is in the package (${formatting.length} functions):`);
  for (const f of formatting.slice(0, 10)) console.error(`${kb(f.size)}  ${f.name}`);
  console.error('Something reachable from the exports formats (format!, to_string, Display, Debug):');
  console.error('build the string by hand or move the text to JavaScript.');
  process.exit(1);
}
