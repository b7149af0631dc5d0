//! `TodoFeed`: the live todo list of one or more lists, as Svelte stores.
//!
//! It loads a snapshot (or starts from `initial`) and applies each change its [`Session`]
//! delivers; the session decides which changes those are (once each, in order, from its own
//! stream or the leading tab). `resync` reloads the snapshot.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use tidings_protocol::{List, Todo, TodoEvent};
use wasm_bindgen::JsValue;
use web_sys::AbortController;

use crate::decode;
use crate::http;
use crate::js;
use crate::live::{Lazy, Lifecycle};
use crate::options::Options;
use crate::replica::{Effect, Replica};
use crate::retry::Retry;
use crate::session::{self, Session, Sink};
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
fn items<T: decode::FromJs>(what: &str, array: &JsValue) -> Result<Vec<(T, JsValue)>, ClientError> {
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
    error: Option<ClientError>,
    /// A reload after `resync` (the feed was live before).
    reload: bool,
}

/// The shared state behind a `TodoFeed` handle: the replica and its stores over a
/// [`Session`], plus the snapshot loads the session asks for.
pub struct Feed {
    lazy: Lazy<Feed>,
    session: Session,
    http: http::Client,
    lists: Option<Vec<String>>,
    replica: RefCell<Replica<JsValue>>,
    /// The `initial` snapshot's id, until the first wake starts the session there.
    initial: Cell<Option<u64>>,
    /// Snapshot loads: one retry loop, with the stream's backoff.
    retry: Retry,
    loading: RefCell<Option<Loading>>,
    /// Why loading stopped for good (until the next wake): the lists do not exist.
    failed: RefCell<Option<ClientError>>,
    load_generation: Cell<u64>,
    load_abort: RefCell<Option<AbortController>>,
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
        let initial = match &parsed.initial {
            v if v.is_undefined() => None,
            v => Some(
                todos_snapshot("initial", v).map_err(|e| ClientError::InvalidInput(e.message()))?,
            ),
        };
        let base = base_url.trim_end_matches('/').to_owned();
        let lists = parsed.lists.clone();
        let config = session::Config {
            base: base.clone(),
            lists: lists.clone(),
            with_credentials: parsed.with_credentials,
            access_token: parsed.access_token.clone(),
            backoff: parsed.backoff,
            heartbeat_timeout_ms: parsed.heartbeat_timeout_ms,
            share: parsed.share_connection,
        };
        let http =
            http::Client::new(&base, &parsed.headers, parsed.with_credentials, parsed.access_token);
        Ok(Rc::new_cyclic(|weak: &Weak<Feed>| {
            let sink: Weak<dyn Sink> = weak.clone();
            let lazy = Lazy::new(weak.clone());
            let empty = js::frozen_array(std::iter::empty());
            let mut replica = Replica::new(lists.clone());
            let todos = match &initial {
                Some((todos, _)) => {
                    // Show the initial list at once, even before anything subscribes.
                    replica.reset(todos.clone());
                    js::frozen_array(replica.todos().iter().map(|(_, v)| v))
                }
                None => empty.clone(),
            };
            let session = Session::new(config, sink);
            let status =
                ConnectionStatus { state: ConnectionState::Connecting, ..session.status() };
            Feed {
                todos: lazy.store(&todos),
                list_store: lazy.store(&empty),
                status: lazy.store(&js::status(&status, None)),
                events: lazy.store(&JsValue::NULL),
                lazy,
                session,
                http,
                lists,
                replica: RefCell::new(replica),
                initial: Cell::new(initial.as_ref().map(|(_, id)| *id)),
                retry: Retry::new(parsed.backoff),
                loading: RefCell::new(None),
                failed: RefCell::new(None),
                load_generation: Cell::new(0),
                load_abort: RefCell::new(None),
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

    /// The id of the last change applied (or of the snapshot).
    pub fn last_event_id(&self) -> u64 {
        self.session.cursor().unwrap_or(0)
    }

    /// Stop for good.
    pub fn close(self: &Rc<Self>) {
        self.cancel_load();
        self.session.close();
        self.lazy.close();
        self.publish_status();
    }

    fn snapshot_path(&self) -> String {
        match self.lists.as_deref() {
            Some([one]) => ["/api/lists/", &urls::encode(one), "/todos"].concat(),
            Some(many) => ["/api/todos", &urls::list_query(many)].concat(),
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

    /// The status store's value: the session's, or the snapshot load's while loading.
    fn publish_status(&self) {
        let mut status = self.session.status();
        if let Some(loading) = self.loading.borrow().as_ref() {
            let attempt = self.retry.attempt();
            status.state = if attempt == 0 && !loading.reload {
                ConnectionState::Connecting
            } else {
                ConnectionState::Reconnecting
            };
            status.attempt = attempt;
            status.error = loading.error.clone();
        } else if let Some(error) = self.failed.borrow().as_ref() {
            status.state = ConnectionState::Closed;
            status.error = Some(error.clone());
        } else if self.lazy.is_closed() {
            status.state = ConnectionState::Closed;
        }
        self.status.set(&js::status(&status, None));
    }

    fn cancel_load(&self) {
        self.load_generation.set(self.load_generation.get() + 1);
        self.retry.cancel();
        if let Some(abort) = self.load_abort.borrow_mut().take() {
            abort.abort();
        }
        self.loading.borrow_mut().take();
    }

    /// Fetch the snapshot (todos, then lists) and install it in the session, which keeps what
    /// arrives meanwhile. Retries until it succeeds or the feed sleeps.
    fn load(self: &Rc<Self>, reload: bool) {
        self.cancel_load();
        self.retry.reset();
        self.failed.borrow_mut().take();
        self.session.begin_load();
        *self.loading.borrow_mut() = Some(Loading { reload, ..Loading::default() });
        self.publish_status();
        self.load_attempt();
    }

    fn load_attempt(self: &Rc<Self>) {
        let generation = self.load_generation.get();
        let abort = AbortController::new().ok();
        *self.load_abort.borrow_mut() = abort.clone();
        let weak = Rc::downgrade(self);
        let http = self.http.clone();
        let path = self.snapshot_path();
        wasm_bindgen_futures::spawn_local(async move {
            let signal = abort.map(|a| a.signal());
            let result = fetch_snapshot(&http, &path, signal.as_ref()).await;
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
            self.session.stop();
            self.publish_status();
            self.load_lists();
            return;
        }
        self.retry.failed();
        self.retry.back_off_for(&error);
        if let Some(loading) = self.loading.borrow_mut().as_mut() {
            loading.error = Some(error);
        }
        self.publish_status();
        let weak = Rc::downgrade(self);
        let generation = self.load_generation.get();
        self.retry.schedule(None, move || {
            if let Some(feed) = weak.upgrade() {
                if feed.load_generation.get() == generation {
                    feed.load_attempt();
                }
            }
        });
    }

    fn install(self: &Rc<Self>, snapshot: Snapshot) {
        let lists_changed = {
            let mut replica = self.replica.borrow_mut();
            replica.reset(snapshot.todos);
            replica.merge_lists(snapshot.lists)
        };
        self.loading.borrow_mut().take();
        self.retry.reset();
        self.publish_todos();
        if lists_changed {
            self.publish_lists();
        }
        // Applies what arrived while loading (publishing as it goes), then streams.
        self.session.install(snapshot.last_event_id);
        self.publish_status();
    }

    /// Lists, when the todos came from `initial` (which has none). Aborted like a load.
    fn load_lists(self: &Rc<Self>) {
        let abort = AbortController::new().ok();
        *self.load_abort.borrow_mut() = abort.clone();
        let generation = self.load_generation.get();
        let weak = Rc::downgrade(self);
        let http = self.http.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let signal = abort.map(|a| a.signal());
            let result = http.send("GET", "/api/lists", None, signal.as_ref()).await;
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
}

impl Sink for Feed {
    fn change(self: Rc<Self>, _id: u64, event: TodoEvent, value: JsValue) {
        let effect = self.replica.borrow_mut().apply(&event, || {
            let key = match event {
                TodoEvent::ListCreated { .. } | TodoEvent::ListShared { .. } => "list",
                _ => "todo",
            };
            js::freeze(js::get(&value, key))
        });
        match effect {
            Effect::Todos => self.publish_todos(),
            Effect::Lists => self.publish_lists(),
            Effect::ListsAndTodos => {
                self.publish_lists();
                self.publish_todos();
            }
            Effect::None => {}
        }
        self.events.set(&js::freeze(value));
    }

    fn resync(self: Rc<Self>, _last_event_id: u64) {
        // The changes since our snapshot cannot be had: start over from a new one.
        self.load(true);
    }

    fn status(self: Rc<Self>) {
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
            self.session.install(last_event_id);
            self.session.start();
            self.load_lists();
        } else if self.session.cursor().is_some() && !self.session.is_loading() {
            self.session.start();
        } else {
            // Listen first, then read the snapshot: see `session`'s module docs for why
            // this order closes every gap.
            self.session.begin_load();
            self.session.start();
            self.load(false);
        }
        self.publish_status();
    }

    fn sleep(self: &Rc<Self>) {
        self.cancel_load();
        self.session.stop();
        self.publish_status();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.cancel_load();
    }
}

async fn fetch_snapshot(
    http: &http::Client,
    path: &str,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<Snapshot, ClientError> {
    // Todos first, then lists: the lists are then at least as new as the todos, and list
    // events the stream replays on top are merged idempotently.
    let value = http.send("GET", path, None, signal).await?;
    let (todos, last_event_id) = todos_snapshot(path, &value)?;
    let lists_value = http.send("GET", "/api/lists", None, signal).await?;
    let lists = items("/api/lists", &js::get(&lists_value, "lists"))?;
    Ok(Snapshot { todos, lists, last_event_id })
}
