//! The same connection for Rust web apps (Leptos, Yew, Dioxus): typed
//! [`TodoEvent`]s delivered to a callback, with reconnection,
//! resume, heartbeat watchdog and backoff.
//!
//! ```no_run
//! use tidings_client::{fetch_todos, StreamConfig, StreamItem, TodoStream};
//!
//! # async fn run() -> Result<(), tidings_client::ClientError> {
//! let base = "http://127.0.0.1:8000";
//! let lists = vec!["inbox".to_owned()];
//! // Load the snapshot, then resume the stream exactly where it stands.
//! let snapshot = fetch_todos(base, Some(&lists)).await?;
//! let mut todos = snapshot.todos;
//! let stream = TodoStream::open(
//!     StreamConfig {
//!         lists: Some(lists),
//!         last_event_id: Some(snapshot.last_event_id),
//!         epoch: snapshot.epoch,
//!         ..StreamConfig::new(base)
//!     },
//!     move |item| match item {
//!         StreamItem::Change { id, event } => { /* apply `event` to your signal/state */ }
//!         StreamItem::Status(status) => { /* show `status.state` */ }
//!         StreamItem::Resync { .. } => { /* refetch the snapshot */ }
//!         StreamItem::Error(error) => { /* a malformed event: the stream goes on */ }
//!     },
//! )?;
//! // Keep `stream` alive as long as you want events; dropping it closes everything.
//! # drop(stream); Ok(()) }
//! ```

use std::rc::{Rc, Weak};

use tidings_protocol::{TodoEvent, TodosSnapshot};
use wasm_bindgen::JsValue;

use crate::backoff::Backoff;
use crate::decode;
use crate::http;
use crate::session::{self, Session, Sink};
use crate::status::{ClientError, ConnectionStatus};
use crate::urls;

/// What a [`TodoStream`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A change, with its event id; each id arrives once, in order.
    Change {
        /// The global event id.
        id: u64,
        /// The change.
        event: TodoEvent,
    },
    /// The resume point is gone: refetch the snapshot. The stream continues after
    /// `last_event_id`.
    Resync {
        /// The id the stream continues after.
        last_event_id: u64,
    },
    /// The connection status changed.
    Status(ConnectionStatus),
    /// A malformed event (reported, skipped; the stream goes on).
    Error(ClientError),
}

/// Where and how a [`TodoStream`] connects.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Server base URL, like `http://127.0.0.1:8000` (`""`: the page's origin).
    pub base_url: String,
    /// Lists to follow; `None`: every list.
    pub lists: Option<Vec<String>>,
    /// Resume after this id (a snapshot's `last_event_id`).
    pub last_event_id: Option<u64>,
    /// The event log `last_event_id` belongs to (the snapshot's `epoch`): a server whose
    /// database was replaced since then answers with [`StreamItem::Resync`].
    pub epoch: Option<String>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which the connection counts as dead; `None`: derived from the
    /// server's heartbeat.
    pub heartbeat_timeout_ms: Option<f64>,
    /// Send cookies cross-origin.
    pub with_credentials: bool,
    /// Sent as the `access_token` query parameter.
    pub access_token: Option<String>,
}

impl StreamConfig {
    /// Defaults for the server at `base_url`.
    pub fn new(base_url: &str) -> Self {
        StreamConfig {
            base_url: base_url.to_owned(),
            lists: None,
            last_event_id: None,
            epoch: None,
            backoff: Backoff::default(),
            heartbeat_timeout_ms: None,
            with_credentials: false,
            access_token: None,
        }
    }
}

struct Inner {
    session: Session,
    on_item: Box<dyn Fn(StreamItem)>,
}

/// A live, typed stream of changes. Dropping it closes the connection.
pub struct TodoStream {
    inner: Rc<Inner>,
}

impl TodoStream {
    /// Connect now and call `on_item` with everything that happens.
    pub fn open(
        config: StreamConfig,
        on_item: impl Fn(StreamItem) + 'static,
    ) -> Result<Self, ClientError> {
        let session_config = session::Config {
            base: config.base_url.trim_end_matches('/').to_owned(),
            lists: config.lists,
            with_credentials: config.with_credentials,
            access_token: config.access_token.map_or(JsValue::UNDEFINED, JsValue::from),
            backoff: config.backoff,
            heartbeat_timeout_ms: config.heartbeat_timeout_ms,
            // A Rust app owns its tabs' coordination; this stream is the tab's own.
            share: false,
        };
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let sink: Weak<dyn Sink> = weak.clone();
            Inner { session: Session::new(session_config, sink), on_item: Box::new(on_item) }
        });
        if let Some(id) = config.last_event_id {
            inner.session.install(id, config.epoch);
        }
        inner.session.start();
        Ok(TodoStream { inner })
    }

    /// The id of the last change delivered.
    pub fn last_event_id(&self) -> u64 {
        self.inner.session.cursor().unwrap_or(0)
    }

    /// The current connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.inner.session.status()
    }

    /// Close for good.
    pub fn close(&self) {
        self.inner.session.close();
    }
}

impl Sink for Inner {
    fn change(self: Rc<Self>, id: u64, event: TodoEvent, _data: JsValue) {
        (self.on_item)(StreamItem::Change { id, event });
    }

    fn resync(self: Rc<Self>, last_event_id: u64) {
        // The application refetches; the stream goes on after `last_event_id`.
        self.session.install(last_event_id, None);
        (self.on_item)(StreamItem::Resync { last_event_id });
    }

    fn status(self: Rc<Self>) {
        (self.on_item)(StreamItem::Status(self.session.status()));
    }

    fn error(self: Rc<Self>, error: ClientError) {
        (self.on_item)(StreamItem::Error(error));
    }
}

/// Fetch the todos of `lists` (`None`: every list) with the id they are current as of.
pub async fn fetch_todos(
    base_url: &str,
    lists: Option<&[String]>,
) -> Result<TodosSnapshot, ClientError> {
    let none = js_sys::Array::new();
    let http = http::Client::new(base_url.trim_end_matches('/'), &none, false, &JsValue::UNDEFINED);
    let path = ["/api/todos", &urls::list_query(lists.unwrap_or(&[]))].concat();
    let value = http.send("GET", &path, None, None).await?;
    decode::from_js(&value).map_err(|e| decode::error(&path, e))
}
