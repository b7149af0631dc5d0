//! Lazy like a Svelte `readable`: the owner (a feed or an event stream) wakes when the first
//! subscriber arrives on any of its stores and sleeps [`GRACE_MS`] after the last one left, so
//! a page navigation that unsubscribes and resubscribes keeps the connection.
//!
//! While it has subscribers the owner keeps itself alive (a deliberate `Rc` cycle, broken
//! when it sleeps or closes), so a feed whose JavaScript handle went out of scope does not
//! stop under a live component.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::resources::Tracked;
use crate::store::LiveStore;

/// How long an owner without subscribers stays connected.
pub const GRACE_MS: u32 = 1_000;

/// An owner of stores that connects only while somebody listens.
pub trait Lifecycle: 'static {
    /// Its demand tracker.
    fn lazy(&self) -> &Lazy<Self>
    where
        Self: Sized;
    /// The first subscriber arrived: connect.
    fn wake(self: &Rc<Self>);
    /// Nobody listened for the grace period: disconnect (not for good).
    fn sleep(self: &Rc<Self>);
}

type Hook = Tracked<Closure<dyn Fn()>>;

/// Subscriber counting, grace period and keep-alive for one owner.
pub struct Lazy<T> {
    subscribers: Cell<u32>,
    awake: Cell<bool>,
    closed: Cell<bool>,
    grace: RefCell<Option<Tracked<Timeout>>>,
    keepalive: RefCell<Option<Rc<T>>>,
    hooks: RefCell<Option<(Hook, Hook)>>,
    stores: RefCell<Vec<LiveStore>>,
}

impl<T: Lifecycle> Lazy<T> {
    /// A tracker for `owner` (from `Rc::new_cyclic`).
    pub fn new(owner: Weak<T>) -> Self {
        let weak = owner.clone();
        let start = Closure::<dyn Fn()>::new(move || {
            if let Some(owner) = weak.upgrade() {
                Lazy::acquire(&owner);
            }
        });
        let stop = Closure::<dyn Fn()>::new(move || {
            if let Some(owner) = owner.upgrade() {
                Lazy::release(&owner);
            }
        });
        Lazy {
            subscribers: Cell::new(0),
            awake: Cell::new(false),
            closed: Cell::new(false),
            grace: RefCell::new(None),
            keepalive: RefCell::new(None),
            hooks: RefCell::new(Some((Tracked::new(start), Tracked::new(stop)))),
            stores: RefCell::new(Vec::new()),
        }
    }

    /// A new store holding `value` whose subscribers count as demand.
    pub fn store(&self, value: &JsValue) -> LiveStore {
        let hooks = self.hooks.borrow();
        let store = match hooks.as_ref() {
            Some((start, stop)) => LiveStore::with_hooks(
                value,
                start.as_ref().unchecked_ref(),
                stop.as_ref().unchecked_ref(),
            ),
            None => {
                let noop = js_sys::Function::new_no_args("");
                LiveStore::with_hooks(value, &noop, &noop)
            }
        };
        self.stores.borrow_mut().push(store.clone());
        store
    }

    /// Whether the owner is connected (has had a subscriber within the grace period).
    pub fn is_awake(&self) -> bool {
        self.awake.get()
    }

    /// Whether [`Lazy::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn acquire(owner: &Rc<T>) {
        let lazy = owner.lazy();
        if lazy.closed.get() {
            return;
        }
        lazy.subscribers.set(lazy.subscribers.get() + 1);
        lazy.grace.borrow_mut().take();
        if lazy.subscribers.get() == 1 {
            *lazy.keepalive.borrow_mut() = Some(owner.clone());
            if !lazy.awake.replace(true) {
                owner.wake();
            }
        }
    }

    fn release(owner: &Rc<T>) {
        let lazy = owner.lazy();
        lazy.subscribers.set(lazy.subscribers.get().saturating_sub(1));
        if lazy.subscribers.get() > 0 || lazy.closed.get() {
            return;
        }
        let weak = Rc::downgrade(owner);
        let timer = Timeout::new(GRACE_MS, move || {
            let Some(owner) = weak.upgrade() else { return };
            let lazy = owner.lazy();
            lazy.grace.borrow_mut().take();
            if lazy.subscribers.get() == 0 && lazy.awake.replace(false) {
                owner.sleep();
                let keepalive = lazy.keepalive.borrow_mut().take();
                drop(keepalive); // `owner` is still held here, so this never drops it
            }
        });
        *lazy.grace.borrow_mut() = Some(Tracked::new(timer));
    }

    /// Stop for good: stores keep their last value and no longer call back; the hook
    /// closures are dropped.
    pub fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.awake.set(false);
        self.grace.borrow_mut().take();
        for store in self.stores.borrow().iter() {
            store.detach();
        }
        self.hooks.borrow_mut().take();
        let keepalive = self.keepalive.borrow_mut().take();
        drop(keepalive); // callers hold their own `Rc`, so the owner outlives this call
    }
}

impl<T> Drop for Lazy<T> {
    fn drop(&mut self) {
        for store in self.stores.get_mut().iter() {
            store.detach();
        }
    }
}
