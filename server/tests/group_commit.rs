//! Group commit: concurrent writes share one transaction, each in a savepoint of its own. A
//! write that fails inside the transaction fails alone; every acknowledged write is in the
//! log exactly once, under consecutive ids; a crash or a full disk in the middle of a group
//! loses nothing acknowledged and half-applies nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::{Api, Db, Process, Sse, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings_protocol::TodoEvent;

/// Writers at once, and writes each: enough that writes wait for the writer and are grouped.
const WRITERS: usize = 16;
const WRITES_EACH: usize = 40;

/// A todo id (a UUID) made from `n`.
fn todo_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// `(sum, count)` of the `tidings_write_group_writes` summary: writes committed, and groups.
async fn group_sizes(base: &str) -> (f64, f64) {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
    };
    (value("tidings_write_group_writes_sum"), value("tidings_write_group_writes_count"))
}

/// Every change in the log from the start, read back through a stream: `(id, event)`.
async fn the_log(base: &str, head: u64) -> Vec<(u64, TodoEvent)> {
    let mut sse = Sse::connect(&format!("{base}/api/events"), Some(0)).await;
    sse.connected().await;
    let mut log = Vec::new();
    while log.last().is_none_or(|(id, _)| *id < head) {
        log.push(sse.next_change().await);
    }
    log
}

/// The todos' ids in the log's `todo_created` events, checking each appears once.
fn created_ids(log: &[(u64, TodoEvent)]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (id, event) in log {
        match event {
            TodoEvent::TodoCreated { todo } => {
                assert!(ids.insert(todo.id.clone()), "{} logged twice (event {id})", todo.id)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    ids
}

fn snapshot_ids(snapshot: &Value) -> BTreeSet<String> {
    snapshot["todos"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().into()).collect()
}

on_every_backend! {
    async fn a_write_that_fails_inside_a_group_fails_alone(db) {
        let server = TestServer::on(&db).await;
        let base = server.api.head().await;
        let (sum_before, count_before) = group_sizes(&server.base).await;
        // Every fifth write names a list that does not exist, every seventh reuses a client id
        // another writer already used for a different title: both are refused by the rules
        // inside the transaction.
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let api = server.api.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..WRITES_EACH {
                    let n = w * WRITES_EACH + i;
                    let (list, id) = match n {
                        n if n % 5 == 4 => ("nowhere", todo_id(n)),
                        n if n % 7 == 6 => ("inbox", todo_id(n - 1)),
                        n => ("inbox", todo_id(n)),
                    };
                    let body = json!({ "id": id, "title": format!("write {n}") });
                    let path = format!("/api/lists/{list}/todos");
                    let (status, body) = api.send(Method::POST, &path, Some(body)).await;
                    outcomes.push((n, id, status, body));
                }
                outcomes
            }));
        }
        let mut acked = BTreeSet::new();
        let mut refused = 0;
        for task in tasks {
            for (n, id, status, body) in task.await.unwrap() {
                if n % 5 == 4 {
                    assert_eq!(status, StatusCode::NOT_FOUND, "write {n}: {body}");
                    assert_eq!(body["error"]["code"], "list_not_found");
                    refused += 1;
                } else if status == StatusCode::CREATED {
                    assert_eq!(body["id"], id.as_str());
                    assert!(acked.insert(id), "write {n} acknowledged an id twice");
                } else {
                    // A reused id: refused, unless its first use itself was refused.
                    assert_eq!(n % 7, 6, "write {n} refused: {status} {body}");
                    assert_eq!(status, StatusCode::CONFLICT, "write {n}: {body}");
                    assert_eq!(body["error"]["code"], "id_conflict");
                    refused += 1;
                }
            }
        }
        assert!(refused > WRITERS * WRITES_EACH / 5, "{refused} refused");
        // Exactly the acknowledged writes are logged, once each, under consecutive ids.
        let head = server.api.head().await;
        assert_eq!(head, base + acked.len() as u64);
        let log = the_log(&server.base, head).await;
        let ids: Vec<u64> = log.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (base + 1..=head).collect::<Vec<_>>());
        assert_eq!(created_ids(&log), acked);
        assert_eq!(snapshot_ids(&server.api.get("/api/lists/inbox/todos").await), acked);
        // And the writes were grouped: fewer transactions than writes.
        let (sum, count) = group_sizes(&server.base).await;
        let (writes, groups) = (sum - sum_before, count - count_before);
        assert!(writes >= acked.len() as f64, "{writes} writes counted");
        assert!(groups < writes, "{writes} writes in {groups} transactions: none grouped");
        server.stop().await;
    }
}

