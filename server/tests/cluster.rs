//! Several server processes on one PostgreSQL database: every process's streams carry every
//! change of every process, each id once, in one order; a reader survives the death of its
//! process, the loss of a `LISTEN` connection and a restart of PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Api, Db, PgCluster, Process, Sse, PATIENCE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

/// A stream reader that records `(id, data)` of every change, follows the stream across
/// reconnections (with `Last-Event-ID`, to whichever process answers), and stops once it has
/// seen the id in `until`.
struct Reader {
    task: tokio::task::JoinHandle<Vec<(u64, String)>>,
}

impl Reader {
    /// Read from `bases[0]` first, from `resume` (`None`: from now), reconnecting to the next
    /// base that answers when a stream ends.
    async fn start(bases: Vec<String>, resume: Option<u64>, until: watch::Receiver<u64>) -> Self {
        let url = |base: &str| format!("{base}/api/events");
        let mut sse = Sse::connect(&url(&bases[0]), resume).await;
        let connected = sse.connected().await;
        let mut cursor = connected["resume_from"].as_u64().unwrap();
        let task = tokio::spawn(async move {
            let mut until = until;
            let mut seen = Vec::new();
            let mut next_base = 1;
            loop {
                if cursor >= *until.borrow() {
                    return seen;
                }
                let event = tokio::select! {
                    event = sse.next_or_end() => event,
                    _ = until.changed() => continue,
                };
                match event {
                    Some(event) if event.event == "heartbeat" || event.event == "connected" => {}
                    Some(event) => {
                        assert_ne!(event.event, "resync", "a resume point was lost");
                        let id: u64 = event.id.parse().unwrap();
                        seen.push((id, event.data));
                        cursor = id;
                    }
                    None => {
                        // The process went away: resume on another, as a browser would.
                        sse = reconnect(&bases, &mut next_base, cursor).await;
                    }
                }
            }
        });
        Reader { task }
    }

    async fn finish(self) -> Vec<(u64, String)> {
        tokio::time::timeout(PATIENCE * 6, self.task).await.expect("reader finished").unwrap()
    }
}

/// Connect to the next base that answers 200, resuming after `cursor`; a `503` (the database
/// is restarting) is retried after its `Retry-After`.
async fn reconnect(bases: &[String], next: &mut usize, cursor: u64) -> Sse {
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no process took the stream back");
        let base = &bases[*next % bases.len()];
        *next += 1;
        let attempt = tokio::time::timeout(
            PATIENCE,
            reqwest::Client::new()
                .get(format!("{base}/api/events"))
                .header("Last-Event-ID", cursor.to_string())
                .send(),
        )
        .await;
        let Ok(Ok(res)) = attempt else { continue }; // refused: that process is gone
        if res.status() == StatusCode::OK {
            drop(res);
            let mut sse = Sse::connect(&format!("{base}/api/events"), Some(cursor)).await;
            let connected = sse.connected().await;
            assert_eq!(connected["resume_from"], cursor);
            return sse;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "only 503 while down");
        let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        // The protocol's own back-off (capped to keep the test short), not a synchronisation.
        tokio::time::sleep(Duration::from_millis(wait.min(1) * 500)).await;
    }
}

/// Every id from `from + 1` to `head` exactly once, in order, with the data everyone saw.
fn assert_complete(
    seen: &[(u64, String)],
    from: u64,
    head: u64,
    reference: &BTreeMap<u64, String>,
) {
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (from + 1..=head).collect::<Vec<_>>(), "every id once, in order");
    for (id, data) in seen {
        assert_eq!(Some(data), reference.get(id), "id {id} carries the same change everywhere");
    }
}

