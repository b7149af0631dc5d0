//! The tab relay: Rust's handle on `js/relay.js`. The tabs of an origin whose feeds follow the
//! same server and lists elect a leader with the Web Locks API; the leader holds the
//! connection and relays every change it applies over a `BroadcastChannel`. The plumbing is
//! JavaScript, where it is a few lines (its comments are here, so the shipped file stays
//! small); what a tab applies, and why that is gap-free, is decided in [`crate::session`].
//! Dropping a [`Relay`] releases the lock, closes the channel and stops its timer.
//!
//! Messages on the channel, by `t`:
//!
//! | `t` | fields | meaning |
//! | --- | --- | --- |
//! | `f` | `prev, id, name, data` | a change the leader applied; `prev` was its cursor before it |
//! | `s` | `at, s, h` | the leader's cursor, connection status and `document.hidden`: on every change, and from its interval in answer to a ping |
//! | `p` | | a follower heard nothing for a while: is the leader alive? |
//! | `n` | `from, by` | follower `by` lacks what came after id `from` |
//! | `r` | `to, frames` | the leader's answer: the frames after `from` from its ring (its last 256 applied, one unbroken chain) |
//! | `x` | `to?` | reload your snapshot: to the tab that asked when the ring does not reach back, to every tab on `resync` |
//!
//! Rust is told `f` (each frame of an `r` too), `s`, `x`, `l {on}`: this tab now leads,
//! or no longer, and `o`: the relay cannot join (the `accessToken` function gave no token, so
//! there is no user to share as): connect alone.
//!
//! Alive means: it can still run its timers. A frozen page (Chromium keeps delivering its
//! network and channel messages, and even runs timers set meanwhile, while the ones it had
//! stand still) or a blocked main thread cannot, and a leader whose timers stand still cannot
//! reconnect or watch its stream either. So a leader answers a ping from its long-running
//! interval, and only status messages count as signs of life. A follower pings after 250 ms
//! without one and takes the lock (`steal`) when the ping is unanswered after 600–1000 ms;
//! the old leader learns it lost the lock once it runs again, and follows. Browsers throttle
//! the timers of hidden tabs (to one a second; after minutes hidden, one a minute), hence
//! more patience with a hidden leader: 2.5 s when this tab is visible (it then takes over,
//! which is as well), over a minute when both are hidden. And before a browser freezes a
//! hidden tab it fires `freeze`: a leader then releases the lock at once, and queues again on
//! `resume`.

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
    /// Join the group of `base` + `lists` (`None`: every list) for the credentials mode and
    /// the user of `token` (the `accessToken` option: its JWT `sub`, or the token itself; a
    /// function is asked for a token first), see [`crate::session`]; `on` receives each
    /// message for this tab (see `js/relay.js`).
    /// `None` where tabs cannot share (no Web Locks or BroadcastChannel, an opaque origin).
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
