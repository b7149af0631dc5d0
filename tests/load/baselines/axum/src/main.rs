//! BASELINE for the tidings load benchmark, not part of tidings: the SSE server one writes
//! with axum by following its SSE example and the tokio broadcast docs. In-memory only: no
//! event log, so `Last-Event-ID` is ignored, and a stream that falls behind the broadcast
//! buffer skips what it missed (`RecvError::Lagged`). Each client builds its own `Event`
//! from the shared JSON string, as the examples do.
//!
//! Same wire shape as tidings: `POST /api/lists`, `POST /api/lists/{list}/todos`,
//! `GET /api/events` (`connected` first, then `todo_created`), `GET /health`.
//! Environment: `PORT` (8002), `BROADCAST_CAPACITY` (1024, tidings' default).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// One committed change: its id, SSE event name and JSON data.
type Change = (u64, &'static str, Arc<String>);

struct App {
    tx: broadcast::Sender<Change>,
    /// The last event id and the lists; the lock also keeps ids and sends in one order.
    state: Mutex<(u64, HashSet<String>)>,
    open_streams: AtomicUsize,
}

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

#[derive(Deserialize)]
struct NewList {
    id: String,
    title: String,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl App {
    /// Assign the next id and broadcast, under the lock so ids go out in order.
    fn publish(&self, state: &mut (u64, HashSet<String>), kind: &'static str, data: Value) {
        state.0 += 1;
        let _ = self.tx.send((state.0, kind, Arc::new(data.to_string())));
    }
}

async fn create_list(
    State(app): State<Arc<App>>,
    Json(new): Json<NewList>,
) -> (StatusCode, Json<Value>) {
    let list = json!({ "id": new.id, "title": new.title, "created_at": now_ms() });
    let mut state = app.state.lock().expect("state lock");
    if !state.1.insert(new.id) {
        return (StatusCode::OK, Json(list));
    }
    app.publish(&mut state, "list_created", json!({ "type": "list_created", "list": list }));
    (StatusCode::CREATED, Json(list))
}

async fn create_todo(
    State(app): State<Arc<App>>,
    Path(list): Path<String>,
    Json(new): Json<NewTodo>,
) -> (StatusCode, Json<Value>) {
    let now = now_ms();
    let todo = json!({
        "id": uuid::Uuid::new_v4().to_string(), "list_id": list, "title": new.title,
        "done": false, "created_at": now, "updated_at": now,
    });
    let mut state = app.state.lock().expect("state lock");
    if !state.1.contains(&list) {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": { "code": "list_not_found" } })));
    }
    app.publish(&mut state, "todo_created", json!({ "type": "todo_created", "todo": todo }));
    (StatusCode::CREATED, Json(todo))
}

/// Gives the stream slot back when the stream is dropped.
struct Slot(Arc<App>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (rx, head) = {
        let state = app.state.lock().expect("state lock");
        (app.tx.subscribe(), state.0)
    };
    app.open_streams.fetch_add(1, Ordering::Relaxed);
    let connected = Event::default()
        .id(head.to_string())
        .event("connected")
        .data(json!({ "type": "connected", "last_event_id": head }).to_string());
    let live = stream::unfold((rx, Slot(app)), |(mut rx, slot)| async move {
        loop {
            match rx.recv().await {
                Ok((id, kind, data)) => {
                    let event = Event::default().id(id.to_string()).event(kind).data(data.as_str());
                    return Some((Ok(event), (rx, slot)));
                }
                // What the examples do: skip what was missed and carry on.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let all = futures_util::StreamExt::chain(stream::once(async { Ok(connected) }), live);
    Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let head = app.state.lock().expect("state lock").0;
    Json(json!({
        "status": "ok",
        "open_streams": app.open_streams.load(Ordering::Relaxed),
        "last_event_id": head,
    }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8002);
    let capacity =
        std::env::var("BROADCAST_CAPACITY").ok().and_then(|c| c.parse().ok()).unwrap_or(1024);
    let (tx, _) = broadcast::channel(capacity);
    let lists = HashSet::from(["inbox".to_owned()]);
    let app =
        Arc::new(App { tx, state: Mutex::new((0, lists)), open_streams: AtomicUsize::new(0) });
    let router = Router::new()
        .route("/api/lists", post(create_list))
        .route("/api/lists/{list}/todos", post(create_todo))
        .route("/api/events", get(events))
        .route("/health", get(health))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, router).await.expect("serve");
}