/// Write from many tasks through `api` until `stop` says so; the ids acknowledged.
fn spawn_writers(api: &Api, acked: &Arc<Mutex<Vec<String>>>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (api, acked) = (api.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let id = todo_id(w << 32 | i);
                    let body = json!({ "id": id, "title": format!("write {w} {i}") });
                    let sent = api
                        .http
                        .post(format!("{}/api/lists/inbox/todos", api.base))
                        .json(&body)
                        .send()
                        .await;
                    // A write cut off by the crash is unacknowledged: the writer stops.
                    let Ok(res) = sent else { return };
                    if res.status() != StatusCode::CREATED || res.bytes().await.is_err() {
                        return;
                    }
                    acked.lock().unwrap().push(id);
                }
            })
        })
        .collect()
}

on_every_backend! {
    async fn a_crash_in_the_middle_of_a_group_loses_nothing_acknowledged(db) {
        let server = Process::spawn(&db.url()).await;
        let base = server.api.head().await;
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers = spawn_writers(&server.api, &acked);
        // Kill it while every writer has a write in flight.
        let mut sse = Sse::connect(&server.events_url(""), None).await;
        sse.connected().await;
        for _ in 0..300 {
            sse.next_change().await;
        }
        server.signal("KILL");
        for writer in writers {
            writer.await.unwrap();
        }
        let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
        assert!(acked.len() >= 250, "only {} acknowledged", acked.len());

        let server = Process::spawn(&db.url()).await;
        let head = server.api.head().await;
        let log = the_log(&server.base, head).await;
        let ids: Vec<u64> = log.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (base + 1..=head).collect::<Vec<_>>(), "consecutive ids after the crash");
        let logged = created_ids(&log);
        let stored = snapshot_ids(&server.api.get("/api/lists/inbox/todos").await);
        // Nothing half-applied: a todo exists exactly when its event is logged.
        assert_eq!(logged, stored);
        let lost: Vec<&String> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
        server.stop().await;
    }
}

/// A full disk while groups are being committed (see `faults.rs` for the set-up): no write of
/// a failed group is acknowledged, and every acknowledged one survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_group_acknowledges_none_of_it() {
    let db = Db::new();
    let server = Process::spawn_with(&db.url(), &[], "trap '' XFSZ\nulimit -S -f 2000").await;
    let base = server.api.head().await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (api, acked, refusals) = (server.api.clone(), acked.clone(), refusals.clone());
        tasks.push(tokio::spawn(async move {
            // Until this writer is refused five times in a row: the disk is full.
            let mut in_a_row = 0;
            for i in 0..2_000 {
                let id = todo_id(w << 32 | i);
                let title = format!("{id} {}", "x".repeat(400));
                let body = json!({ "id": id, "title": title });
                let (status, _) =
                    api.send(Method::POST, "/api/lists/inbox/todos", Some(body)).await;
                if status == StatusCode::CREATED {
                    acked.lock().unwrap().push(id);
                    in_a_row = 0;
                } else {
                    *refusals.lock().unwrap().entry(status.as_u16()).or_default() += 1;
                    in_a_row += 1;
                    if in_a_row == 5 {
                        return;
                    }
                }
            }
            panic!("the disk never filled up");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let refusals = refusals.lock().unwrap().clone();
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() > 5, "some writes fit before the disk is full ({})", acked.len());
    assert!(refusals.keys().all(|status| [503, 507].contains(status)), "refused with {refusals:?}");
    // Nothing refused was logged or stored, before or after a restart.
    assert_eq!(server.api.head().await, base + acked.len() as u64);
    server.stop().await;
    let server = Process::spawn(&db.url()).await;
    let head = server.api.head().await;
    assert_eq!(head, base + acked.len() as u64);
    assert_eq!(created_ids(&the_log(&server.base, head).await), acked);
    assert_eq!(snapshot_ids(&server.api.get("/api/lists/inbox/todos").await), acked);
    server.stop().await;
}
