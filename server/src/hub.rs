//! The fan-out hub: a `tokio::sync::broadcast` of already-framed events.
//!
//! Each change is serialized and framed once (`id:…\nevent:…\ndata:…\n\n` in one shared
//! [`Bytes`]) and every stream writes those same bytes: a delivery is a refcount increment and
//! one write, not a serialization per client.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_protocol::{Heartbeat, TodoEvent};
use tokio::sync::broadcast;

/// Which streams a frame goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every stream (heartbeats, `list_created`).
    All,
    /// Streams that follow `list`, or `moved_from` when a todo left that list.
    List {
        /// The list the change happened in.
        list: String,
        /// The list a moved todo left.
        moved_from: Option<String>,
    },
}

impl Scope {
    /// The scope of a change event.
    pub fn of(event: &TodoEvent) -> Self {
        if event.is_global() {
            Scope::All
        } else {
            Scope::List {
                list: event.list_id().to_owned(),
                moved_from: event.moved_from().map(str::to_owned),
            }
        }
    }

    /// Whether a stream following `lists` (`None`: every list) receives this frame.
    pub fn reaches(&self, lists: Option<&[String]>) -> bool {
        match (self, lists) {
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
    /// The complete wire bytes, ending in a blank line.
    pub bytes: Bytes,
}

/// Frame one SSE message. `data` must be a single line (compact JSON always is).
pub fn encode(id: Option<u64>, event: &str, data: &str, retry_ms: Option<u64>) -> Bytes {
    debug_assert!(!data.contains('\n') && !data.contains('\r'));
    let mut out = String::with_capacity(data.len() + event.len() + 48);
    if let Some(retry) = retry_ms {
        let _ = writeln!(out, "retry: {retry}");
    }
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "event: {event}\ndata: {data}\n\n");
    Bytes::from(out)
}

/// Frame a serializable control message under its `type` name.
pub fn encode_control<T: serde::Serialize>(
    id: Option<u64>,
    event: &str,
    body: &T,
    retry_ms: Option<u64>,
) -> Bytes {
    let data = serde_json::to_string(body).expect("control messages always serialize");
    encode(id, event, &data, retry_ms)
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
}

impl Hub {
    /// A hub whose broadcast buffer holds `capacity` frames and which admits at most
    /// `max_streams` streams.
    pub fn new(capacity: usize, max_streams: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Hub { inner: Arc::new(Inner { tx, open_streams: AtomicUsize::new(0), max_streams }) }
    }

    /// Send a committed frame to every subscribed stream. Callers send in commit order.
    pub fn publish(&self, frame: Frame) {
        // An error only means nobody is listening right now, which is fine: the log has it.
        let _ = self.inner.tx.send(Arc::new(frame));
    }

    /// A receiver of every frame published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.inner.tx.subscribe()
    }

    /// Take a stream slot, or `None` when `max_streams` are open. The slot is given back
    /// when the returned guard is dropped.
    pub fn try_open_stream(&self) -> Option<StreamSlot> {
        let admitted = self
            .inner
            .open_streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.max_streams).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| StreamSlot { inner: self.inner.clone() })
    }

    /// Streams open right now.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::Acquire)
    }

    /// Send a `heartbeat` frame to every stream every `period` until `until` resolves. One
    /// timer for the whole server rather than one per stream.
    pub async fn run_heartbeat(self, period: Duration, until: impl std::future::Future) {
        let frame = encode_control(None, Heartbeat::TYPE, &Heartbeat {}, None);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return,
                _ = ticker.tick() => self.publish(Frame {
                    id: None,
                    scope: Scope::All,
                    bytes: frame.clone(),
                }),
            }
        }
    }
}

/// A held stream slot; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    inner: Arc<Inner>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.inner.open_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_sse_message() {
        let bytes = encode(Some(7), "todo_created", r#"{"type":"todo_created"}"#, Some(2100));
        assert_eq!(
            &bytes[..],
            b"retry: 2100\nid: 7\nevent: todo_created\ndata: {\"type\":\"todo_created\"}\n\n"
        );
        let heartbeat = encode_control(None, Heartbeat::TYPE, &Heartbeat {}, None);
        assert_eq!(&heartbeat[..], b"event: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n");
    }

    #[test]
    fn scope_filters_by_list_and_move() {
        let moved = Scope::List { list: "b".into(), moved_from: Some("a".into()) };
        let a = ["a".to_owned()];
        let c = ["c".to_owned()];
        assert!(moved.reaches(Some(&a)));
        assert!(moved.reaches(None));
        assert!(!moved.reaches(Some(&c)));
        assert!(Scope::All.reaches(Some(&c)));
    }

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let hub = Hub::new(4, 2);
        let one = hub.try_open_stream().unwrap();
        let _two = hub.try_open_stream().unwrap();
        assert!(hub.try_open_stream().is_none());
        assert_eq!(hub.open_streams(), 2);
        drop(one);
        assert_eq!(hub.open_streams(), 1);
        assert!(hub.try_open_stream().is_some());
    }
}
