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

use std::cell::Cell;
use std::rc::{Rc, Weak};

use tidings_protocol::{event_names, TodoEvent, TodosSnapshot};

use crate::backoff::Backoff;
use crate::connection::{self, Connection, Handler};
use crate::decode;
use crate::http;
use crate::source::Message;
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
            backoff: Backoff::default(),
            heartbeat_timeout_ms: None,
            with_credentials: false,
            access_token: None,
        }
    }
}

struct Inner {
    conn: Connection,
    on_item: Box<dyn Fn(StreamItem)>,
    last_applied: Cell<u64>,
    user_heartbeat: bool,
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
        let base = config.base_url.trim_end_matches('/');
        let url = urls::join(
            base,
            &format!("/api/events{}", urls::list_query(config.lists.as_deref().unwrap_or(&[]))),
        );
        let names = event_names::CHANGES
            .iter()
            .chain(&[event_names::CONNECTED, event_names::HEARTBEAT, event_names::RESYNC])
            .map(|n| (*n).to_owned())
            .collect();
        let conn_config = connection::Config {
            url,
            with_credentials: config.with_credentials,
            access_token: config.access_token,
            backoff: config.backoff.sanitized(),
            heartbeat_timeout_ms: config.heartbeat_timeout_ms,
            names,
        };
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let handler: Weak<dyn Handler> = weak.clone();
            Inner {
                conn: Connection::new(conn_config, handler),
                on_item: Box::new(on_item),
                last_applied: Cell::new(config.last_event_id.unwrap_or(0)),
                user_heartbeat: config.heartbeat_timeout_ms.is_some(),
            }
        });
        inner.conn.set_last_event_id(config.last_event_id.map(|id| id.to_string()));
        inner.conn.start();
        Ok(TodoStream { inner })
    }

    /// The id of the last change delivered.
    pub fn last_event_id(&self) -> u64 {
        self.inner.last_applied.get()
    }

    /// The current connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.inner.conn.status()
    }

    /// Close for good.
    pub fn close(&self) {
        self.inner.conn.close();
    }
}

impl Drop for TodoStream {
    fn drop(&mut self) {
        self.inner.conn.close();
    }
}

impl Inner {
    fn handle(&self, message: &Message) -> Result<Option<StreamItem>, ClientError> {
        let bad = |e| decode::error(&message.name, e);
        let value = || decode::parse(&message.data).map_err(bad);
        match message.name.as_str() {
            event_names::HEARTBEAT => Ok(None),
            event_names::CONNECTED => {
                let heartbeat_secs = decode::count(&value()?, "heartbeat_secs").map_err(bad)?;
                if !self.user_heartbeat {
                    self.conn.set_heartbeat_timeout(Some(heartbeat_secs as f64 * 2000.0 + 5000.0));
                }
                Ok(None)
            }
            event_names::RESYNC => {
                let last_event_id = decode::count(&value()?, "last_event_id").map_err(bad)?;
                self.last_applied.set(last_event_id);
                Ok(Some(StreamItem::Resync { last_event_id }))
            }
            _ => {
                let event = decode::event(&message.name, &value()?).map_err(bad)?;
                let id: u64 = message.last_event_id.parse().map_err(|_| ClientError::Decode {
                    what: message.name.clone(),
                    message: "the event id is not a number".into(),
                })?;
                if id <= self.last_applied.get() {
                    return Ok(None); // replayed twice across a reconnect
                }
                self.last_applied.set(id);
                Ok(Some(StreamItem::Change { id, event }))
            }
        }
    }
}

impl Handler for Inner {
    fn on_message(self: Rc<Self>, message: Message) {
        match self.handle(&message) {
            Ok(Some(item)) => (self.on_item)(item),
            Ok(None) => {}
            Err(error) => {
                self.conn.report(error.clone());
                (self.on_item)(StreamItem::Error(error));
            }
        }
    }

    fn on_status(self: Rc<Self>, status: ConnectionStatus) {
        (self.on_item)(StreamItem::Status(status));
    }
}

/// Fetch the todos of `lists` (`None`: every list) with the id they are current as of.
pub async fn fetch_todos(
    base_url: &str,
    lists: Option<&[String]>,
) -> Result<TodosSnapshot, ClientError> {
    let http =
        http::Client { base: base_url.trim_end_matches('/').to_owned(), ..http::Client::default() };
    let path = format!("/api/todos{}", urls::list_query(lists.unwrap_or(&[])));
    let value = http.send("GET", &path, None).await?;
    decode::from_js(&value).map_err(|e| decode::error(&path, e))
}
