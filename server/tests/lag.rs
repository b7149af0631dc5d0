//! A stream whose broadcast receiver falls behind is caught up from the event log: it never
//! silently skips an event. Driven in-process so the lag is certain, not a matter of timing.

mod common;

use std::pin::Pin;

use bytes::Bytes;
use common::Db;
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;

use tidings_server::hub::Client;
use tidings_server::presence::Presence;
use tidings_server::store::StoreConfig;
use tidings_server::stream::{
    self, StreamOptions, StreamRequest, MAX_BATCH_BYTES, REPLAY_CHUNK_BYTES, REPLAY_PAGE,
};
use tidings_server::tailer::{self, TailerOptions};
use tidings_server::{Hub, Store, TailerStatus};

/// The event ids in a chunk of SSE frames.
fn ids(chunk: &Bytes) -> Vec<u64> {
    std::str::from_utf8(chunk)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

type Events = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// A store, its hub with a broadcast buffer of `capacity` frames, and one open stream that
/// has delivered its `connected` message.
async fn setup(db: &Db, capacity: usize) -> (Store, Hub, Events) {
    let hub = Hub::new(capacity, 10, 10);
    let store = Store::open(&db.url(), StoreConfig::default()).await.unwrap();
    let options = TailerOptions { check_every: Duration::from_secs(2) };
    let status = Arc::new(TailerStatus::default());
    let start = store.head().await.unwrap().last_event_id;
    let until = std::future::pending();
    tailer::spawn(store.clone(), hub.clone(), status, options, start, until).unwrap();
    let slot = hub.try_open_stream(Client::Unknown).unwrap();
    let options = StreamOptions { heartbeat_secs: 15, retry_ms: 1000 };
    let request = StreamRequest::default();
    let until = std::future::pending();
    let presence = Presence::new();
    let mut events: Events = Box::pin(
        stream::open(store.clone(), &hub, &presence, request, options, slot, until).await.unwrap(),
    );
    let hello = events.next().await.unwrap();
    assert!(std::str::from_utf8(&hello).unwrap().contains("event: connected"));
    (store, hub, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_receiver_is_caught_up_from_the_log() {
    let db = Db::new();
    // A broadcast buffer of one frame: any burst makes an unread receiver lag.
    let (store, hub, mut events) = setup(&db, 1).await;
    // A new log's ids start at a random origin.
    let base = store.head().await.unwrap().last_event_id;

    // Live: one write, one frame.
    store.create_todo("inbox", None, "first".into(), None, None).await.unwrap();
    assert_eq!(ids(&events.next().await.unwrap()), [base + 1]);

    // A burst of 300 writes while nobody reads: the receiver keeps 1 of them.
    for i in 0..300 {
        store.create_todo("inbox", None, format!("burst {i}"), None, None).await.unwrap();
    }
    // What arrives is every id once, in order, in pages read from the log and handed on in
    // slices of at most REPLAY_CHUNK_BYTES (which may end inside a frame).
    let mut got = Vec::new();
    let (mut chunks, mut bytes) = (0, 0);
    let mut frames = common::Frames::default();
    while got.last() != Some(&(base + 301)) {
        let chunk = events.next().await.unwrap();
        assert!(chunk.len() <= REPLAY_CHUNK_BYTES, "{} bytes in one slice", chunk.len());
        (chunks, bytes) = (chunks + 1, bytes + chunk.len());
        got.extend(ids(&Bytes::from(frames.push(&chunk))));
    }
    assert_eq!(got, (base + 2..=base + 301).collect::<Vec<_>>());
    // Full slices but for the last of each page (about 8 KiB each): not frame by frame.
    let pages = bytes.div_ceil(REPLAY_PAGE.bytes as usize) + 1;
    assert!(
        chunks <= bytes.div_ceil(REPLAY_CHUNK_BYTES) + pages,
        "{chunks} slices for {bytes} bytes"
    );

    // Back to live delivery afterwards.
    store.create_todo("inbox", None, "after".into(), None, None).await.unwrap();
    assert_eq!(ids(&events.next().await.unwrap()), [base + 302]);
    drop(events);
    assert_eq!(hub.open_streams(), 0, "the slot is freed with the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_is_behind_gets_waiting_events_in_one_write() {
    let db = Db::new();
    let (store, hub, mut events) = setup(&db, 1024).await;
    let base = store.head().await.unwrap().last_event_id;
    store.create_todo("inbox", None, "first".into(), None, None).await.unwrap();
    assert_eq!(ids(&events.next().await.unwrap()), [base + 1]);

    // Fifty events wait in the broadcast buffer (no lag): they leave in as few writes as the
    // batch bound allows, not one write each. A receiver of our own tells when the tailer has
    // broadcast the last of them, and how many bytes they are.
    let mut witness = hub.subscribe();
    for i in 0..50 {
        store.create_todo("inbox", None, format!("queued {i}"), None, None).await.unwrap();
    }
    let (mut bytes, mut largest) = (0, 0);
    loop {
        let envelope = witness.recv().await.unwrap();
        bytes += envelope.frame.len();
        largest = largest.max(envelope.frame.len());
        if envelope.id == Some(base + 51) {
            break;
        }
    }
    let mut received = Vec::new();
    let mut writes = 0;
    while received.last() != Some(&(base + 51)) {
        let chunk = events.next().await.unwrap();
        assert!(chunk.len() < MAX_BATCH_BYTES + largest, "{} bytes in one write", chunk.len());
        received.extend(ids(&chunk));
        writes += 1;
    }
    assert_eq!(received, (base + 2..=base + 51).collect::<Vec<_>>());
    // Every write but the last is full to the bound.
    assert!(writes <= bytes.div_ceil(MAX_BATCH_BYTES), "{writes} writes for {bytes} bytes");
    assert!(writes < 50 / 4, "{writes} writes for 50 events");
}
