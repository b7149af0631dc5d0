//! The tailer: the one publisher of changes in a process.
//!
//! It follows the event log with one number, `cursor`: when the store signals that the head
//! moved (in-process for SQLite, `LISTEN/NOTIFY` for PostgreSQL) and on a timer, it reads the
//! events after `cursor` in id order, frames each once and broadcasts it to this process's
//! streams. Changes committed by any process on the same database therefore reach every
//! stream, and nothing that failed to commit ever does.
//!
//! It runs on a thread of its own: its reads then never wait behind the thousands of stream
//! tasks the previous broadcast woke on the server's runtime.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::hub::{Envelope, Hub};
use crate::store::{HeadSignal, Page, Store};

/// Events read per query.
const PAGE: Page = Page { events: 512, bytes: 256 * 1024 };

/// First delay after a failed read; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the tailer has done, for `/health`; shared with the tailer's thread.
#[derive(Debug, Default)]
pub struct TailerStatus {
    /// The newest id broadcast.
    broadcast: AtomicU64,
    /// The newest id known to be committed.
    head: AtomicU64,
    /// Whether the last read of the log succeeded.
    database_ok: AtomicBool,
    /// Whether the head signal is connected (PostgreSQL's `LISTEN`).
    listening: AtomicBool,
}

impl TailerStatus {
    /// The newest event id this process has broadcast.
    pub fn broadcast_id(&self) -> u64 {
        self.broadcast.load(Ordering::Acquire)
    }

    /// The newest committed id the tailer has seen (at least [`TailerStatus::broadcast_id`]).
    pub fn head_seen(&self) -> u64 {
        self.head.load(Ordering::Acquire).max(self.broadcast_id())
    }

    /// Record a head read elsewhere (by `/health`), so the lag is measured against it.
    pub fn saw_head(&self, head: u64) {
        self.head.fetch_max(head, Ordering::AcqRel);
    }

    /// Whether the tailer's last read of the log succeeded.
    pub fn database_ok(&self) -> bool {
        self.database_ok.load(Ordering::Acquire)
    }

    /// Whether the head signal is connected.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// Settings of the tailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailerOptions {
    /// How often the log is read even without a signal (a missed `NOTIFY`).
    pub check_every: Duration,
}

/// Start the tailer on a thread of its own, broadcasting every event after `start`, until
/// `until` resolves.
///
/// `start` must be read from the log before any stream of this process opens: a stream that
/// went live at an id below `start` would never receive the events in between.
pub fn spawn(
    store: Store,
    hub: Hub,
    status: Arc<TailerStatus>,
    options: TailerOptions,
    start: u64,
    until: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    status.broadcast.store(start, Ordering::Release);
    status.saw_head(start);
    status.database_ok.store(true, Ordering::Release);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("tidings-tailer".into()).spawn(move || {
        runtime.block_on(async move {
            tokio::select! {
                _ = until => {}
                _ = run(store, hub, status, options, start) => {}
            }
        });
    })?;
    Ok(())
}

/// Follow the log forever.
async fn run(
    store: Store,
    hub: Hub,
    status: Arc<TailerStatus>,
    options: TailerOptions,
    mut cursor: u64,
) {
    let mut backoff = MIN_BACKOFF;
    let mut signal: Option<HeadSignal> = None;
    loop {
        if signal.is_none() {
            match store.head_signal().await {
                Ok(s) => signal = Some(s),
                Err(e) => log::warn!("tailer: no head signal ({e}); reading on the timer"),
            }
        }
        match drain(&store, &hub, &status, &mut cursor).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                status.database_ok.store(false, Ordering::Release);
                log::warn!("tailer: cannot read the log after {cursor} ({e}); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        let woken = async {
            match signal.as_mut() {
                Some(signal) => signal.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(options.check_every) => {}
        }
        let lag = status.head_seen().saturating_sub(status.broadcast_id());
        crate::metrics::handles().tailer_lag.set(lag as f64);
        let listening = signal.as_ref().is_some_and(HeadSignal::is_connected);
        status.listening.store(listening, Ordering::Release);
    }
}

/// Broadcast every committed event after `cursor`, in order.
async fn drain(
    store: &Store,
    hub: &Hub,
    status: &TailerStatus,
    cursor: &mut u64,
) -> crate::store::Result<()> {
    loop {
        let page = store.tail(*cursor, PAGE).await?;
        status.database_ok.store(true, Ordering::Release);
        let Some(last) = page.last().map(|event| event.id) else { return Ok(()) };
        for event in &page {
            hub.publish(Envelope::of(event));
        }
        crate::metrics::handles().events_published.increment(page.len() as u64);
        *cursor = last;
        status.broadcast.store(last, Ordering::Release);
        status.saw_head(last);
    }
}
