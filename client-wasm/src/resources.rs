//! A count of the browser resources this crate holds (event sources, listeners, timers,
//! closures, requests in flight), so a test can prove that closing everything leaves
//! nothing behind: Rust's own ([`Tracked`]) and those of its scripts (`js/resources.js`).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

// An atomic rather than a thread-local: the page has one thread, and this is smaller.
static LIVE: AtomicUsize = AtomicUsize::new(0);

#[wasm_bindgen::prelude::wasm_bindgen(module = "/js/resources.js")]
extern "C" {
    #[wasm_bindgen(js_name = jsResources)]
    fn js_resources() -> u32;
}

/// How many tracked resources are alive right now.
pub fn live() -> usize {
    LIVE.load(Relaxed) + js_resources() as usize
}

/// A value counted in [`live`] while it exists.
#[derive(Debug)]
pub struct Tracked<T>(T);

impl<T> Tracked<T> {
    /// Start counting `value`.
    pub fn new(value: T) -> Self {
        LIVE.fetch_add(1, Relaxed);
        Tracked(value)
    }
}

impl<T> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Tracked<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Relaxed);
    }
}
