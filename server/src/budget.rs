//! Write budgets: how fast one client may write, so one user cannot starve the others' writes
//! or flush everyone's resume points out of the log.
//!
//! A token bucket per client (GCRA, `governor`): `write_burst` writes at once, refilled at
//! `write_rate` per second. The client is the user with access control, the remote address
//! without it (as for the per-client stream cap, `hub::Client`). A write past the budget gets
//! `429 write_rate_limited` with `Retry-After`, before it is validated or queued: it costs the
//! server almost nothing and changes nothing.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use rocket::request::{FromRequest, Outcome, Request};

use crate::auth::Caller;
use crate::error::AppError;
use crate::hub::Client;

/// Forget the buckets of clients idle long enough to be full again every this many checks,
/// so the table holds the clients of the last moments, not every client ever seen.
const SWEEP_EVERY: u32 = 4096;

/// The server's write budgets (managed state).
pub struct WriteBudget {
    limiter: Option<DefaultKeyedRateLimiter<Client>>,
    checks: AtomicU32,
}

impl WriteBudget {
    /// `burst` writes at once, refilled at `rate` per second, per client; a `rate` of 0 turns
    /// budgets off.
    pub fn new(rate: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst))
        });
        WriteBudget { limiter, checks: AtomicU32::new(0) }
    }

    /// Take one write from `client`'s budget, or say when the next one is due.
    pub fn charge(&self, client: &Client) -> Result<(), AppError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::TooManyRequests {
                code: "write_rate_limited",
                message: "too many writes: wait for `Retry-After` seconds, then write again".into(),
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

/// A write request within its client's budget: a guard every write route takes.
pub struct WriteTurn;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for WriteTurn {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        let Some(budget) = req.rocket().state::<WriteBudget>() else {
            return Outcome::Success(WriteTurn);
        };
        if budget.limiter.is_none() {
            return Outcome::Success(WriteTurn);
        }
        // The token is verified again by the route's own `Caller` (microseconds), which keeps
        // this guard independent of the order of a route's parameters.
        let client = match req.guard::<Caller>().await {
            Outcome::Success(Caller::User(user)) => Client::User(user.id),
            _ => crate::auth::peer_address(req).map_or(Client::Unknown, Client::Address),
        };
        match budget.charge(&client) {
            Ok(()) => Outcome::Success(WriteTurn),
            Err(error) => Outcome::Error((error.status(), error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_unaffected() {
        let budget = WriteBudget::new(1, 3);
        let (alice, bob) = (Client::User("alice".into()), Client::User("bob".into()));
        for _ in 0..3 {
            budget.charge(&alice).unwrap();
        }
        let refused = budget.charge(&alice).unwrap_err();
        assert_eq!(refused.code(), "write_rate_limited");
        assert!(matches!(refused, AppError::TooManyRequests { retry_after: 1, .. }), "{refused:?}");
        budget.charge(&bob).unwrap();
        let off = WriteBudget::new(0, 0);
        for _ in 0..10_000 {
            off.charge(&alice).unwrap();
        }
    }
}
