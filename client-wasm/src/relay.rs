//! The tab relay: Rust's handle on `js/relay.js`, which documents the group of tabs that
//! shares one stream (elected with Web Locks, relayed over a `BroadcastChannel`), which tabs
//! may share it (one user's), and how a leader that stopped running is replaced. What a tab
//! applies, and why that is gap-free, is decided in [`crate::session`] and [`crate::chain`];
//! the messages between the script and Rust are [`crate::codes::relay`]. Dropping a
//! [`Relay`] releases the lock, closes the channel and stops its timer.

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::resources::Tracked;

#[wasm_bindgen(module = "/js/relay.js")]
extern "C" {
    #[wasm_bindgen(js_name = Relay)]
    type RelayJs;

    #[wasm_bindgen(static_method_of = RelayJs, js_class = "Relay")]
    fn open(
        base: &str,
        lists: &JsValue,
        credentials: bool,
        token: &JsValue,
        on: &Function,
    ) -> Option<RelayJs>;

    #[wasm_bindgen(method, js_class = "Relay")]
    fn applied(this: &RelayJs, prev: f64, id: f64, name: &str, data: &str);

    #[wasm_bindgen(method, js_class = "Relay")]
    fn status(this: &RelayJs, at: f64, status: &JsValue);

    #[wasm_bindgen(method, js_class = "Relay")]
    fn need(this: &RelayJs, from: f64);

    #[wasm_bindgen(method, js_class = "Relay")]
    fn resync(this: &RelayJs);

    #[wasm_bindgen(method, js_class = "Relay")]
    fn presence(this: &RelayJs, list: &str, data: &str);

    #[wasm_bindgen(method, js_class = "Relay")]
    fn close(this: &RelayJs);

    #[wasm_bindgen(js_name = relayResources)]
    fn relay_resources() -> u32;
}

/// This tab's membership in the group of tabs sharing one stream.
pub struct Relay {
    js: RelayJs,
    _on: Tracked<Closure<dyn Fn(JsValue)>>,
}

impl Relay {
    /// Join the group of `base` and `lists` (`None`: every list) for the credentials mode
    /// and the user of `token` (the `accessToken` option); `on` hears each message for this
    /// tab. `None` where tabs cannot share (no Web Locks or BroadcastChannel, an opaque
    /// origin).
    pub fn open(
        base: &str,
        lists: Option<&[String]>,
        with_credentials: bool,
        token: &JsValue,
        on: impl Fn(JsValue) + 'static,
    ) -> Option<Relay> {
        let lists: JsValue = match lists {
            Some(lists) => {
                lists.iter().map(|l| JsValue::from_str(l)).collect::<js_sys::Array>().into()
            }
            None => JsValue::NULL,
        };
        let on = Closure::<dyn Fn(JsValue)>::new(on);
        let js = RelayJs::open(base, &lists, with_credentials, token, on.as_ref().unchecked_ref())?;
        Some(Relay { js, _on: Tracked::new(on) })
    }

    /// This tab applied change `id` after `prev` (its cursor before): keep it for others'
    /// gaps and, when leading, send it to every other tab.
    pub fn applied(&self, prev: u64, id: u64, name: &str, data: &str) {
        self.js.applied(prev as f64, id as f64, name, data);
    }

    /// This tab's cursor and connection status (sent to the others when leading).
    pub fn status(&self, at: u64, status: &JsValue) {
        self.js.status(at as f64, status);
    }

    /// Ask the leader for the changes after `from`.
    pub fn need(&self, from: u64) {
        self.js.need(from as f64);
    }

    /// A `presence` message of `list` (its JSON data): keep it for tabs that join later and,
    /// when leading, send it to every other tab.
    pub fn presence(&self, list: &str, data: &str) {
        self.js.presence(list, data);
    }

    /// The stream said resync: tell every tab to reload (when leading).
    pub fn resync(&self) {
        self.js.resync();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.js.close();
        // `_on` drops next: `close` made sure the JavaScript side never calls it again.
    }
}

/// Channels, timers, locks and lifecycle listeners the relays hold right now.
pub fn live() -> usize {
    relay_resources() as usize
}
