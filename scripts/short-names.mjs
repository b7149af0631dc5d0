// Give the wasm module's imports from its JS glue, and its closure-invoking exports, short
// names, in the module, the glue and the declarations. wasm-bindgen names each import
// `__wbg_<function>_<16 hex digits>`, their module `./tidings_client_bg.js`, and each
// closure's entry point `wasm_bindgen__convert__closures_____invoke__h<16 hex digits>`: about
// 50 bytes a name that gzip cannot share between the two files, for names nothing outside
// them uses (the glue passes the imports to `WebAssembly.instantiate` and calls the closure
// entry points itself). The other exports keep their names: `init()` hands them to the
// application.
//
// Usage: node scripts/short-names.mjs <module.wasm> <glue.js> [<file.d.ts>…]   (in place)
import { readFileSync, writeFileSync } from 'node:fs';

const [wasmFile, glueFile, ...declarations] = process.argv.slice(2);
const bytes = readFileSync(wasmFile);
let glue = readFileSync(glueFile, 'utf8');

const MODULE = './tidings_client_bg.js';
const SHORT_MODULE = 'w';

let at = 8;
const u32 = () => {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return value;
  }
};
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
const name = () => {
  const n = u32();
  at += n;
  return bytes.toString('utf8', at - n, at);
};

// The import descriptor after the two names, copied as it is: its length depends on the kind.
const descriptor = () => {
  const start = at;
  const kind = bytes[at++];
  if (kind === 0) u32();
  else if (kind === 1) {
    at++;
    if (u32() & 1) u32();
    u32();
  } else if (kind === 2) {
    if (u32() & 1) u32();
    u32();
  } else if (kind === 3) at += 2;
  else if (kind === 4) {
    at++;
    u32();
  } else throw new Error(`unknown import kind ${kind}`);
  return bytes.subarray(start, at);
};

const pieces = [bytes.subarray(0, 8)];
const renamed = new Map();
while (at < bytes.length) {
  const sectionStart = at;
  const id = bytes[at++];
  const size = u32();
  const end = at + size;
  if (id === 7) {
    const entries = [];
    for (let count = u32(); count > 0; count--) {
      let field = name();
      const start = at;
      at++; // kind
      u32(); // index
      if (/^wasm_bindgen__convert__closures_/.test(field)) {
        const short = `$c${renamed.size.toString(36)}`;
        renamed.set(field, short);
        field = short;
      }
      entries.push(Buffer.concat([string(field), bytes.subarray(start, at)]));
    }
    const body = Buffer.concat([leb(entries.length), ...entries]);
    pieces.push(Buffer.from([7]), leb(body.length), body);
    at = end;
    continue;
  }
  if (id !== 2) {
    pieces.push(bytes.subarray(sectionStart, end));
    at = end;
    continue;
  }
  const entries = [];
  for (let count = u32(); count > 0; count--) {
    const module = name();
    let field = name();
    const desc = descriptor();
    if (module === MODULE) {
      if (!renamed.has(field)) renamed.set(field, `$${renamed.size.toString(36)}`);
      field = renamed.get(field);
    }
    entries.push(Buffer.concat([string(module === MODULE ? SHORT_MODULE : module), string(field), desc]));
  }
  const body = Buffer.concat([leb(entries.length), ...entries]);
  pieces.push(Buffer.from([2]), leb(body.length), body);
  at = end;
}

// Each old name is unique (a hash in it) and appears in the glue as the import object's key.
let replaced = 0;
for (const [old, short] of renamed) {
  const pattern = new RegExp(`(?<![\\w$])${old.replace(/\$/g, '\\$')}(?![\\w$])`, 'g');
  const before = glue;
  glue = glue.replace(pattern, short);
  if (glue === before) throw new Error(`${old} is not in ${glueFile}`);
  replaced++;
}
const quoted = new RegExp(`(["'])${MODULE.replace(/[.]/g, '\\.')}\\1`, 'g');
if (!quoted.test(glue)) throw new Error(`${glueFile} does not name the module ${MODULE}`);
glue = glue.replace(quoted, `"${SHORT_MODULE}"`);

writeFileSync(wasmFile, Buffer.concat(pieces));
writeFileSync(glueFile, glue);
for (const file of declarations) {
  let text = readFileSync(file, 'utf8');
  for (const [old, short] of renamed) text = text.replaceAll(old, short);
  writeFileSync(file, text);
}
console.log(`short-names: ${replaced} imports and closure entry points renamed`);
