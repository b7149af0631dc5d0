//! The real binary: SIGTERM ends every open stream within a second, the process exits, and
//! the next process on the same database resumes clients with nothing lost.

mod common;

use std::time::Duration;

use common::{Db, Process, Sse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_promptly_and_a_restart_resumes_clients() {
    let db = Db::new();
    let server = Process::spawn(&db.url()).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut sse = Sse::connect(&server.events_url("?list=inbox"), None).await;
        sse.connected().await;
        streams.push(sse);
    }
    server.api.create_todo("inbox", "before").await;
    let seen = streams[0].next_change().await.0;

    let mut server = server;
    server.signal("TERM");
    let stopping = tokio::time::Instant::now();
    for sse in &mut streams {
        assert!(sse.ends_within(Duration::from_secs(1)).await, "stream outlived SIGTERM by 1 s");
    }
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("process did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");

    let server = Process::spawn(&db.url()).await;
    let after = server.api.create_todo("inbox", "after").await;
    let mut sse = Sse::connect(&server.events_url("?list=inbox"), Some(seen)).await;
    sse.connected().await;
    let (id, event) = sse.next_change().await;
    assert_eq!(id, seen + 1);
    assert_eq!(event, tidings_protocol::TodoEvent::TodoCreated { todo: after });
}

/// Run the binary with `env` until it exits; its status and standard error.
async fn run_to_exit(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings-server"));
    command
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", "0")
        .env("ROCKET_CLI_COLORS", "false")
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(common::PATIENCE * 2, command.output())
        .await
        .expect("the server neither started nor exited")
        .unwrap();
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_with_one_clear_line_and_no_panic() {
    let db = Db::new();
    let url = db.url();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    for (env, want) in [
        (vec![("TIDINGS_DATABASE_URL", "mysql://root:secret@db/x")], "database_url"),
        (
            vec![
                ("TIDINGS_DATABASE_URL", url.as_str()),
                ("TIDINGS_RETRY_MS", "18446744073709551615"),
            ],
            "retry_ms",
        ),
        (
            vec![("TIDINGS_DATABASE_URL", url.as_str()), ("TIDINGS_HEARTBEAT_SECS", "-1")],
            "heartbeat_secs",
        ),
        (
            vec![
                ("TIDINGS_DATABASE_URL", url.as_str()),
                ("TIDINGS_BROADCAST_CAPACITY", "18446744073709551615"),
            ],
            "broadcast_capacity",
        ),
        (vec![("TIDINGS_DATABASE_URL", url.as_str()), ("ROCKET_PORT", "eighty")], "port"),
        (
            vec![("TIDINGS_DATABASE_URL", url.as_str()), ("ROCKET_PORT", taken_port.as_str())],
            "bind",
        ),
        (vec![("TIDINGS_DATABASE_URL", "postgres://tidings@127.0.0.1:1/tidings")], "PostgreSQL"),
        (vec![("TIDINGS_DATABASE_URL", "sqlite:///nonexistent-dir/x/tidings.db")], "database"),
    ] {
        let (status, stderr) = run_to_exit(&env).await;
        assert!(!status.success(), "{env:?} started");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: one line, got: {stderr}");
        assert!(lines[0].starts_with("tidings-server: "), "{stderr}");
        assert!(lines[0].to_lowercase().contains(&want.to_lowercase()), "{env:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("secret"), "{stderr}");
    }
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_has_a_line_per_request_and_stream_and_never_a_token() {
    let db = Db::new();
    let env = [("TIDINGS_AUTH_DEV_LOGIN", "1"), ("TIDINGS_LOG_FORMAT", "json")];
    let server = Process::spawn_with(&db.url(), &env, ":").await;
    let (_, body) = server
        .api
        .send(reqwest::Method::POST, "/api/dev/token", Some(serde_json::json!({"user": "alice"})))
        .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let alice = server.api.as_user(&token);
    alice.get("/api/lists").await;
    let (status, _) = server.api.send(reqwest::Method::GET, "/api/nowhere", None).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let mut sse = Sse::connect(&server.events_url(&format!("?access_token={token}")), None).await;
    sse.connected().await;
    drop(sse);
    let output = server.output.clone();
    assert!(server.stop().await.success());

    let log = output.lock().unwrap().clone();
    assert!(!log.contains(&token), "a token reached the log:\n{log}");
    assert!(!log.contains("No matching routes"), "Rocket's 404 line:\n{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let requests: Vec<_> = lines.iter().filter(|l| l["target"] == "tidings::request").collect();
    let line = |route: &str| requests.iter().find(|l| l["route"] == route).copied();
    let lists = line("/api/lists").expect("a line for GET /api/lists");
    assert_eq!((lists["method"].as_str(), lists["status"].as_u64()), (Some("GET"), Some(200)));
    assert!(lists["ms"].as_f64().is_some());
    assert_eq!(line("/api/nowhere").expect("404 line")["status"], 404);
    assert!(line("/api/events").is_some(), "the stream's request line");
    let closed = lines
        .iter()
        .find(|l| {
            l["target"] == "tidings::stream"
                && l["msg"].as_str().unwrap().starts_with("stream closed")
        })
        .expect("a line when the stream closed");
    assert!(["client_left", "shutdown"].contains(&closed["reason"].as_str().unwrap()), "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_access_control_a_reachable_address_is_warned_about() {
    let db = Db::new();
    let server = Process::spawn_with(&db.url(), &[("ROCKET_ADDRESS", "0.0.0.0")], ":").await;
    // Answering a request means Rocket is past "launched" and handles SIGTERM.
    server.api.get("/health").await;
    let output = server.output.clone();
    let status = server.stop().await;
    let log = output.lock().unwrap().clone();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("access control is off and the server listens on 0.0.0.0"),
        "no warning in:\n{log}"
    );
}

/// A page of an origin the CORS setting does not allow cannot read the answers, and only the
/// browser's console would say why: the server logs the refused origin, once a minute, and
/// names the setting. Its own origin (a same-origin write carries `Origin` too) is not logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_origin_is_logged_once_with_the_setting_that_allows_it() {
    let db = Db::new();
    let env = [("TIDINGS_CORS_ORIGINS", r#"["https://allowed.example"]"#)];
    let server = Process::spawn_with(&db.url(), &env, ":").await;
    let http = reqwest::Client::new();
    let own = server.base.clone();
    for origin in ["https://app.example", "https://app.example", own.as_str()] {
        let res = http.get(format!("{}/api/lists", server.base)).header("Origin", origin).send();
        let res = res.await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin}");
    }
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/api/lists", server.base))
        .header("Origin", "https://other.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), reqwest::StatusCode::FORBIDDEN);
    let output = server.output.clone();
    assert!(server.stop().await.success());
    let log = output.lock().unwrap().clone();
    let refused = |origin: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("refused a browser request from origin `{origin}`")))
            .count()
    };
    assert_eq!(refused("https://app.example"), 1, "{log}");
    assert_eq!(refused("https://other.example"), 1, "{log}");
    assert!(log.contains("add it to TIDINGS_CORS_ORIGINS"), "{log}");
    assert_eq!(refused(&own), 0, "its own origin is not refused:\n{log}");
}
