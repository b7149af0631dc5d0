//! The snapshot load's retry loop ([`crate::feed`]): it counts failed attempts, waits the
//! backoff delay (exponential, jittered, capped), then runs the attempt again. A refusal
//! (401/403) continues at the cap instead of hammering the server, as the stream does
//! (`js/connection.js`, with delays from the same [`Backoff`]), and a pending retry is one
//! tracked timer that `cancel` (or drop) removes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::callback::Timeout;

use crate::backoff::Backoff;
use crate::resources::Tracked;
use crate::status::ClientError;

/// Failed attempts so far and the pending retry, if any.
#[derive(Debug)]
pub struct Retry {
    backoff: Backoff,
    attempt: Cell<u32>,
    /// Shared with the timer, which empties it when it fires.
    pending: Rc<RefCell<Option<Tracked<Timeout>>>>,
}

impl Retry {
    /// No failure yet, delays from `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Retry { backoff, attempt: Cell::new(0), pending: Rc::default() }
    }

    /// Failed attempts since the last [`Retry::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt.get()
    }

    /// Count a failed attempt.
    pub fn failed(&self) {
        self.attempt.set(self.attempt.get().saturating_add(1));
    }

    /// Continue at the cap if `error` is a refusal (401/403): retrying sooner would only
    /// hammer a server that said no.
    pub fn back_off_for(&self, error: &ClientError) {
        if error.is_auth() {
            self.attempt.set(self.attempt.get().max(self.backoff.attempt_at_cap()));
        }
    }

    /// The delay before the next attempt, in milliseconds.
    fn delay(&self, not_before_ms: Option<f64>) -> u32 {
        let delay = self.backoff.delay(self.attempt.get().max(1), js_sys::Math::random());
        delay.max(not_before_ms.unwrap_or(0.0)).round() as u32
    }

    /// Run `again` after the delay for the failures counted so far (at least `not_before_ms`,
    /// the server's `Retry-After`). Replaces a retry already pending.
    pub fn schedule(&self, not_before_ms: Option<f64>, again: impl FnOnce() + 'static) {
        let slot = Rc::downgrade(&self.pending);
        let timer = Timeout::new(self.delay(not_before_ms), move || {
            if let Some(slot) = slot.upgrade() {
                slot.borrow_mut().take();
            }
            again();
        });
        *self.pending.borrow_mut() = Some(Tracked::new(timer));
    }

    /// Whether a retry is scheduled and has not run yet.
    pub fn is_pending(&self) -> bool {
        self.pending.borrow().is_some()
    }

    /// Drop the pending retry, if any (the attempt count stays).
    pub fn cancel(&self) {
        self.pending.borrow_mut().take();
    }

    /// A success: the next failure starts again from the first delay.
    pub fn reset(&self) {
        self.attempt.set(0);
    }
}
