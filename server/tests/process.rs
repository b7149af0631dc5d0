//! The real binary: SIGTERM ends every open stream within a second, the process exits, and
//! the next process on the same database resumes clients with nothing lost.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Api, Db, Sse, PATIENCE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Start `tidings-server` on a free port over `db`; return it with its base URL.
async fn spawn(db: &Db) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-server"))
        .env("ROCKET_PORT", "0")
        .env("ROCKET_CLI_COLORS", "false")
        .env("ROCKET_LOG_LEVEL", "normal")
        .env("TIDINGS_DATABASE_URL", db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tidings-server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, url)) = line.split_once("launched from ") {
                return url.trim().to_owned();
            }
        }
        panic!("server exited before launching");
    })
    .await
    .expect("server did not launch in time");
    // Keep draining its output so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_promptly_and_a_restart_resumes_clients() {
    let db = Db::new();
    let (mut child, base) = spawn(&db).await;
    let api = Api::new(&base);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut sse = Sse::connect(&format!("{base}/api/events?list=inbox"), None).await;
        sse.connected().await;
        streams.push(sse);
    }
    api.create_todo("inbox", "before").await;
    let seen = streams[0].next_change().await.0;

    sigterm(&child);
    let stopping = tokio::time::Instant::now();
    for sse in &mut streams {
        assert!(sse.ends_within(Duration::from_secs(1)).await, "stream outlived SIGTERM by 1 s");
    }
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("process did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");

    let (_child, base) = spawn(&db).await;
    let api = Api::new(&base);
    let after = api.create_todo("inbox", "after").await;
    let mut sse = Sse::connect(&format!("{base}/api/events?list=inbox"), Some(seen)).await;
    sse.connected().await;
    let (id, event) = sse.next_change().await;
    assert_eq!(id, seen + 1);
    assert_eq!(event, tidings_protocol::TodoEvent::TodoCreated { todo: after });
}
