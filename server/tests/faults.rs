//! A full disk or a database at its configured size: a write that is not committed is never
//! acknowledged and never broadcast, reads keep working, and writes work again once there is
//! room. Every acknowledged write survives a restart.

mod common;

use common::{Api, Db, Process, Sse, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings_server::Settings;

/// A title long enough that every todo takes real room on disk.
fn title(i: usize) -> String {
    format!("{i:04} {}", "x".repeat(400))
}

/// Create todos until `failures` creates in a row were refused; the titles acknowledged, and
/// the statuses and codes of the refusals.
async fn fill(api: &Api, start: usize, failures: usize) -> (Vec<String>, Vec<(u16, String)>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    let mut in_a_row = 0;
    for i in start.. {
        let title = title(i);
        let (status, body) =
            api.send(Method::POST, "/api/lists/inbox/todos", Some(json!({ "title": title }))).await;
        if status == StatusCode::CREATED {
            acked.push(title);
            in_a_row = 0;
        } else {
            refused.push((status.as_u16(), body["error"]["code"].as_str().unwrap_or("").into()));
            in_a_row += 1;
            if in_a_row == failures {
                break;
            }
        }
        assert!(i < start + 5_000, "never filled up");
    }
    (acked, refused)
}

fn titles(snapshot: &Value) -> Vec<String> {
    snapshot["todos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

/// The file-size limit of a process (`RLIMIT_FSIZE`) stands in for a full disk: writes past
/// it fail like `ENOSPC` does, without root. The server is run with the soft limit set (and
/// `SIGXFSZ` ignored, so a write fails instead of killing it); raising the limit with
/// `prlimit` is the disk getting room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_acknowledges_a_lost_write_and_recovers_when_space_returns() {
    let db = Db::new();
    // 512-byte blocks: about 1 MB for the database and its WAL.
    let server = Process::spawn_with(&db.url(), &[], "trap '' XFSZ\nulimit -S -f 2000").await;
    let base = server.api.head().await;
    let mut sse = Sse::connect(&server.events_url("?list=inbox"), None).await;
    sse.connected().await;

    let (mut acked, refused) = fill(&server.api, 0, 20).await;
    assert!(acked.len() > 5, "some writes fit before the disk is full ({})", acked.len());
    for (status, code) in &refused {
        assert!(
            matches!(
                (status, code.as_str()),
                (507, "storage_full") | (503, "database_unavailable")
            ),
            "a refused write is a JSON 507 or 503, got {status} {code}"
        );
    }
    // Nothing refused was logged: the head is exactly the acknowledged writes.
    assert_eq!(server.api.head().await, base + acked.len() as u64);
    // Reads keep working while the disk is full.
    assert_eq!(titles(&server.api.get("/api/lists/inbox/todos").await), acked);

    // Room again: writes work (the writer connection that failed was replaced).
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &server.pid(), "--fsize=unlimited"])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let after = server.api.create_todo("inbox", "after the disk had room again").await;
    acked.push(after.title.clone());

    // The stream saw every acknowledged write once, in order, and nothing else.
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        let (id, event) = sse.next_change().await;
        seen.push((id, event));
    }
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (base + 1..=base + acked.len() as u64).collect::<Vec<_>>());
    let streamed: Vec<String> = seen
        .into_iter()
        .map(|(_, event)| match event {
            tidings_protocol::TodoEvent::TodoCreated { todo } => todo.title,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(streamed, acked);

    // And all of it is on disk.
    server.stop().await;
    let server = Process::spawn(&db.url()).await;
    assert_eq!(titles(&server.api.get("/api/lists/inbox/todos").await), acked);
    assert_eq!(server.api.head().await, base + acked.len() as u64);
}

/// `max_database_bytes`: the same promise against a configured size; raising it makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_at_its_configured_size_refuses_writes_with_507_and_reads_keep_working() {
    let db = Db::new();
    let settings = Settings { max_database_bytes: Some(1 << 20), ..db.settings() };
    let server = TestServer::start(settings.clone()).await;
    let base = server.api.head().await;
    let (mut acked, refused) = fill(&server.api, 0, 5).await;
    assert!(acked.len() > 100, "{} writes fit in 1 MiB", acked.len());
    assert!(refused.iter().all(|(status, code)| (*status, code.as_str()) == (507, "storage_full")));
    assert_eq!(server.api.head().await, base + acked.len() as u64);
    assert_eq!(titles(&server.api.get("/api/lists/inbox/todos").await), acked);
    server.stop().await;

    let settings = Settings { max_database_bytes: Some(2 << 20), ..settings };
    let server = TestServer::start(settings).await;
    acked.push(server.api.create_todo("inbox", "fits again").await.title);
    assert_eq!(titles(&server.api.get("/api/lists/inbox/todos").await), acked);
    assert_eq!(server.api.head().await, base + acked.len() as u64);
    server.stop().await;
}
