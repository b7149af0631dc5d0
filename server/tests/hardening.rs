//! What one client, a careless operator or bad luck must not be able to do: take every stream
//! slot, hold unbounded memory, starve the health check, resume into another database's ids,
//! resurrect a deleted todo, read files outside the app, reach the server under a foreign
//! `Host`.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Api, Db, Sse, TestServer};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings_server::hub::Client;
use tidings_server::presence::Presence;
use tidings_server::stream::{self, StreamOptions, StreamRequest, REPLAY_CHUNK_BYTES};
use tidings_server::tailer::{self, TailerOptions};
use tidings_server::{Hub, Settings, Store, TailerStatus};

/// A client whose connections come from `ip` (any 127.0.0.0/8 address works on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().unwrap();
    reqwest::Client::builder().local_address(ip).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_stream_slot() {
    let db = Db::new();
    let settings = Settings { max_streams: 10, max_streams_per_client: 3, ..db.settings() };
    let server = TestServer::start(settings).await;
    let url = server.events_url("");
    let greedy = client_from("127.0.0.1");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut sse = Sse::try_connect_with(&greedy, &url, None).await;
        assert_eq!(sse.status, StatusCode::OK);
        sse.connected().await;
        held.push(sse);
    }
    let refused = greedy.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_client_streams");

    // Everyone else still gets in.
    let polite = client_from("127.0.0.2");
    let mut other = Sse::try_connect_with(&polite, &url, None).await;
    assert_eq!(other.status, StatusCode::OK);
    other.connected().await;
    assert_eq!(server.api.get("/health").await["open_streams"], 4);
    server.stop().await;
}

/// Wait until `/health` reports `want` open streams; how long it took.
async fn open_streams_reach(api: &Api, want: u64, within: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    // The slot is freed by the server on its own schedule (the next probe); nothing to await
    // but its report, so ask until it says so or the bound passes.
    loop {
        if api.get("/health").await["open_streams"] == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "still not {want} open streams after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_went_away_frees_its_slot_within_two_probe_periods() {
    let db = Db::new();
    // A heartbeat far away: only probes can notice the client left.
    let settings =
        Settings { heartbeat_secs: 600, probe_secs: 1, max_streams_per_client: 1, ..db.settings() };
    let server = TestServer::start(settings).await;
    let mut sse = Sse::connect(&server.events_url(""), None).await;
    sse.connected().await;
    drop(sse);
    let took = open_streams_reach(&server.api, 0, Duration::from_secs(5)).await;
    assert!(took <= Duration::from_secs(3), "freed after {took:?}");
    // …and the client may connect again.
    Sse::connect(&server.events_url(""), None).await.connected().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resuming_stream_that_does_not_read_holds_at_most_one_page_whatever_the_titles() {
    let db = Db::new();
    let store = Store::open(&db.url(), Default::default()).await.unwrap();
    let base = store.head().await.unwrap().last_event_id;
    // Long titles of three-byte characters: 1 500 bytes of data each.
    for i in 0..300 {
        store
            .create_todo("inbox", None, format!("{i} {}", "語".repeat(496)), None, None)
            .await
            .unwrap();
    }
    let hub = Hub::new(1024, 10, 10);
    let status = Arc::new(TailerStatus::default());
    let options = TailerOptions { check_every: Duration::from_secs(2) };
    tailer::spawn(store.clone(), hub.clone(), status, options, base + 300, std::future::pending())
        .unwrap();
    let slot = hub.try_open_stream(Client::Unknown).unwrap();
    let request = StreamRequest { resume_from: Some(0), ..StreamRequest::default() };
    let options = StreamOptions { heartbeat_secs: 15, retry_ms: 1000 };
    let presence = Presence::new();
    let events =
        stream::open(store, &hub, &presence, request, options, slot, std::future::pending());
    let mut events = Box::pin(events.await.unwrap());
    let hello = events.next().await.unwrap();
    assert!(std::str::from_utf8(&hello).unwrap().contains("event: connected"));
    // What a stream hands on at once is what hyper queues (16 of them at most) while its
    // client does not read: slices of a page, however long the titles. (Resuming from 0 is
    // from the log's start, wherever its ids begin.)
    let mut ids = Vec::new();
    let mut frames = common::Frames::default();
    while ids.len() < 300 {
        let chunk: Bytes = events.next().await.unwrap();
        assert!(chunk.len() <= REPLAY_CHUNK_BYTES, "{} bytes at once", chunk.len());
        ids.extend(
            frames
                .push(&chunk)
                .lines()
                .filter_map(|l| l.strip_prefix("id: "))
                .map(|id| id.parse::<u64>().unwrap()),
        );
    }
    assert_eq!(ids, (base + 1..=base + 300).collect::<Vec<_>>());
}

on_every_backend! {
    async fn limits_on_lists_todos_and_snapshots_are_clear_4xx_that_change_nothing(db) {
        let settings = Settings {
            max_lists: 3,
            max_todos_per_list: 5,
            max_snapshot_todos: 7,
            ..db.settings()
        };
        let server = TestServer::start(settings).await;
        let api = &server.api;
        api.create_list("work").await;
        api.create_list("home").await;
        let (status, body) =
            api.send(Method::POST, "/api/lists", Some(json!({"title": "One too many"}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("too_many_lists")));
        let mut work = Vec::new();
        for i in 0..5 {
            work.push(api.create_todo("work", &format!("w{i}")).await);
        }
        let (status, body) = api
            .send(Method::POST, "/api/lists/work/todos", Some(json!({"title": "sixth"})))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("too_many_todos")));
        let home = api.create_todo("home", "h0").await;
        let (status, body) = api
            .send(Method::PATCH, &format!("/api/todos/{}", home.id), Some(json!({"list_id": "work"})))
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("too_many_todos")));
        let head = api.head().await;
        // 6 todos over both lists is within 7; a third list's worth is not.
        api.create_todo("home", "h1").await;
        api.create_todo("home", "h2").await;
        let (status, body) = api.send(Method::GET, "/api/todos", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("snapshot_too_large"))
        );
        assert_eq!(api.get("/api/lists/work/todos").await["todos"].as_array().unwrap().len(), 5);
        assert_eq!(api.head().await, head + 2, "only the two accepted creates were logged");
        server.stop().await;
    }
}

