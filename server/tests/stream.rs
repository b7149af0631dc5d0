//! The event stream over real TCP, parsed by a real SSE parser.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Db, Sse, TestServer, PATIENCE};
use reqwest::StatusCode;
use serde_json::json;
use tidings_protocol::TodoEvent;
use tidings_server::Settings;

fn title_of(event: &TodoEvent) -> &str {
    match event {
        TodoEvent::TodoCreated { todo } | TodoEvent::TodoUpdated { todo, .. } => &todo.title,
        other => panic!("expected a todo event, got {other:?}"),
    }
}

on_every_backend! {
    async fn connected_comes_first_with_sse_headers_and_a_retry_hint(db) {
        let server = TestServer::on(&db).await;
        let mut sse = Sse::connect(&server.events_url(""), None).await;
        assert_eq!(sse.headers["content-type"], "text/event-stream");
        assert_eq!(sse.headers["cache-control"], "no-cache, no-transform");
        assert_eq!(sse.headers["x-accel-buffering"], "no");

        let first = sse.next().await.unwrap();
        assert_eq!(first.event, "connected");
        let retry = first.retry.expect("a retry hint").as_millis();
        assert!((2000..=3000).contains(&retry), "retry {retry} ms");
        let data: serde_json::Value = serde_json::from_str(&first.data).unwrap();
        assert_eq!(data["type"], "connected");
        assert_eq!(data["last_event_id"], server.api.head().await);
        assert_eq!(data["heartbeat_secs"], 15);
        assert_eq!(data["server_version"], env!("CARGO_PKG_VERSION"));
        server.stop().await;
    }
}

