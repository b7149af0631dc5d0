//! The stores handed to JavaScript: a small JS class ([`LiveStore`], in `js/store.js`) keeps
//! the Svelte store contract and its re-entrancy in JavaScript, where subscribers live;
//! Rust sets values and learns when the first subscriber arrives and the last one leaves.

use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    /// A Svelte-compatible readable store whose value Rust sets.
    #[derive(Debug, Clone)]
    pub type LiveStore;

    #[wasm_bindgen(constructor)]
    fn new(value: &JsValue, start: &Function, stop: &Function) -> LiveStore;

    /// Set the value and call every subscriber with it.
    #[wasm_bindgen(method)]
    pub fn set(this: &LiveStore, value: &JsValue);

    /// The current value.
    #[wasm_bindgen(method)]
    pub fn get(this: &LiveStore) -> JsValue;

    /// Forget the start/stop hooks (their closures are about to be dropped).
    #[wasm_bindgen(method)]
    pub fn detach(this: &LiveStore);
}

impl LiveStore {
    /// A store holding `value` whose first subscriber calls `start` and last leaver `stop`.
    pub fn with_hooks(value: &JsValue, start: &Function, stop: &Function) -> Self {
        LiveStore::new(value, start, stop)
    }
}
