//! Test harness: a real server on a loopback port with its own temporary SQLite database,
//! a REST helper, and an SSE client parsed by `eventsource-stream`.
#![allow(dead_code, missing_docs)] // each test binary uses a different part of the harness

use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use rocket::fairing::AdHoc;
use rocket::figment::providers::Serialized;
use rocket::figment::Figment;
use serde_json::Value;
use tidings_protocol::{Todo, TodoEvent};
use tidings_server::Settings;
use tokio::sync::oneshot;

/// How long any single expected thing may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One database for a test, shared by the servers the test starts on it: a SQLite file in a
/// temporary directory, or a fresh database in the test PostgreSQL cluster.
pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres { url: String },
}

/// The test PostgreSQL cluster: `TIDINGS_TEST_POSTGRES_URL` (set by scripts/with-postgres.sh,
/// as `make test` runs it), or one started for this test process by scripts/pg-cluster.sh
/// and removed when the process exits.
pub fn postgres_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("TIDINGS_TEST_POSTGRES_URL") {
            let dir = std::env::var("TIDINGS_TEST_POSTGRES_DIR").ok().map(PathBuf::from);
            return PgCluster { url, dir, private: false };
        }
        PgCluster::start()
    })
}

const PG_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg-cluster.sh");

/// Where a test cluster is: an admin URL and, when this process knows it, its directory
/// (for restarts).
pub struct PgCluster {
    pub url: String,
    pub dir: Option<PathBuf>,
    /// Stop it when this value is dropped (a private cluster).
    private: bool,
}

impl PgCluster {
    /// A new cluster, stopped and removed when this process exits.
    fn start() -> Self {
        let output = std::process::Command::new(PG_SCRIPT)
            .args(["start", &std::process::id().to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/pg-cluster.sh");
        assert!(output.status.success(), "could not start a PostgreSQL cluster for the tests");
        let line = String::from_utf8(output.stdout).unwrap();
        let (url, dir) = line.trim().split_once(' ').expect("URL DIR");
        PgCluster { url: url.to_owned(), dir: Some(PathBuf::from(dir)), private: false }
    }

    /// A cluster for one test only (one it may restart), stopped when dropped.
    pub fn start_private() -> Self {
        let mut cluster = Self::start();
        cluster.private = true;
        cluster
    }

    /// The URL of database `name` in this cluster.
    pub fn url_of(&self, name: &str) -> String {
        let (base, _) = self.url.rsplit_once('/').expect("a database in the URL");
        format!("{base}/{name}")
    }

    /// Run one SQL statement as the cluster's admin.
    pub async fn admin(&self, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("admin connection");
        sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.ok();
    }

    /// A fast restart of the whole cluster (every connection is cut).
    pub fn restart(&self) {
        let dir = self.dir.as_ref().expect("a cluster this test process started");
        let status =
            std::process::Command::new(PG_SCRIPT).arg("restart").arg(dir).status().unwrap();
        assert!(status.success(), "restart PostgreSQL");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (self.private, &self.dir) {
            let _ = std::process::Command::new(PG_SCRIPT).arg("stop").arg(dir).status();
        }
    }
}

impl Db {
    /// A SQLite database (the default backend).
    pub fn new() -> Self {
        Self::sqlite()
    }

    pub fn sqlite() -> Self {
        Db::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh, empty database in the test PostgreSQL cluster.
    pub async fn postgres() -> Self {
        Self::postgres_in(postgres_cluster()).await
    }

    /// A fresh, empty database in `cluster`.
    pub async fn postgres_in(cluster: &PgCluster) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        cluster.admin(&format!("CREATE DATABASE {name}")).await;
        Db::Postgres { url: cluster.url_of(&name) }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres { .. })
    }

    /// The SQLite file (SQLite only).
    pub fn path(&self) -> PathBuf {
        match self {
            Db::Sqlite(dir) => dir.path().join("tidings.db"),
            Db::Postgres { .. } => panic!("a PostgreSQL database has no file"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(_) => format!("sqlite://{}", self.path().display()),
            Db::Postgres { url } => url.clone(),
        }
    }

    /// Settings for a server on this database, with the given tweaks applied.
    pub fn settings(&self) -> Settings {
        // Tests write fast from one address; the write budget has tests of its own.
        Settings { database_url: self.url(), write_rate: 0, ..Settings::default() }
    }
}

/// Define a test that runs once per storage backend: `mod name { fn sqlite, fn postgres }`.
///
/// ```ignore
/// on_every_backend! {
///     async fn creates_are_idempotent(db) { /* db: Db */ }
/// }
/// ```
#[macro_export]
macro_rules! on_every_backend {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::common::Db) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::common::Db::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($crate::common::Db::postgres().await).await
            }
        }
    };
}