on_every_backend! {
    async fn health_stays_truthful_while_snapshot_reads_hold_every_reader(db) {
        let settings = Settings { database_connections: 1, ..db.settings() };
        let server = TestServer::start(settings).await;
        for i in 0..400 {
            server.api.create_todo("inbox", &format!("todo {i} {}", "x".repeat(200))).await;
        }
        let head = server.api.head().await;
        let mut readers = Vec::new();
        for _ in 0..16 {
            let api = server.api.clone();
            readers.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let (status, _) = api.send(Method::GET, "/api/todos", None).await;
                    assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
                }
            }));
        }
        let mut checks = 0;
        while readers.iter().any(|r| !r.is_finished()) {
            let (status, health) = server.api.send(Method::GET, "/health", None).await;
            assert_eq!(status, StatusCode::OK, "{health}");
            assert_eq!(health["last_event_id"], head, "truthful under load");
            checks += 1;
        }
        for reader in readers {
            reader.await.unwrap();
        }
        assert!(checks > 0);
        server.stop().await;
    }
}

on_every_backend! {
    /// A database replaced by a new one (issue 22, item 10): the old log's ids get `resync`,
    /// with the epoch (reason `epoch`) and without it (npm `eventsource`, curl: a new log's
    /// ids start at a random origin far from 0, so an old id is pruned or ahead), while the
    /// new log's own ids resume.
    async fn a_resume_point_from_another_database_gets_resync(db) {
        // The client's view of a first database: five events, epoch A.
        let first = TestServer::on(&db).await;
        for i in 0..5 {
            first.api.create_todo("inbox", &format!("old {i}")).await;
        }
        let old_epoch = first.api.get("/health").await["epoch"].as_str().unwrap().to_owned();
        let old_id = first.api.head().await - 1;
        first.stop().await;

        // The database is replaced by a new one with five events of its own.
        let fresh = if db.is_postgres() { Db::postgres().await } else { Db::sqlite() };
        let server = TestServer::on(&fresh).await;
        for i in 0..5 {
            server.api.create_todo("inbox", &format!("new {i}")).await;
        }
        let head = server.api.head().await;
        let url = server.events_url(&format!("?epoch={old_epoch}"));
        let mut sse = Sse::connect(&url, Some(old_id)).await;
        let connected = sse.connected().await;
        assert_ne!(connected["epoch"], old_epoch);
        let resync = sse.next().await.unwrap();
        assert_eq!(resync.event, "resync", "ids of another epoch are not resumed");
        let data: Value = serde_json::from_str(&resync.data).unwrap();
        assert_eq!((data["reason"].as_str(), data["last_event_id"].as_u64()), (Some("epoch"), Some(head)));
        // Only the id, as a plain client resends it: still resync, never another log's events.
        let mut plain = Sse::connect(&server.events_url(""), Some(old_id)).await;
        plain.connected().await;
        let resync = plain.next().await.unwrap();
        assert_eq!(resync.event, "resync", "an old id without its epoch is not resumed either");
        let data: Value = serde_json::from_str(&resync.data).unwrap();
        assert!(matches!(data["reason"].as_str(), Some("pruned" | "ahead")), "{data}");
        // With this database's epoch, its own ids resume.
        let epoch = connected["epoch"].as_str().unwrap();
        let mut sse = Sse::connect(&server.events_url(&format!("?epoch={epoch}")), Some(head - 1)).await;
        sse.connected().await;
        assert_eq!(sse.next_change().await.0, head);
        server.stop().await;
    }
}

