//! Each client's share of the server, so one user cannot starve the others.
//!
//! Writes: a token bucket per client (GCRA, `governor`): `write_burst` writes at once,
//! refilled at `write_rate` per second. A write past the budget gets `429
//! write_rate_limited` with `Retry-After`, before it is validated or queued: it costs the
//! server almost nothing and changes nothing. One user can neither slow the others' writes
//! nor flush everyone's resume points out of the log.
//!
//! Snapshot reads: at most `max_reads_per_client` of a client's reads run at once; the rest
//! wait their turn (nothing is refused). The reader pool has a few connections: without a
//! share, one user's dozens of large snapshots hold all of them and everyone else's small
//! read waits behind them.
//!
//! The client is the user with access control, the remote address without it (as for the
//! per-client stream cap, `hub::Client`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Who a request is from, for its shares: the token's user, else the peer address. (A
/// token is verified again by the route's own `Caller`, microseconds, which keeps these
/// guards independent of the order of a route's parameters.)
async fn client_of(req: &Request<'_>) -> Client {
    match req.guard::<Caller>().await {
        Outcome::Success(Caller::User(user)) => Client::User(user.id),
        _ => crate::auth::peer_address(req).map_or(Client::Unknown, Client::Address),
    }
}

/// How many snapshot reads each client may have running at once (managed state).
pub struct ReadShares {
    per_client: usize,
    running: Mutex<HashMap<Client, Arc<Semaphore>>>,
}

impl ReadShares {
    /// `per_client` reads at once per client (at least one).
    pub fn new(per_client: usize) -> Self {
        ReadShares { per_client: per_client.max(1), running: Mutex::default() }
    }

    /// Wait for one of `client`'s shares.
    pub async fn take(&self, client: Client) -> ReadTurn<'_> {
        let shares = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .entry(client.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_client)))
                .clone()
        };
        // Never closed: `acquire_owned` cannot fail.
        let permit = shares.clone().acquire_owned().await.ok();
        ReadTurn { shares: self, client, semaphore: shares, permit }
    }

    /// Clients with a read running or waiting (for tests and metrics).
    pub fn clients(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A snapshot read's turn: one of its client's shares, given back when the route is done.
pub struct ReadTurn<'r> {
    shares: &'r ReadShares,
    client: Client,
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut running = self.shares.running.lock().unwrap_or_else(|e| e.into_inner());
        // Forget a client with nothing running or waiting: the map and this turn hold the
        // only references, and every share is back.
        let idle = Arc::strong_count(&self.semaphore) == 2
            && self.semaphore.available_permits() == self.shares.per_client;
        if idle {
            running.remove(&self.client);
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ReadTurn<'r> {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        let Some(shares) = req.rocket().state::<ReadShares>() else {
            let error = AppError::Internal("no read shares".into());
            return Outcome::Error((error.status(), error));
        };
        Outcome::Success(shares.take(client_of(req).await).await)
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
        match budget.charge(&client_of(req).await) {
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

    #[tokio::test]
    async fn a_client_past_its_read_shares_waits_and_others_do_not() {
        let shares = ReadShares::new(2);
        let (alice, bob) = (Client::User("alice".into()), Client::User("bob".into()));
        let first = shares.take(alice.clone()).await;
        let second = shares.take(alice.clone()).await;
        let third = shares.take(alice.clone());
        tokio::pin!(third);
        use futures_util::FutureExt;
        assert!(third.as_mut().now_or_never().is_none(), "a third read of alice waits");
        let bobs = shares.take(bob).await;
        drop(first);
        let third = third.await;
        drop((second, third, bobs));
        assert_eq!(shares.clients(), 0, "idle clients are forgotten");
    }
}