/// The figment a test server runs with: loopback, a free port, quiet logs, `settings`.
pub fn figment(settings: &Settings) -> Figment {
    Figment::from(rocket::Config::debug_default())
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("log_level", "off"))
        .merge(("shutdown.ctrlc", false))
        .merge(Serialized::defaults(settings))
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub api: Api,
    shutdown: rocket::Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Start a server with `settings` and wait until it accepts connections.
    pub async fn start(settings: Settings) -> Self {
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let rocket = tidings_server::build(figment(&settings))
            .await
            .expect("valid settings")
            .attach(AdHoc::on_liftoff("test port", move |rocket| {
                Box::pin(async move {
                    let ready = (rocket.config().port, rocket.shutdown());
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(ready);
                    }
                })
            }));
        let task = tokio::spawn(async move {
            rocket.launch().await.expect("server failed");
        });
        let (port, shutdown) = tokio::time::timeout(PATIENCE, rx)
            .await
            .expect("server did not start in time")
            .expect("server failed to start");
        let base = format!("http://127.0.0.1:{port}");
        TestServer { api: Api::new(&base), base, shutdown, task }
    }

    /// Start a server on `db` with default settings.
    pub async fn on(db: &Db) -> Self {
        Self::start(db.settings()).await
    }

    pub fn events_url(&self, query: &str) -> String {
        format!("{}/api/events{query}", self.base)
    }

    /// Ask the server to shut down and wait until it has.
    pub async fn stop(self) {
        self.shutdown.notify();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked");
    }

    /// A handle that shuts the server down, for tests that stop it while streams are open.
    pub fn shutdown_handle(&self) -> rocket::Shutdown {
        self.shutdown.clone()
    }
}

/// The HS256 secret of the tests' servers with access control.
pub const SECRET: &str = "a test secret that is long enough for HS256 tokens";

