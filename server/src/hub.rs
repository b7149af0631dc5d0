//! The fan-out hub: a `tokio::sync::broadcast` of already-framed events ([`Envelope`]s), the
//! stream slots,
//! and the timers every stream shares (heartbeat, probe).
//!
//! Only the [tailer](crate::tailer) publishes changes, in id order; a delivery is a refcount
//! increment and one write, not a serialization per client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tidings_protocol::Heartbeat;
use tokio::sync::broadcast;

use crate::audience::{AccessChange, Scope};
use crate::sse;
use crate::store::LoggedEvent;

/// What the hub broadcasts: one SSE message, framed once and shared by every stream that
/// sends it, with the address every stream checks it against.
#[derive(Debug)]
pub struct Envelope {
    /// The event id; `None` for control messages such as heartbeats.
    pub id: Option<u64>,
    /// Who receives it.
    pub scope: Scope,
    /// What it changes about its audience's read access (with access control).
    pub change: Option<AccessChange>,
    /// The complete wire bytes, ending in a blank line (or a comment line for a probe).
    pub frame: Bytes,
}

impl Envelope {
    /// The envelope of a logged change.
    pub fn of(event: &LoggedEvent) -> Self {
        Envelope {
            id: Some(event.id),
            scope: Scope::of(event),
            change: AccessChange::of(event),
            frame: sse::event_frame(event),
        }
    }
}

/// The fan-out hub, kept in Rocket managed state. Cloning shares the same channel.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Arc<Envelope>>,
    open_streams: AtomicUsize,
    max_streams: usize,
    max_per_client: usize,
    per_client: Mutex<HashMap<Client, usize>>,
}

/// Who holds a stream, for the per-client cap: the user when access control is on, the
/// remote address otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An authenticated user (`sub`).
    User(String),
    /// A remote address.
    Address(IpAddr),
    /// Neither is known (an in-process client).
    Unknown,
}

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server holds `max_streams`.
    ServerFull,
    /// This client holds `max_streams_per_client`.
    ClientFull,
}

impl Hub {
    /// A hub whose broadcast buffer holds `capacity` frames and which admits at most
    /// `max_streams` streams, `max_per_client` of them per client.
    pub fn new(capacity: usize, max_streams: usize, max_per_client: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Hub {
            inner: Arc::new(Inner {
                tx,
                open_streams: AtomicUsize::new(0),
                max_streams,
                max_per_client,
                per_client: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Send an envelope to every subscribed stream. Changes are sent by the tailer, in id
    /// order.
    pub fn publish(&self, envelope: Envelope) {
        // An error only means nobody is listening right now, which is fine: the log has it.
        let _ = self.inner.tx.send(Arc::new(envelope));
    }

    /// A receiver of every envelope published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.inner.tx.subscribe()
    }

    /// Take a stream slot for `client`. The slot is given back when the returned guard is
    /// dropped.
    pub fn try_open_stream(&self, client: Client) -> Result<StreamSlot, Refused> {
        let mut per_client = self.inner.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_client.get(&client).copied().unwrap_or(0);
        if client != Client::Unknown && held >= self.inner.max_per_client {
            return Err(Refused::ClientFull);
        }
        let admitted = self
            .inner
            .open_streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.max_streams).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(Refused::ServerFull);
        }
        per_client.insert(client.clone(), held + 1);
        crate::metrics::handles().open_streams.increment(1.0);
        Ok(StreamSlot { inner: self.inner.clone(), client })
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::Acquire)
    }

    /// Until `until` resolves: a `heartbeat` frame to every stream every `heartbeat`, and a
    /// probe every `probe` (if any). One timer for the whole server rather than one per
    /// stream.
    pub async fn run_timers(
        self,
        heartbeat: Duration,
        probe: Option<Duration>,
        until: impl std::future::Future,
    ) {
        let beat = sse::encode_control(None, Heartbeat::TYPE, &Heartbeat {}, None);
        let start = tokio::time::Instant::now();
        let mut beats = tokio::time::interval_at(start + heartbeat, heartbeat);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probes = probe.map(|probe| {
            let mut probes = tokio::time::interval_at(start + probe, probe);
            probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            probes
        });
        tokio::pin!(until);
        loop {
            let probe_tick = async {
                match probes.as_mut() {
                    Some(probes) => probes.tick().await,
                    None => std::future::pending().await,
                }
            };
            let frame = tokio::select! {
                _ = &mut until => return,
                _ = beats.tick() => beat.clone(),
                _ = probe_tick => Bytes::from_static(sse::PROBE),
            };
            self.publish(Envelope { id: None, scope: Scope::All, change: None, frame });
        }
    }
}

/// A held stream slot; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    inner: Arc<Inner>,
    client: Client,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut per_client = self.inner.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                per_client.remove(&self.client);
            }
        }
        self.inner.open_streams.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::handles().open_streams.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_server_and_per_client_and_freed_on_drop() {
        let hub = Hub::new(4, 3, 2);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let a = hub.try_open_stream(Client::Address(one)).unwrap();
        let _b = hub.try_open_stream(Client::Address(one)).unwrap();
        assert_eq!(hub.try_open_stream(Client::Address(one)).unwrap_err(), Refused::ClientFull);
        let _c = hub.try_open_stream(Client::Address(two)).unwrap();
        assert_eq!(hub.try_open_stream(Client::Address(two)).unwrap_err(), Refused::ServerFull);
        assert_eq!(hub.open_streams(), 3);
        drop(a);
        assert_eq!(hub.open_streams(), 2);
        assert!(hub.try_open_stream(Client::Address(one)).is_ok());
    }
}