on_every_backend! {
    async fn list_ids_from_titles_keep_every_script_and_stay_unique(db) {
        let server = TestServer::on(&db).await;
        let mut ids = std::collections::BTreeSet::new();
        // More than the 1 000 tries the old derivation gave up after.
        for _ in 0..1_050 {
            let (status, body) =
                server.api.send(Method::POST, "/api/lists", Some(json!({"title": "日本語"}))).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.insert(body["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1_050);
        assert!(ids.contains("日本語") && ids.contains("日本語-2") && ids.contains("日本語-1050"));
        // Percent-encoded in a URL, as a browser sends it.
        let encoded = "%E6%97%A5%E6%9C%AC%E8%AA%9E-2";
        let todo = server.api.create_todo(encoded, "in a Japanese list").await;
        assert_eq!(todo.list_id, "日本語-2");
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_retried_create_of_a_deleted_todo_does_not_bring_it_back(db) {
        let server = TestServer::on(&db).await;
        let id = "0b7e4f6e-8c4f-4d0e-9a53-6f2f0e6b9a10";
        let body = json!({"id": id, "title": "once"});
        let (status, _) = server.api.send(Method::POST, "/api/lists/inbox/todos", Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        server.api.delete_todo(id).await;
        let head = server.api.head().await;
        let (status, err) = server.api.send(Method::POST, "/api/lists/inbox/todos", Some(body)).await;
        assert_eq!((status, err["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("todo_deleted")));
        assert_eq!(server.api.head().await, head, "no event");
        assert!(server.api.get("/api/lists/inbox/todos").await["todos"].as_array().unwrap().is_empty());
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_out_of_the_static_dir_are_not_followed() {
    let db = Db::new();
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("index.html"), "<title>app</title>").unwrap();
    std::fs::write(app.path().join("app.js"), "export {}").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", app.path().join("passwd")).unwrap();
    std::os::unix::fs::symlink("/etc", app.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(app.path().join("app.js"), app.path().join("alias.js")).unwrap();
    let settings = Settings { static_dir: Some(app.path().to_owned()), ..db.settings() };
    let server = TestServer::start(settings).await;
    let http = reqwest::Client::new();
    for (path, want) in
        [("/passwd", 404), ("/etc/passwd", 404), ("/alias.js", 200), ("/lists/x", 200)]
    {
        let res = http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("root:"), "{path} leaked /etc/passwd");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_oversized_uris_get_json_errors_and_change_nothing() {
    let db = Db::new();
    let settings = Settings {
        allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "*.example.com".into()],
        ..db.settings()
    };
    let server = TestServer::start(settings).await;
    let base = server.api.head().await;
    let http = reqwest::Client::new();
    let post = |host: &str| {
        http.post(format!("{}/api/lists/inbox/todos", server.base))
            .header("Host", host)
            .json(&json!({"title": "via some host"}))
            .send()
    };
    let res = post("evil.example:8000").await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "host_not_allowed");
    assert_eq!(server.api.head().await, base, "a refused host changes nothing");
    for host in ["localhost:1234", "app.example.com"] {
        assert_eq!(post(host).await.unwrap().status(), StatusCode::CREATED, "{host}");
    }

    let long = format!("{}/api/todos?list={}", server.base, "a".repeat(9_000));
    let res = http.get(long).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::URI_TOO_LONG);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long");

    // An id far too long in a body is not echoed back whole.
    let (status, body) = server
        .api
        .send(
            Method::POST,
            "/api/lists/inbox/todos",
            Some(json!({"title": "x", "id": "z".repeat(12_000)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 200, "{} bytes of message", message.len());
    server.stop().await;
}

/// The API, called from `ip` (another loopback address is another client).
fn api_from(base: &str, ip: &str) -> Api {
    Api { http: client_from(ip), ..Api::new(base) }
}

/// The write budget (issue 22, item 5): past its burst a client's writes get `429
/// write_rate_limited` with `Retry-After` and change nothing, while another client (another
/// address; with access control, another user) writes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_write_budget_waits_and_others_write_on() {
    let db = Db::new();
    let server =
        TestServer::start(Settings { write_rate: 1, write_burst: 5, ..db.settings() }).await;
    let (greedy, other) =
        (api_from(&server.base, "127.0.0.1"), api_from(&server.base, "127.0.0.2"));
    for i in 0..5 {
        greedy.create_todo("inbox", &format!("within the burst {i}")).await;
    }
    let head = greedy.head().await;
    let mut req = greedy.http.post(format!("{}/api/lists/inbox/todos", server.base));
    req = req.json(&json!({"title": "one too many"}));
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "write_rate_limited");
    // Reads are not writes; other writers are not this one.
    greedy.get("/api/lists/inbox/todos").await;
    assert_eq!(greedy.head().await, head, "the refused write changed nothing");
    other.create_todo("inbox", "another client").await;
    assert_eq!(other.head().await, head + 1);
    server.stop().await;
}
