// Give the names between the wasm module and its JS glue short names, in the module, the
// glue and the declarations: the imports (wasm-bindgen names each `__wbg_<function>_<16 hex
// digits>`, their module `./tidings_client_bg.js`) and the exports but `memory` (the glue's
// entry points into Rust: `feedcore_new`, `__wbindgen_malloc`, each closure's
// `wasm_bindgen__convert__closures_____invoke__h<16 hex digits>`, …). Up to 60 bytes a name
// that gzip cannot share between the two files, for names only the glue uses: the package's
// API is the glue's own exports, which keep their names. (`init()` hands the module's
// exports to the application too, as `InitOutput`; of those only `memory` is any use to it.)
//
// Usage: node scripts/short-names.mjs <module.wasm> <glue.js> [<file.d.ts>…]   (in place)
import { readFileSync, writeFileSync } from 'node:fs';
import { WasmReader } from './wasm-reader.mjs';

const [wasmFile, glueFile, ...declarations] = process.argv.slice(2);
const bytes = readFileSync(wasmFile);
let glue = readFileSync(glueFile, 'utf8');

const MODULE = './tidings_client_bg.js';
const SHORT_MODULE = 'w';

const wasm = new WasmReader(bytes);
const u32 = () => wasm.u32();
const name = () => wasm.name();
const leb = (n) => {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
};
const string = (s) => Buffer.concat([leb(Buffer.byteLength(s)), Buffer.from(s)]);
const member = (name) => new RegExp(`(?<=\\bwasm\\.)${name.replace(/\$/g, '\\$')}(?![\\w$])`, 'g');
const identifier = (name) => new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}(?![\\w$])`, 'g');

const pieces = [bytes.subarray(0, 8)];
const renamed = new Map(); // imports: object keys of the glue's import object
const exported = new Map(); // exports: `wasm.<name>` in the glue
while (wasm.at < bytes.length) {
  const sectionStart = wasm.at;
  const id = bytes[wasm.at++];
  const size = u32();
  const end = wasm.at + size;
  if (id === 7) {
    const entries = [];
    for (let count = u32(); count > 0; count--) {
      let field = name();
      const start = wasm.at;
      wasm.at++; // kind
      u32(); // index
      // Only what the glue calls, as `wasm.<name>` (the module also exports hooks of
      // wasm-bindgen's runtime, and the glue has functions of the same names as some).
      if (field !== 'memory' && member(field).test(glue)) {
        const short = `$e${exported.size.toString(36)}`;
        exported.set(field, short);
        field = short;
      }
      entries.push(Buffer.concat([string(field), bytes.subarray(start, wasm.at)]));
    }
    const body = Buffer.concat([leb(entries.length), ...entries]);
    pieces.push(Buffer.from([7]), leb(body.length), body);
    wasm.at = end;
    continue;
  }
  if (id !== 2) {
    pieces.push(bytes.subarray(sectionStart, end));
    wasm.at = end;
    continue;
  }
  const entries = [];
  for (let count = u32(); count > 0; count--) {
    const module = name();
    let field = name();
    const desc = wasm.descriptor().bytes;
    if (module === MODULE) {
      if (!renamed.has(field)) renamed.set(field, `$${renamed.size.toString(36)}`);
      field = renamed.get(field);
    }
    entries.push(Buffer.concat([string(module === MODULE ? SHORT_MODULE : module), string(field), desc]));
  }
  const body = Buffer.concat([leb(entries.length), ...entries]);
  pieces.push(Buffer.from([2]), leb(body.length), body);
  wasm.at = end;
}

// Each old name is unique (a hash in it) and appears in the glue as the import object's key.
let replaced = 0;
for (const [old, short] of renamed) {
  const before = glue;
  glue = glue.replace(identifier(old), short);
  if (glue === before) throw new Error(`${old} is not in ${glueFile}`);
  replaced++;
}
for (const [old, short] of exported) {
  glue = glue.replace(member(old), short);
  replaced++;
}
const quoted = new RegExp(`(["'])${MODULE.replace(/[.]/g, '\\.')}\\1`, 'g');
if (!quoted.test(glue)) throw new Error(`${glueFile} does not name the module ${MODULE}`);
glue = glue.replace(quoted, `"${SHORT_MODULE}"`);

writeFileSync(wasmFile, Buffer.concat(pieces));
writeFileSync(glueFile, glue);
for (const file of declarations) {
  let text = readFileSync(file, 'utf8');
  // The exports as `InitOutput` lists them (`readonly name:`) and the module's own
  // declarations do (`export const name:`); a glue function of the same name stays.
  for (const [old, short] of exported) {
    text = text.replace(new RegExp(`(?<=(?:readonly|export const) )${old.replace(/\$/g, '\\$')}(?=:)`, 'g'), short);
  }
  for (const [old, short] of renamed) text = text.replaceAll(old, short);
  writeFileSync(file, text);
}
console.log(`short-names: ${replaced} imports and exports renamed`);
