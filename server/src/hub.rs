//! The fan-out hub: a `tokio::sync::broadcast` of already-framed events, the stream slots,
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

use crate::access::Effect;
use crate::sse;
use crate::store::LoggedEvent;

/// Which streams a frame goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every stream (heartbeats, probes, `list_created` without access control).
    All,
    /// Streams that follow `list`, or `moved_from` when a todo left that list.
    List {
        /// The list the change happened in.
        list: String,
        /// The list a moved todo left.
        moved_from: Option<String>,
    },
    /// The streams of one user (per-user events).
    User(String),
}

impl Scope {
    /// The scope of a logged change.
    pub fn of(event: &LoggedEvent) -> Self {
        if let Some(user) = &event.audience {
            Scope::User(user.clone())
        } else if event.global {
            Scope::All
        } else {
            Scope::List { list: event.list_id.clone(), moved_from: event.moved_from.clone() }
        }
    }

    /// Whether a stream following `lists` (`None`: every list) of `user` receives this frame.
    pub fn reaches(&self, lists: Option<&[String]>, user: Option<&str>) -> bool {
        match (self, lists) {
            (Scope::User(target), _) => user == Some(target.as_str()),
            (Scope::All, _) | (_, None) => true,
            (Scope::List { list, moved_from }, Some(lists)) => {
                lists.iter().any(|l| l == list || Some(l) == moved_from.as_ref())
            }
        }
    }
}

/// One SSE message, framed once and shared by every stream that sends it.
#[derive(Debug)]
pub struct Frame {
    /// The event id; `None` for control messages such as heartbeats.
    pub id: Option<u64>,
    /// Who receives it.
    pub scope: Scope,
    /// What it changes about its audience's read access (with access control).
    pub effect: Option<Effect>,
    /// The complete wire bytes, ending in a blank line (or a comment line for a probe).
    pub bytes: Bytes,
}

impl Frame {
    /// The frame of a logged change.
    pub fn of(event: &LoggedEvent) -> Self {
        Frame {
            id: Some(event.id),
            scope: Scope::of(event),
            effect: Effect::of(event),
            bytes: sse::event_frame(event),
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
    tx: broadcast::Sender<Arc<Frame>>,
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

    /// Send a frame to every subscribed stream. Changes are sent by the tailer, in id order.
    pub fn publish(&self, frame: Frame) {
        // An error only means nobody is listening right now, which is fine: the log has it.
        let _ = self.inner.tx.send(Arc::new(frame));
    }

    /// A receiver of every frame published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
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
            let bytes = tokio::select! {
                _ = &mut until => return,
                _ = beats.tick() => beat.clone(),
                _ = probe_tick => Bytes::from_static(sse::PROBE),
            };
            self.publish(Frame { id: None, scope: Scope::All, effect: None, bytes });
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
    fn scope_filters_by_list_move_and_user() {
        let moved = Scope::List { list: "b".into(), moved_from: Some("a".into()) };
        let a = ["a".to_owned()];
        let c = ["c".to_owned()];
        assert!(moved.reaches(Some(&a), None));
        assert!(moved.reaches(None, None));
        assert!(!moved.reaches(Some(&c), None));
        assert!(Scope::All.reaches(Some(&c), None));
        let alice = Scope::User("alice".into());
        assert!(alice.reaches(Some(&c), Some("alice")));
        assert!(!alice.reaches(None, Some("bob")));
        assert!(!alice.reaches(None, None));
    }

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