/// A valid HS256 token for `user` with [`SECRET`], good for ten minutes.
pub fn token(user: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = serde_json::json!({ "sub": user, "exp": exp });
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// The settings of a server on `db` with access control ([`SECRET`]) and [`METRICS_TOKEN`].
pub fn with_auth(db: &Db) -> Settings {
    Settings {
        auth_secret: Some(tidings_server::config::Secret(SECRET.into())),
        metrics_token: Some(tidings_server::config::Secret(METRICS_TOKEN.into())),
        ..db.settings()
    }
}

/// The metrics token of the tests' servers with access control (`/metrics`, and `/health`'s
/// details).
pub const METRICS_TOKEN: &str = "a metrics token for the tests";

/// A tiny client for the REST API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Api { base: base.to_owned(), http: reqwest::Client::new(), token: None }
    }

    /// The same API, calling with `token`.
    pub fn as_user(&self, token: &str) -> Self {
        Api { token: Some(token.to_owned()), ..self.clone() }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request failed");
        let status = res.status();
        let text = res.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub async fn create_todo(&self, list: &str, title: &str) -> Todo {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                &format!("/api/lists/{list}/todos"),
                Some(serde_json::json!({ "title": title })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn patch_todo(&self, id: &str, patch: Value) -> Todo {
        let (status, body) =
            self.send(reqwest::Method::PATCH, &format!("/api/todos/{id}"), Some(patch)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn delete_todo(&self, id: &str) {
        let (status, body) =
            self.send(reqwest::Method::DELETE, &format!("/api/todos/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    pub async fn create_list(&self, id: &str) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/lists",
                Some(serde_json::json!({ "id": id, "title": id })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The newest event id, from `/health` (asked with [`METRICS_TOKEN`], which servers with
    /// access control need to tell it).
    pub async fn head(&self) -> u64 {
        let res = self.http.get(format!("{}/health", self.base)).bearer_auth(METRICS_TOKEN);
        let health: Value = res.send().await.unwrap().json().await.unwrap();
        health["last_event_id"].as_u64().unwrap_or_else(|| panic!("no head in {health}"))
    }
}

type EventResult = Result<Event, eventsource_stream::EventStreamError<reqwest::Error>>;

/// Reassembles SSE frames from what a stream yields in-process: a replayed page comes in
/// slices that may end inside a frame (or inside a character).
#[derive(Debug, Default)]
pub struct Frames {
    pending: Vec<u8>,
}

impl Frames {
    /// The text of the frames `chunk` completes (empty when it completes none).
    pub fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let Some(end) = self.pending.windows(2).rposition(|w| w == b"\n\n") else {
            return String::new();
        };
        let complete: Vec<u8> = self.pending.drain(..end + 2).collect();
        String::from_utf8(complete).expect("frames are UTF-8")
    }
}

/// An open SSE connection.
pub struct Sse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    events: Pin<Box<dyn Stream<Item = EventResult> + Send>>,
}

impl Sse {
    /// Open `url`, sending `Last-Event-ID` when given. Panics unless the answer is 200.
    pub async fn connect(url: &str, last_event_id: Option<u64>) -> Sse {
        let sse = Self::try_connect(url, last_event_id).await;
        assert_eq!(sse.status, StatusCode::OK);
        sse
    }

    /// Open `url` whatever the status.
    pub async fn try_connect(url: &str, last_event_id: Option<u64>) -> Sse {
        Self::try_connect_with(&reqwest::Client::new(), url, last_event_id).await
    }

    /// Open `url` with `http` (a client bound to another source address, say) whatever the
    /// status.
    pub async fn try_connect_with(
        http: &reqwest::Client,
        url: &str,
        last_event_id: Option<u64>,
    ) -> Sse {
        // `presence` messages come and go with other streams; tests of them ask for them.
        Self::open(http, url, last_event_id, false).await
    }

    /// Open `url` with `http` and keep its `presence` messages. Panics unless the answer is
    /// 200.
    pub async fn watching_presence(http: &reqwest::Client, url: &str) -> Sse {
        let sse = Self::open(http, url, None, true).await;
        assert_eq!(sse.status, StatusCode::OK);
        sse
    }

    async fn open(
        http: &reqwest::Client,
        url: &str,
        last_event_id: Option<u64>,
        presence: bool,
    ) -> Sse {
        let mut req = http.get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = tokio::time::timeout(PATIENCE, req.send())
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let (status, headers) = (res.status(), res.headers().clone());
        let events = res.bytes_stream().eventsource().filter(move |event| {
            std::future::ready(presence || !matches!(event, Ok(e) if e.event == "presence"))
        });
        Sse { status, headers, events: Box::pin(events) }
    }

    /// The next `presence` message (skipping everything else), decoded.
    pub async fn next_presence(&mut self) -> Value {
        loop {
            let event = self.next().await.expect("stream ended");
            if event.event == "presence" {
                return serde_json::from_str(&event.data).unwrap();
            }
        }
    }

    /// The first `presence` message within `within` for which `wanted` holds (skipping the
    /// rest), or `None`.
    pub async fn presence_within(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        tokio::time::timeout(within, async {
            loop {
                let message = self.next_presence().await;
                if wanted(&message) {
                    return message;
                }
            }
        })
        .await
        .ok()
    }

    /// The next message, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Event> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Err(_) => panic!("no SSE message within {PATIENCE:?}"),
            Ok(None) => None,
            Ok(Some(Err(e))) => panic!("SSE stream failed: {e}"),
            Ok(Some(Ok(event))) => Some(event),
        }
    }

    /// The next message, or `None` when the stream ended or broke (a killed server, a
    /// reset connection).
    pub async fn next_or_end(&mut self) -> Option<Event> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Err(_) => panic!("no SSE message within {PATIENCE:?}"),
            Ok(Some(Ok(event))) => Some(event),
            Ok(_) => None,
        }
    }

    /// The next message that is not a heartbeat.
    pub async fn next_non_heartbeat(&mut self) -> Event {
        loop {
            let event = self.next().await.expect("stream ended");
            if event.event != "heartbeat" {
                return event;
            }
        }
    }

    /// The `connected` message that opens every stream.
    pub async fn connected(&mut self) -> Value {
        let event = self.next().await.expect("stream ended before `connected`");
        assert_eq!(event.event, "connected", "first message must be `connected`");
        serde_json::from_str(&event.data).unwrap()
    }

    /// The next change, decoded, with its id.
    pub async fn next_change(&mut self) -> (u64, TodoEvent) {
        let event = self.next_non_heartbeat().await;
        let id = event.id.parse().unwrap_or_else(|_| panic!("no id on {event:?}"));
        let change: TodoEvent = serde_json::from_str(&event.data).unwrap();
        assert_eq!(change.name(), event.event, "event name and data type agree");
        (id, change)
    }

    /// Whether the server ends the stream within `within`.
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// The binary under test: this build's, or `TIDINGS_TEST_SERVER_BIN` (another build, such
/// as a release binary or an older version to show that a test catches its bug).
pub fn server_binary() -> String {
    std::env::var("TIDINGS_TEST_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tidings-server").to_owned())
}

/// The real `tidings-server` binary, run as its own process.
pub struct Process {
    pub child: tokio::process::Child,
    pub base: String,
    pub api: Api,
    /// Everything it wrote to stdout and stderr so far.
    pub output: std::sync::Arc<Mutex<String>>,
}

impl Process {
    /// Start the binary on a free port over `database_url` with `env` added, through
    /// `sh -c "<prelude>; exec tidings-server"` (limits, signal dispositions), and wait until
    /// it has launched.
    pub async fn spawn_with(database_url: &str, env: &[(&str, &str)], prelude: &str) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let script = format!("{prelude}\nexec \"$0\"");
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg(server_binary())
            .env("ROCKET_PORT", "0")
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_CLI_COLORS", "false")
            .env("ROCKET_LOG_LEVEL", "normal")
            .env("TIDINGS_DATABASE_URL", database_url)
            // Tests write fast from one address; the budget has tests of its own.
            .env("TIDINGS_WRITE_RATE", "0");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tidings-server");
        let output = std::sync::Arc::new(Mutex::new(String::new()));
        // Keep draining stderr so the server never blocks on a full pipe.
        let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = output.clone();
        let base = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                // Text or JSON log lines alike: the URL runs to the first quote or space.
                if let Some((_, url)) = line.split_once("launched from ") {
                    let url = url.split(['"', ' ']).next().unwrap_or("").trim();
                    // Listening on every address: reach it on loopback.
                    return url.replace("0.0.0.0", "127.0.0.1");
                }
            }
            panic!("server exited before launching");
        })
        .await
        .expect("server did not launch in time");
        let sink = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Process { child, api: Api::new(&base), base, output }
    }

    /// Start the binary over `database_url`.
    pub async fn spawn(database_url: &str) -> Self {
        Self::spawn_with(database_url, &[], ":").await
    }

    pub fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Send `signal` (`TERM`, `KILL`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and wait for the exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("process did not exit after SIGTERM")
            .unwrap()
    }

    pub fn events_url(&self, query: &str) -> String {
        format!("{}/api/events{query}", self.base)
    }
}
