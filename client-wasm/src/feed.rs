//! `TodoFeed`: the live todo list of one or more lists, as Svelte stores.
//!
//! It loads a snapshot (or starts from `initial`), opens the stream at the snapshot's
//! `last_event_id`, and applies each change once. `resync` reloads the snapshot.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use tidings_protocol::{event_names, List, Todo, TodoEvent};
use wasm_bindgen::JsValue;
use web_sys::AbortController;

use crate::backoff::Backoff;
use crate::connection::{self, Connection, Handler};
use crate::decode;
use crate::http;
use crate::js;
use crate::live::{Lazy, Lifecycle};
use crate::options::Options;
use crate::replica::{Effect, Replica};
use crate::resources::Tracked;
use crate::source::Message;
use crate::status::{ClientError, ConnectionState, ConnectionStatus};
use crate::store::LiveStore;
use crate::urls;

/// Todos and lists fetched together: the todos' `last_event_id` is where the stream starts.
pub struct Snapshot {
    /// Todos with their JavaScript objects.
    pub todos: Vec<(Todo, JsValue)>,
    /// Lists with their JavaScript objects (empty when not loaded).
    pub lists: Vec<(List, JsValue)>,
    /// The id the todos are current as of.
    pub last_event_id: u64,
}

/// Decode a `TodosSnapshot` JSON value, keeping each todo's object.
pub fn todos_snapshot(
    what: &str,
    value: &JsValue,
) -> Result<(Vec<(Todo, JsValue)>, u64), ClientError> {
    let last_event_id = js::get(value, "last_event_id")
        .as_f64()
        .filter(|id| id.is_finite() && *id >= 0.0)
        .ok_or_else(|| ClientError::Decode {
            what: what.into(),
            message: "`last_event_id` must be a non-negative number".into(),
        })? as u64;
    let todos = items(what, &js::get(value, "todos"))?;
    Ok((todos, last_event_id))
}

/// Decode a JSON array of `T`, keeping each element's (frozen) object.
fn items<T: serde::de::DeserializeOwned>(
    what: &str,
    array: &JsValue,
) -> Result<Vec<(T, JsValue)>, ClientError> {
    if !js_sys::Array::is_array(array) {
        return Err(ClientError::Decode { what: what.into(), message: "expected an array".into() });
    }
    js_sys::Array::from(array)
        .iter()
        .map(|item| {
            Ok((decode::from_js(&item).map_err(|e| decode::error(what, e))?, js::freeze(item)))
        })
        .collect()
}

/// The state of an in-progress snapshot load.
#[derive(Debug, Clone, Default)]
struct Loading {
    attempt: u32,
    error: Option<ClientError>,
    /// A reload after `resync` (the feed was live before).
    reload: bool,
}

/// The shared state behind a `TodoFeed` handle.
pub struct Feed {
    lazy: Lazy<Feed>,
    conn: Connection,
    http: http::Client,
    lists: Option<Vec<String>>,
    backoff: Backoff,
    heartbeat_timeout_ms: Option<f64>,
    replica: RefCell<Replica<JsValue>>,
    /// The `initial` snapshot's id, until the first wake opens the stream there.
    initial: Cell<Option<u64>>,
    loaded: Cell<bool>,
    loading: RefCell<Option<Loading>>,
    /// Why loading stopped for good (until the next wake): the lists do not exist.
    failed: RefCell<Option<ClientError>>,
    load_generation: Cell<u64>,
    load_abort: RefCell<Option<AbortController>>,
    load_retry: RefCell<Option<Tracked<Timeout>>>,
    /// The stores.
    pub todos: LiveStore,
    /// Every list, live.
    pub list_store: LiveStore,
    /// The connection status.
    pub status: LiveStore,
    /// The last change event applied.
    pub events: LiveStore,
}

