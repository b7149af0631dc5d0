//! Generates the TypeScript declarations of the wire types from the `tidings-protocol` crate
//! (ts-rs, at build time), so a protocol change that breaks the Rust build also changes the
//! package's `.d.ts`. `lib.rs` includes the result as a wasm-bindgen TypeScript section: text
//! for the `.d.ts`, never code in the module. The scripts are checked against a copy,
//! `js/wire.d.ts`, which a test in `lib.rs` keeps equal to it.
//!
//! The declarations go into a `wire` namespace exactly as generated; `js/api.d.ts` exports
//! their frozen (deeply `readonly`) forms under the public names, because every value the
//! stores hand out is frozen.

use std::fmt::Write as _;

use tidings_protocol as wire;
use ts_rs::{Config, TS};

fn decl<T: TS>(cfg: &Config, out: &mut String) {
    if let Some(docs) = T::docs() {
        out.push_str(&docs);
    }
    let _ = writeln!(out, "export {}\n", T::decl(cfg));
}

/// [`decl`] for a control message: ts-rs writes the tag of a `#[serde(tag = "type")]` struct
/// as the struct's TypeScript name (`"Connected"`), but the wire carries its serde name
/// (`"connected"`, the message's `TYPE`).
fn control<T: TS>(cfg: &Config, tag: &str, out: &mut String) {
    let mut one = String::new();
    decl::<T>(cfg, &mut one);
    out.push_str(&one.replacen(
        &format!("\"type\": \"{}\"", T::name(cfg)),
        &format!("\"type\": \"{tag}\""),
        1,
    ));
}

fn main() {
    // JSON numbers are doubles: every id and timestamp on the wire is a `number` in JS.
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "/** The wire types, generated from the `tidings-protocol` crate. The API uses their\n \
         * frozen forms (`Todo`, `TodoEvent`, …). */\nexport declare namespace wire {\n",
    );
    decl::<wire::Todo>(&cfg, &mut out);
    decl::<wire::List>(&cfg, &mut out);
    decl::<wire::Role>(&cfg, &mut out);
    decl::<wire::Member>(&cfg, &mut out);
    decl::<wire::Members>(&cfg, &mut out);
    decl::<wire::TodoEvent>(&cfg, &mut out);
    decl::<wire::TodosSnapshot>(&cfg, &mut out);
    decl::<wire::ListsSnapshot>(&cfg, &mut out);
    decl::<wire::TodoPatch>(&cfg, &mut out);
    control::<wire::Connected>(&cfg, wire::Connected::TYPE, &mut out);
    control::<wire::Resync>(&cfg, wire::Resync::TYPE, &mut out);
    decl::<wire::ResyncReason>(&cfg, &mut out);
    control::<wire::Presence>(&cfg, wire::Presence::TYPE, &mut out);
    out.push_str("}\n");
    let dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let path = std::path::Path::new(&dir).join("wire.d.ts");
    if let Err(e) = std::fs::write(&path, out) {
        panic!("cannot write {}: {e}", path.display());
    }
    println!("cargo::rerun-if-changed=build.rs");
}