async fn create(api: &Api, title: &str) -> Value {
    let (status, body) =
        api.send(Method::POST, "/api/lists/inbox/todos", Some(json!({ "title": title }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_carries_every_change_once_in_one_order() {
    let db = Db::postgres().await;
    let mut procs = Vec::new();
    for _ in 0..3 {
        procs.push(Process::spawn(&db.url()).await);
    }
    let bases: Vec<String> = procs.iter().map(|p| p.base.clone()).collect();
    // Where this log's ids begin.
    let origin = procs[0].api.head().await;
    for round in 0..6u64 {
        let mut rng = fastrand::Rng::with_seed(round);
        let start = procs[0].api.head().await;
        let (target, until) = watch::channel(u64::MAX);
        // Two readers per process, resuming from random points of what exists.
        let mut readers = Vec::new();
        for (i, _) in procs.iter().enumerate() {
            for _ in 0..2 {
                let resume = rng.u64(origin..=start);
                let mut order = bases.clone();
                order.rotate_left(i);
                readers.push((resume, Reader::start(order, Some(resume), until.clone()).await));
            }
        }
        // Three writers, each through a random process for every change.
        let mut writers = Vec::new();
        for w in 0..3 {
            let apis: Vec<Api> = procs.iter().map(|p| p.api.clone()).collect();
            let seed = rng.u64(..);
            writers.push(tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut mine: Vec<String> = Vec::new();
                for i in 0..25 {
                    let api = &apis[rng.usize(..apis.len())];
                    if !mine.is_empty() && rng.u8(..10) < 3 {
                        let id = &mine[rng.usize(..mine.len())];
                        api.patch_todo(id, json!({ "done": rng.bool() })).await;
                    } else {
                        let todo = create(api, &format!("r{round} w{w} {i}")).await;
                        mine.push(todo["id"].as_str().unwrap().to_owned());
                    }
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let head = procs[0].api.head().await;
        target.send_replace(head);
        let mut reference = BTreeMap::new();
        let mut results = Vec::new();
        for (resume, reader) in readers {
            let seen = reader.finish().await;
            for (id, data) in &seen {
                reference.entry(*id).or_insert_with(|| data.clone());
            }
            results.push((resume, seen));
        }
        for (resume, seen) in &results {
            assert_complete(seen, *resume, head, &reference);
        }
        // Every process serves the same snapshot.
        let snapshot = procs[0].api.get("/api/todos").await;
        assert_eq!(snapshot["last_event_id"], head);
        for p in &procs[1..] {
            assert_eq!(p.api.get("/api/todos").await, snapshot);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_whose_process_is_killed_resumes_on_another_with_no_gap() {
    let db = Db::postgres().await;
    let victim = Process::spawn(&db.url()).await;
    let writer = Process::spawn(&db.url()).await;
    let rescuer = Process::spawn(&db.url()).await;
    let base = writer.api.head().await;
    let (target, until) = watch::channel(u64::MAX);
    let reader = Reader::start(vec![victim.base.clone(), rescuer.base.clone()], None, until).await;
    let api = writer.api.clone();
    let writes = tokio::spawn(async move {
        for i in 0..60 {
            create(&api, &format!("write {i}")).await;
        }
    });
    // Mid-stream: wait until the victim has carried some changes, then kill it.
    let mut probe = Sse::connect(&victim.events_url(""), None).await;
    probe.connected().await;
    for _ in 0..10 {
        probe.next_change().await;
    }
    victim.signal("KILL");
    writes.await.unwrap();
    let head = writer.api.head().await;
    target.send_replace(head);
    let seen = reader.finish().await;
    let reference: BTreeMap<u64, String> = seen.iter().cloned().collect();
    assert_complete(&seen, base, head, &reference);
    assert_eq!(head, base + 60);
}

/// Terminate `process`'s `LISTEN` connection from the database side.
async fn terminate_listener(db: &Db, process: &Process) -> u64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let name = format!("tidings-listener-{}", process.pid());
    let terminated: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    terminated as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fan_out_recovers_when_the_listen_connection_is_terminated() {
    let db = Db::postgres().await;
    // No timer: only the LISTEN connection can wake this process's tailer.
    let listener =
        Process::spawn_with(&db.url(), &[("TIDINGS_HEAD_CHECK_SECS", "3600")], ":").await;
    let writer = Process::spawn(&db.url()).await;
    let base = writer.api.head().await;
    let mut sse = Sse::connect(&listener.events_url(""), None).await;
    sse.connected().await;
    let first = create(&writer.api, "before").await;
    assert_eq!(sse.next_change().await.0, base + 1, "{first}");

    assert_eq!(terminate_listener(&db, &listener).await, 1);
    // Written right after the termination: the notification may go to no one, but the
    // reconnection re-reads the log.
    create(&writer.api, "while reconnecting").await;
    assert_eq!(sse.next_change().await.0, base + 2);
    create(&writer.api, "after").await;
    assert_eq!(sse.next_change().await.0, base + 3);
    let health = listener.api.get("/health").await;
    assert_eq!((health["database"].as_str(), health["tailer_lag"].as_u64()), (Some("ok"), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_loses_no_acknowledged_write_and_streams_resume() {
    // A cluster of its own: the restart cuts every connection to it.
    let cluster = PgCluster::start_private();
    let db = Db::postgres_in(&cluster).await;
    let a = Process::spawn(&db.url()).await;
    let b = Process::spawn(&db.url()).await;
    let bases = vec![a.base.clone(), b.base.clone()];
    let base = a.api.head().await;
    let (target, until) = watch::channel(u64::MAX);
    let mut readers = Vec::new();
    for i in 0..4 {
        let mut order = bases.clone();
        order.rotate_left(i % 2);
        readers.push(Reader::start(order, Some(0), until.clone()).await);
    }
    // Two writers with client-chosen ids: a write refused while the database restarts is
    // retried with the same id, so it lands once. They write until ten of their writes have
    // landed after the restart.
    let (restarted, restart_done) = watch::channel(false);
    let mut writers = Vec::new();
    for (w, api) in [a.api.clone(), b.api.clone()].into_iter().enumerate() {
        let restart_done = restart_done.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            let mut after_restart = 0;
            for i in 0.. {
                if *restart_done.borrow() {
                    after_restart += 1;
                    if after_restart > 10 {
                        break;
                    }
                }
                let id = uuid::Uuid::new_v4().to_string();
                let title = format!("w{w} {i}");
                loop {
                    let res = api
                        .http
                        .post(format!("{}/api/lists/inbox/todos", api.base))
                        .json(&json!({ "id": id, "title": title }))
                        .timeout(PATIENCE)
                        .send()
                        .await
                        .expect("an answer, not a hang");
                    let status = res.status();
                    if status.is_success() {
                        acked.push(title.clone());
                        break;
                    }
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                    assert!(res.headers().contains_key("retry-after"));
                    let body: Value = res.json().await.expect("a JSON error");
                    assert_eq!(body["error"]["code"], "database_unavailable");
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await; // Retry-After, shortened
                }
            }
            (acked, refused)
        }));
    }
    // Restart while the writers are busy.
    let mut watch_a = Sse::connect(&a.events_url(""), None).await;
    watch_a.connected().await;
    for _ in 0..10 {
        watch_a.next_change().await;
    }
    let restart = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    });
    let cluster = restart.await.unwrap();
    restarted.send_replace(true);
    let mut acked = Vec::new();
    let mut refused = 0;
    for writer in writers {
        let (mine, theirs) = writer.await.unwrap();
        acked.extend(mine);
        refused += theirs;
    }
    let head = a.api.head().await;
    assert_eq!(
        head,
        base + acked.len() as u64,
        "every write landed once ({refused} refusals retried)"
    );
    target.send_replace(head);
    for reader in readers {
        let seen = reader.finish().await;
        let reference: BTreeMap<u64, String> = seen.iter().cloned().collect();
        assert_complete(&seen, base, head, &reference);
    }
    let snapshot = b.api.get("/api/todos").await;
    let mut titles: Vec<&str> = snapshot["todos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    titles.sort_unstable();
    let mut want: Vec<&str> = acked.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(titles, want, "every acknowledged write is there");
    drop(cluster);
}