impl Feed {
    /// A feed on the server at `base_url`, idle until its first subscriber.
    pub fn new(base_url: &str, options: &JsValue) -> Result<Rc<Feed>, ClientError> {
        let parsed = Options::from_js(options)?;
        let initial = match js::get(options, "initial") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(
                todos_snapshot("initial", &v)
                    .map_err(|e| ClientError::InvalidInput(e.to_string()))?,
            ),
        };
        let base = base_url.trim_end_matches('/').to_owned();
        let lists = parsed.lists.clone();
        let stream_url = urls::join(
            &base,
            &format!("/api/events{}", urls::list_query(lists.as_deref().unwrap_or(&[]))),
        );
        let names: Vec<String> = event_names::CHANGES
            .iter()
            .chain(&[event_names::CONNECTED, event_names::HEARTBEAT, event_names::RESYNC])
            .map(|n| (*n).to_owned())
            .collect();
        let config = connection::Config {
            url: stream_url,
            with_credentials: parsed.with_credentials,
            access_token: parsed.access_token.clone(),
            backoff: parsed.backoff,
            heartbeat_timeout_ms: parsed.heartbeat_timeout_ms,
            names,
        };
        let http = http::Client {
            base,
            headers: parsed.headers,
            with_credentials: parsed.with_credentials,
            access_token: parsed.access_token,
            signal: None,
        };
        Ok(Rc::new_cyclic(|weak: &Weak<Feed>| {
            let handler: Weak<dyn Handler> = weak.clone();
            let lazy = Lazy::new(weak.clone());
            let empty = js::frozen_array(std::iter::empty());
            let mut replica = Replica::new(lists.clone());
            let todos = match &initial {
                Some((todos, id)) => {
                    // Show the initial list at once, even before anything subscribes.
                    replica.reset(todos.clone(), *id);
                    js::frozen_array(replica.todos().iter().map(|(_, v)| v))
                }
                None => empty.clone(),
            };
            let status =
                ConnectionStatus { state: ConnectionState::Connecting, ..Default::default() };
            Feed {
                todos: lazy.store(&todos),
                list_store: lazy.store(&empty),
                status: lazy.store(&js::status(&status)),
                events: lazy.store(&JsValue::NULL),
                lazy,
                conn: Connection::new(config, handler),
                http,
                lists,
                backoff: parsed.backoff,
                heartbeat_timeout_ms: parsed.heartbeat_timeout_ms,
                replica: RefCell::new(replica),
                initial: Cell::new(initial.as_ref().map(|(_, id)| *id)),
                loaded: Cell::new(false),
                loading: RefCell::new(None),
                failed: RefCell::new(None),
                load_generation: Cell::new(0),
                load_abort: RefCell::new(None),
                load_retry: RefCell::new(None),
            }
        }))
    }

    /// The REST client of this feed.
    pub fn http(&self) -> &http::Client {
        &self.http
    }

    /// The list new todos go to when none is named.
    pub fn default_list(&self) -> String {
        self.lists
            .as_ref()
            .and_then(|l| l.first().cloned())
            .unwrap_or_else(|| tidings_protocol::DEFAULT_LIST_ID.to_owned())
    }

    /// The id of the last change applied.
    pub fn last_event_id(&self) -> u64 {
        self.replica.borrow().last_applied()
    }

    /// Stop for good.
    pub fn close(self: &Rc<Self>) {
        self.cancel_load();
        self.conn.close();
        self.publish_status();
        self.lazy.close();
    }

    fn snapshot_path(&self) -> String {
        match self.lists.as_deref() {
            Some([one]) => format!("/api/lists/{}/todos", urls::encode(one)),
            Some(many) => format!("/api/todos{}", urls::list_query(many)),
            None => "/api/todos".into(),
        }
    }

    fn publish_todos(&self) {
        let value = js::frozen_array(self.replica.borrow().todos().iter().map(|(_, v)| v));
        self.todos.set(&value);
    }

    fn publish_lists(&self) {
        let value = js::frozen_array(self.replica.borrow().lists().iter().map(|(_, v)| v));
        self.list_store.set(&value);
    }

    /// The status store's value: the connection's, or the snapshot load's while loading.
    fn publish_status(&self) {
        let mut status = self.conn.status();
        if let Some(loading) = self.loading.borrow().as_ref() {
            status.state = if loading.attempt == 0 && !loading.reload {
                ConnectionState::Connecting
            } else {
                ConnectionState::Reconnecting
            };
            status.attempt = loading.attempt;
            status.error = loading.error.clone();
        } else if let Some(error) = self.failed.borrow().as_ref() {
            status.state = ConnectionState::Closed;
            status.error = Some(error.clone());
        } else if self.lazy.is_closed() {
            status.state = ConnectionState::Closed;
        }
        self.status.set(&js::status(&status));
    }

    fn cancel_load(&self) {
        self.load_generation.set(self.load_generation.get() + 1);
        self.load_retry.borrow_mut().take();
        if let Some(abort) = self.load_abort.borrow_mut().take() {
            abort.abort();
        }
        self.loading.borrow_mut().take();
    }

    /// Fetch the snapshot (todos, then lists), then open the stream at its id. Retries with
    /// backoff until it succeeds or the feed sleeps.
    fn load(self: &Rc<Self>, reload: bool) {
        self.cancel_load();
        self.failed.borrow_mut().take();
        *self.loading.borrow_mut() = Some(Loading { reload, ..Loading::default() });
        self.publish_status();
        self.load_attempt();
    }

    fn load_attempt(self: &Rc<Self>) {
        let generation = self.load_generation.get();
        let abort = AbortController::new().ok();
        *self.load_abort.borrow_mut() = abort.clone();
        let weak = Rc::downgrade(self);
        let http = self.http.with_signal(abort.map(|a| a.signal()));
        let path = self.snapshot_path();
        wasm_bindgen_futures::spawn_local(async move {
            let result = fetch_snapshot(&http, &path).await;
            let Some(feed) = weak.upgrade() else { return };
            if feed.load_generation.get() != generation {
                return;
            }
            feed.load_abort.borrow_mut().take();
            match result {
                Ok(snapshot) => feed.install(snapshot),
                Err(error) => feed.retry_load(error),
            }
        });
    }

    fn retry_load(self: &Rc<Self>, error: ClientError) {
        if error.status() == Some(404) {
            // A list that does not exist: retrying cannot help. Say so and stop; a later
            // wake (a new subscriber after this one left) tries again. The sidebar still
            // gets its lists.
            self.loading.borrow_mut().take();
            *self.failed.borrow_mut() = Some(error);
            self.publish_status();
            self.load_lists();
            return;
        }
        let attempt = {
            let mut loading = self.loading.borrow_mut();
            let loading = loading.get_or_insert_with(Loading::default);
            loading.attempt += 1;
            if error.is_auth() {
                // Do not hammer a server that refuses us: continue at the cap.
                loading.attempt = loading.attempt.max(self.backoff.attempt_at_cap());
            }
            loading.error = Some(error);
            loading.attempt
        };
        self.publish_status();
        let delay = self.backoff.delay(attempt, js_sys::Math::random());
        let weak = Rc::downgrade(self);
        let generation = self.load_generation.get();
        let timer = Timeout::new(delay.round() as u32, move || {
            if let Some(feed) = weak.upgrade() {
                if feed.load_generation.get() == generation {
                    feed.load_attempt();
                }
            }
        });
        *self.load_retry.borrow_mut() = Some(Tracked::new(timer));
    }

    fn install(self: &Rc<Self>, snapshot: Snapshot) {
        let lists_changed = {
            let mut replica = self.replica.borrow_mut();
            replica.reset(snapshot.todos, snapshot.last_event_id);
            replica.merge_lists(snapshot.lists)
        };
        self.loaded.set(true);
        self.loading.borrow_mut().take();
        self.publish_todos();
        if lists_changed {
            self.publish_lists();
        }
        self.conn.set_last_event_id(Some(snapshot.last_event_id.to_string()));
        self.conn.start();
        self.publish_status();
    }

    /// Lists, when the todos came from `initial` (which has none). Aborted like a load.
    fn load_lists(self: &Rc<Self>) {
        let abort = AbortController::new().ok();
        *self.load_abort.borrow_mut() = abort.clone();
        let generation = self.load_generation.get();
        let weak = Rc::downgrade(self);
        let http = self.http.with_signal(abort.map(|a| a.signal()));
        wasm_bindgen_futures::spawn_local(async move {
            let result = http.send("GET", "/api/lists", None).await;
            let Some(feed) = weak.upgrade() else { return };
            if feed.load_generation.get() != generation {
                return;
            }
            feed.load_abort.borrow_mut().take();
            let Ok(value) = result else { return };
            let Ok(lists) = items::<List>("/api/lists", &js::get(&value, "lists")) else { return };
            if feed.replica.borrow_mut().merge_lists(lists) {
                feed.publish_lists();
            }
        });
    }

    fn apply(&self, message: &Message) -> Result<(), ClientError> {
        let what = message.name.as_str();
        let value = decode::parse(&message.data).map_err(|e| decode::error(what, e))?;
        let event = decode::event(what, &value).map_err(|e| decode::error(what, e))?;
        let id: u64 = message.last_event_id.parse().map_err(|_| ClientError::Decode {
            what: what.to_owned(),
            message: "the event id is not a number".into(),
        })?;
        let fresh = id > self.replica.borrow().last_applied();
        let effect = self.replica.borrow_mut().apply(id, &event, || {
            let key = if matches!(event, TodoEvent::ListCreated { .. }) { "list" } else { "todo" };
            js::freeze(js::get(&value, key))
        });
        match effect {
            Effect::Todos => self.publish_todos(),
            Effect::Lists => self.publish_lists(),
            Effect::None => {}
        }
        if fresh {
            self.events.set(&js::freeze(value));
        }
        Ok(())
    }

    fn on_connected(&self, message: &Message) -> Result<(), ClientError> {
        let what = message.name.as_str();
        let value = decode::parse(&message.data).map_err(|e| decode::error(what, e))?;
        let heartbeat_secs =
            decode::count(&value, "heartbeat_secs").map_err(|e| decode::error(what, e))?;
        if self.heartbeat_timeout_ms.is_none() {
            let timeout = heartbeat_secs as f64 * 2000.0 + 5000.0;
            self.conn.set_heartbeat_timeout(Some(timeout));
        }
        Ok(())
    }
}

