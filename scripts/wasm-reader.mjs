// Reading a wasm module's binary format, for the package's build scripts (wasm-size.mjs,
// short-names.mjs): unsigned LEB128 numbers, names, and the import descriptors whose length
// depends on their kind. `at` is the offset of the next byte; it starts after the magic number
// and version.
export class WasmReader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 8;
  }

  /** An unsigned LEB128 number. */
  u32() {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.bytes[this.at++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  }

  /** A length-prefixed UTF-8 name. */
  name() {
    const n = this.u32();
    this.at += n;
    return this.bytes.toString('utf8', this.at - n, this.at);
  }

  /** The import descriptor after an import's two names: its bytes, and its kind (0: a function). */
  descriptor() {
    const start = this.at;
    const kind = this.bytes[this.at++];
    if (kind === 0) this.u32();
    else if (kind === 1) {
      this.at++; // table element type
      if (this.u32() & 1) this.u32();
      this.u32();
    } else if (kind === 2) {
      if (this.u32() & 1) this.u32();
      this.u32();
    } else if (kind === 3) this.at += 2;
    else if (kind === 4) {
      this.at++;
      this.u32();
    } else throw new Error(`unknown import kind ${kind}`);
    return { kind, bytes: this.bytes.subarray(start, this.at) };
  }
}