on_every_backend! {
    async fn two_clients_on_a_list_both_receive_and_another_list_receives_nothing(db) {
        let server = TestServer::on(&db).await;
        server.api.create_list("work").await;

        let mut a = Sse::connect(&server.events_url("?list=inbox"), None).await;
        let mut b = Sse::connect(&server.events_url("?list=inbox"), None).await;
        let mut other = Sse::connect(&server.events_url("?list=work"), None).await;
        for sse in [&mut a, &mut b, &mut other] {
            sse.connected().await;
        }

        let mut created = Vec::new();
        for title in ["one", "two", "three"] {
            created.push(server.api.create_todo("inbox", title).await);
        }
        for sse in [&mut a, &mut b] {
            for todo in &created {
                let (_, event) = sse.next_change().await;
                assert_eq!(event, TodoEvent::TodoCreated { todo: todo.clone() });
            }
        }
        // The first thing the `work` stream sees is the `work` change, not the inbox ones.
        let work = server.api.create_todo("work", "elsewhere").await;
        let (_, event) = other.next_change().await;
        assert_eq!(event, TodoEvent::TodoCreated { todo: work });
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_move_reaches_both_lists_and_new_lists_reach_every_stream(db) {
        let server = TestServer::on(&db).await;
        server.api.create_list("work").await;
        let mut inbox = Sse::connect(&server.events_url("?list=inbox"), None).await;
        let mut work = Sse::connect(&server.events_url("?list=work"), None).await;
        let mut both = Sse::connect(&server.events_url("?list=inbox&list=work"), None).await;
        for sse in [&mut inbox, &mut work, &mut both] {
            sse.connected().await;
        }

        let todo = server.api.create_todo("inbox", "move me").await;
        let moved = server.api.patch_todo(&todo.id, json!({"list_id": "work"})).await;
        assert_eq!(moved.list_id, "work");
        let expected = TodoEvent::TodoUpdated { todo: moved.clone(), moved_from: Some("inbox".into()) };

        assert!(matches!(inbox.next_change().await.1, TodoEvent::TodoCreated { .. }));
        assert_eq!(inbox.next_change().await.1, expected);
        assert_eq!(work.next_change().await.1, expected);
        assert!(matches!(both.next_change().await.1, TodoEvent::TodoCreated { .. }));
        assert_eq!(both.next_change().await.1, expected);

        server.api.create_list("home").await;
        for sse in [&mut inbox, &mut work, &mut both] {
            let (_, event) = sse.next_change().await;
            assert!(matches!(event, TodoEvent::ListCreated { ref list } if list.id == "home"));
        }
        server.stop().await;
    }
}

/// Create `n` todos in the inbox and return the id of the last event.
async fn create_many(server: &TestServer, n: usize, prefix: &str) -> u64 {
    for i in 0..n {
        server.api.create_todo("inbox", &format!("{prefix}{i}")).await;
    }
    server.api.head().await
}

on_every_backend! {
    async fn resume_by_header_and_by_query_replays_then_goes_live(db) {
        let server = TestServer::on(&db).await;
        let base = server.api.head().await;
        assert_eq!(create_many(&server, 5, "t").await, base + 5);

        let mut by_header = Sse::connect(&server.events_url("?list=inbox"), Some(base + 2)).await;
        let query = format!("?list=inbox&last_event_id={}", base + 2);
        let mut by_query = Sse::connect(&server.events_url(&query), None).await;
        // The header is newer (the browser's own reconnect) and wins over the query.
        let mut both = Sse::connect(&server.events_url("?last_event_id=1"), Some(base + 4)).await;

        for sse in [&mut by_header, &mut by_query] {
            let connected = sse.connected().await;
            assert_eq!(connected["resume_from"], base + 2);
            assert_eq!(connected["last_event_id"], base + 5);
            for want in 3..=5 {
                let (id, event) = sse.next_change().await;
                assert_eq!(id, base + want);
                assert_eq!(title_of(&event), format!("t{}", want - 1));
            }
        }
        assert_eq!(both.connected().await["resume_from"], base + 4);
        assert_eq!(both.next_change().await.0, base + 5);

        server.api.create_todo("inbox", "live").await;
        for sse in [&mut by_header, &mut by_query, &mut both] {
            let (id, event) = sse.next_change().await;
            assert_eq!((id, title_of(&event)), (base + 6, "live"));
        }
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_resume_point_no_longer_retained_gets_resync(db) {
        let server = TestServer::start(Settings { retain_events: 3, retain_secs: 0, ..db.settings() }).await;
        let base = server.api.head().await;
        // The log keeps at least the newest 3 (here 3 to 6: ids up to 2 are gone).
        assert_eq!(create_many(&server, 6, "t").await, base + 6);

        // Still complete: everything after 3 is retained.
        let mut kept = Sse::connect(&server.events_url(""), Some(base + 3)).await;
        kept.connected().await;
        assert_eq!(kept.next_change().await.0, base + 4);

        let epoch = server.api.get("/health").await["epoch"].as_str().unwrap().to_owned();
        for (requested, reason) in [(base + 1, "pruned"), (base + 99, "ahead"), (1, "pruned")] {
            let head = server.api.head().await;
            let mut sse = Sse::connect(&server.events_url(""), Some(requested)).await;
            let connected = sse.connected().await;
            assert_eq!(connected["resume_from"], head);
            let resync = sse.next().await.unwrap();
            assert_eq!(resync.event, "resync");
            assert_eq!(resync.id, head.to_string(), "a reconnect after resync resumes from the head");
            let data: serde_json::Value = serde_json::from_str(&resync.data).unwrap();
            assert_eq!(
                data,
                json!({"type": "resync", "last_event_id": head, "requested": requested,
                       "reason": reason, "epoch": epoch})
            );
            // …and the stream goes on live.
            server.api.create_todo("inbox", "after").await;
            let (_, event) = sse.next_change().await;
            assert_eq!(title_of(&event), "after");
        }
        server.stop().await;
    }
}

on_every_backend! {
    /// The log keeps the last `retain_secs` of events however many there are (issue 22, item
    /// 5): a burst far past `retain_events` does not cost a client that was away a moment its
    /// resume point.
    async fn a_burst_does_not_prune_the_last_seconds_of_events(db) {
        let server = TestServer::start(Settings { retain_events: 3, ..db.settings() }).await;
        let start = server.api.head().await;
        assert_eq!(create_many(&server, 40, "burst").await, start + 40);
        let mut sse = Sse::connect(&server.events_url(""), Some(start)).await;
        sse.connected().await;
        for expected in start + 1..=start + 40 {
            let (id, event) = sse.next_change().await;
            assert_eq!((id, event.name()), (expected, "todo_created"), "replayed, not resync");
        }
        server.stop().await;
    }
}

on_every_backend! {
    async fn bad_stream_requests_get_json_errors(db) {
        let server = TestServer::on(&db).await;
        for (query, header, status, code) in [
            ("?last_event_id=abc", None, 400, "invalid_last_event_id"),
            ("?list=Not%20A%20Slug", None, 400, "invalid_list_id"),
            ("?list=missing", None, 404, "list_not_found"),
            ("", Some("12x"), 400, "invalid_last_event_id"),
        ] {
            let mut req = reqwest::Client::new().get(server.events_url(query));
            if let Some(header) = header {
                req = req.header("Last-Event-ID", header);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status().as_u16(), status, "{query}");
            assert_eq!(res.headers()["content-type"], "application/json");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{query}");
        }
        assert_eq!(server.api.get("/health").await["open_streams"], 0);
        server.stop().await;
    }
}

/// Random interleavings of writers and resuming readers: every reader receives every id
/// after its resume point exactly once, in order, with the same data as everyone else.
async fn resume_under_concurrent_writes(db: Db, broadcast_capacity: usize, rounds: u64) {
    let server = TestServer::start(Settings { broadcast_capacity, ..db.settings() }).await;
    let base = server.api.head().await;
    let everything = Sse::connect(&server.events_url(""), None).await;
    let mut reference = BTreeMap::new();
    let mut everything = Some(everything);
    everything.as_mut().unwrap().connected().await;

    for round in 0..rounds {
        let mut rng = fastrand::Rng::with_seed(round);
        let start_head = server.api.head().await;
        let mut writers = Vec::new();
        for w in 0..3u64 {
            let api = server.api.clone();
            let mut rng = fastrand::Rng::with_seed(round * 31 + w);
            writers.push(tokio::spawn(async move {
                let mut mine: Vec<String> = Vec::new();
                for i in 0..12 {
                    match (rng.u8(0..10), mine.is_empty()) {
                        (0..=4, _) | (_, true) => {
                            mine.push(api.create_todo("inbox", &format!("w{w}-{i}")).await.id)
                        }
                        (5..=7, false) => {
                            let id = &mine[rng.usize(0..mine.len())];
                            api.patch_todo(
                                id,
                                json!({"done": rng.bool(), "title": format!("w{w}-{i}")}),
                            )
                            .await;
                        }
                        _ => {
                            let id = mine.swap_remove(rng.usize(0..mine.len()));
                            api.delete_todo(&id).await;
                        }
                    }
                    if rng.bool() {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        // Readers join at random moments, resuming from random earlier points.
        let mut readers = Vec::new();
        for r in 0..4 {
            for _ in 0..rng.u8(0..8) {
                tokio::task::yield_now().await;
            }
            let head = server.api.head().await;
            let resume = rng.u64(start_head.saturating_sub(5).max(base)..=head);
            let url = server.events_url(if r % 2 == 0 { "?list=inbox" } else { "" });
            let by_header = rng.bool();
            readers.push(tokio::spawn(async move {
                let mut sse = if by_header {
                    Sse::connect(&url, Some(resume)).await
                } else {
                    Sse::connect(&format!("{url}{}last_event_id={resume}", if url.contains('?') { "&" } else { "?" }), None).await
                };
                assert_eq!(sse.connected().await["resume_from"], resume);
                let mut got = Vec::new();
                loop {
                    let (id, event) = sse.next_change().await;
                    let done = matches!(&event, TodoEvent::TodoCreated { todo } if todo.title == format!("end-{round}"));
                    got.push((id, event));
                    if done {
                        return (resume, got);
                    }
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let end = server.api.create_todo("inbox", &format!("end-{round}")).await;
        // The all-lists stream is the reference: ids must be contiguous from the log's start.
        let sse = everything.as_mut().unwrap();
        loop {
            let (id, event) = sse.next_change().await;
            assert_eq!(id, base + reference.len() as u64 + 1, "reference stream is gap-free");
            let last = matches!(&event, TodoEvent::TodoCreated { todo } if todo.id == end.id);
            reference.insert(id, event);
            if last {
                break;
            }
        }
        let end_id = *reference.keys().last().unwrap();
        for reader in readers {
            let (resume, got) = reader.await.unwrap();
            let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
            let want: Vec<u64> = (resume + 1..=end_id).collect();
            assert_eq!(ids, want, "round {round}: resumed at {resume}");
            for (id, event) in got {
                assert_eq!(reference[&id], event, "round {round}: data of event {id}");
            }
        }
    }
    server.stop().await;
}

on_every_backend! {
    async fn resume_is_gap_free_under_concurrent_writes(db) {
        resume_under_concurrent_writes(db, 1024, 12).await;
    }
}

on_every_backend! {
    /// A broadcast buffer of 1 makes every receiver lag constantly: all catch-up is from the
    /// log.
    async fn lagging_receivers_are_caught_up_under_concurrent_writes(db) {
        resume_under_concurrent_writes(db, 1, 8).await;
    }
}

on_every_backend! {
    async fn the_heartbeat_is_a_named_event_without_an_id(db) {
        let server = TestServer::start(Settings { heartbeat_secs: 1, ..db.settings() }).await;
        let mut sse = Sse::connect(&server.events_url(""), None).await;
        assert_eq!(sse.connected().await["heartbeat_secs"], 1);
        let started = tokio::time::Instant::now();
        let beat = sse.next().await.unwrap();
        assert_eq!(beat.event, "heartbeat");
        assert_eq!(beat.data, r#"{"type":"heartbeat"}"#);
        // The parser keeps the last id it saw; a heartbeat does not change it.
        assert_eq!(beat.id, server.api.head().await.to_string());
        assert!(started.elapsed() < Duration::from_millis(2500));
        assert_eq!(sse.next().await.unwrap().event, "heartbeat");
        server.stop().await;
    }
}

on_every_backend! {
    async fn the_stream_limit_answers_503_and_disconnects_free_their_slots(db) {
        let server =
            TestServer::start(Settings { max_streams: 2, heartbeat_secs: 1, ..db.settings() }).await;
        let mut first = Sse::connect(&server.events_url(""), None).await;
        let mut second = Sse::connect(&server.events_url(""), None).await;
        first.connected().await;
        second.connected().await;

        let res = reqwest::get(server.events_url("")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry_after));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_streams");

        // Everything else keeps working.
        server.api.create_todo("inbox", "still fine").await;
        assert_eq!(server.api.get("/health").await["open_streams"], 2);

        // A client that goes away frees its slot (noticed at the next write to it at the latest).
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let open = server.api.get("/health").await["open_streams"].as_u64().unwrap();
            if open == 1 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "slot not freed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut third = Sse::connect(&server.events_url(""), None).await;
        third.connected().await;
        server.stop().await;
    }
}

on_every_backend! {
    async fn shutdown_ends_every_stream_within_a_second(db) {
        let server = TestServer::on(&db).await;
        let mut streams = Vec::new();
        for query in ["", "?list=inbox", "?last_event_id=0"] {
            let mut sse = Sse::connect(&server.events_url(query), None).await;
            sse.connected().await;
            streams.push(sse);
        }
        server.shutdown_handle().notify();
        for sse in &mut streams {
            assert!(sse.ends_within(Duration::from_secs(1)).await);
        }
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_restart_on_the_same_database_resumes_clients_with_nothing_lost(db) {
        let first = TestServer::on(&db).await;
        let mut sse = Sse::connect(&first.events_url("?list=inbox"), None).await;
        sse.connected().await;
        let kept = first.api.create_todo("inbox", "kept").await;
        let doomed = first.api.create_todo("inbox", "doomed").await;
        let mut last_seen = 0;
        for _ in 0..2 {
            last_seen = sse.next_change().await.0;
        }
        first.stop().await;
        assert!(sse.ends_within(Duration::from_secs(1)).await);

        // Changes made while the client is away, by the next server process on the same file.
        let second = TestServer::on(&db).await;
        let added = second.api.create_todo("inbox", "while away").await;
        let renamed =
            second.api.patch_todo(&kept.id, json!({"title": "kept, renamed", "done": true})).await;
        second.api.delete_todo(&doomed.id).await;

        let mut sse = Sse::connect(&second.events_url("?list=inbox"), Some(last_seen)).await;
        assert_eq!(sse.connected().await["resume_from"], last_seen);
        let expected = [
            TodoEvent::TodoCreated { todo: added.clone() },
            TodoEvent::TodoUpdated { todo: renamed.clone(), moved_from: None },
            TodoEvent::TodoDeleted { id: doomed.id.clone(), list_id: "inbox".into() },
        ];
        for (i, want) in expected.iter().enumerate() {
            let (id, event) = sse.next_change().await;
            assert_eq!(id, last_seen + 1 + i as u64);
            assert_eq!(&event, want);
        }
        let snapshot = second.api.get("/api/lists/inbox/todos").await;
        assert_eq!(snapshot["last_event_id"], last_seen + 3);
        let titles: Vec<&str> = snapshot["todos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["kept, renamed", "while away"]);
        second.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_on_the_stream_and_preflight() {
    let db = Db::new();
    let server = TestServer::start(Settings {
        cors_origins: vec!["https://app.example".into(), "http://localhost:*".into()],
        ..db.settings()
    })
    .await;
    let http = reqwest::Client::new();
    let res = http
        .get(server.events_url(""))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    drop(res);

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/api/lists/inbox/todos", server.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    let methods = ok.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("PATCH") && methods.contains("PUT"), "{methods}");
    assert_eq!(ok.headers()["access-control-allow-headers"], "content-type");

    let denied = preflight("https://evil.example").await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(denied.headers().get("access-control-allow-origin").is_none());
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");

    let res = http
        .get(format!("{}/api/lists", server.base))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let _ = tokio::time::timeout(PATIENCE, server.stop()).await;
}