impl Handler for Feed {
    fn on_message(self: Rc<Self>, message: Message) {
        let result = match message.name.as_str() {
            event_names::CONNECTED => self.on_connected(&message),
            event_names::HEARTBEAT => Ok(()),
            event_names::RESYNC => {
                // The log no longer reaches back to us: start over from a snapshot.
                self.conn.stop();
                self.load(true);
                Ok(())
            }
            _ => self.apply(&message),
        };
        if let Err(error) = result {
            js::warn(&format!("tidings: {error}"));
            self.conn.report(error);
        }
    }

    fn on_status(self: Rc<Self>, _status: ConnectionStatus) {
        self.publish_status();
    }
}

impl Lifecycle for Feed {
    fn lazy(&self) -> &Lazy<Self> {
        &self.lazy
    }

    fn wake(self: &Rc<Self>) {
        if let Some(last_event_id) = self.initial.take() {
            // The replica already holds it (see `new`).
            self.loaded.set(true);
            self.conn.set_last_event_id(Some(last_event_id.to_string()));
            self.conn.start();
            self.load_lists();
        } else if self.loaded.get() {
            let last = self.replica.borrow().last_applied();
            self.conn.set_last_event_id(Some(last.to_string()));
            self.conn.start();
        } else {
            self.load(false);
        }
        self.publish_status();
    }

    fn sleep(self: &Rc<Self>) {
        self.cancel_load();
        self.conn.stop();
        self.publish_status();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.cancel_load();
    }
}

async fn fetch_snapshot(http: &http::Client, path: &str) -> Result<Snapshot, ClientError> {
    // Todos first, then lists: the lists are then at least as new as the todos, and list
    // events the stream replays on top are merged idempotently.
    let value = http.send("GET", path, None).await?;
    let (todos, last_event_id) = todos_snapshot(path, &value)?;
    let lists_value = http.send("GET", "/api/lists", None).await?;
    let lists = items("/api/lists", &js::get(&lists_value, "lists"))?;
    Ok(Snapshot { todos, lists, last_event_id })
}
