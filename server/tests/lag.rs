//! A stream whose broadcast receiver falls behind is caught up from the event log: it never
//! silently skips an event. Driven in-process so the lag is certain, not a matter of timing.

mod common;

use bytes::Bytes;
use common::Db;
use futures_util::StreamExt;
use tidings_server::stream::{self, StreamOptions, StreamRequest};
use tidings_server::{Hub, Store};

/// The event ids in a chunk of SSE frames.
fn ids(chunk: &Bytes) -> Vec<u64> {
    std::str::from_utf8(chunk)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_receiver_is_caught_up_from_the_log() {
    let db = Db::new();
    // A broadcast buffer of one frame: any burst makes an unread receiver lag.
    let hub = Hub::new(1, 10);
    let store = Store::open(&db.url(), 100_000, hub.clone()).await.unwrap();
    let slot = hub.try_open_stream().unwrap();
    let options = StreamOptions { heartbeat_secs: 15, retry_ms: 1000 };
    let mut events = Box::pin(
        stream::open(
            store.clone(),
            &hub,
            StreamRequest::default(),
            options,
            slot,
            std::future::pending(),
        )
        .await
        .unwrap(),
    );
    let hello = events.next().await.unwrap();
    assert!(std::str::from_utf8(&hello).unwrap().contains("event: connected"));

    // Live: one write, one frame.
    store.create_todo("inbox", None, "first".into()).await.unwrap();
    assert_eq!(ids(&events.next().await.unwrap()), [1]);

    // A burst of 300 writes while nobody reads: the receiver keeps 1 of them.
    for i in 0..300 {
        store.create_todo("inbox", None, format!("burst {i}")).await.unwrap();
    }
    // What arrives is every id once, in order, in pages read from the log.
    let mut got = Vec::new();
    let mut chunks = 0;
    while got.last() != Some(&301) {
        let chunk = events.next().await.unwrap();
        got.extend(ids(&chunk));
        chunks += 1;
    }
    assert_eq!(got, (2..=301).collect::<Vec<_>>());
    assert!(chunks < 10, "caught up in log pages, not frame by frame ({chunks} chunks)");

    // Back to live delivery afterwards.
    store.create_todo("inbox", None, "after".into()).await.unwrap();
    assert_eq!(ids(&events.next().await.unwrap()), [302]);
    drop(events);
    assert_eq!(hub.open_streams(), 0, "the slot is freed with the stream");
}
