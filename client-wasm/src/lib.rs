//! `tidings-client`: live todo events over Server-Sent Events in the browser.
//!
//! For JavaScript (the npm package `tidings-client`):
//!
//! ```js
//! import init, { TodoFeed } from 'tidings-client';
//! await init();
//! const feed = new TodoFeed('http://127.0.0.1:8000', { lists: ['inbox'] });
//! feed.todos.subscribe((todos) => render(todos)); // a Svelte store: `$todos` works
//! await feed.create('Buy milk');
//! ```
//!
//! For Rust web apps: [`TodoStream`] delivers typed [`TodoEvent`]s to a callback with the same
//! reconnection (see [`rust_api`]).
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`backoff`], [`retry`] | reconnect delays; the one retry loop |
//! | [`replica`] | the client's copy of the todos and how events apply to it |
//! | [`status`] | connection status and errors |
//! | [`session`] | the stream protocol, the cursor, own or shared connection: under every binding |
//! | [`relay`] | one connection for all tabs: leader election and relaying (`js/relay.js`) |
//! | [`connection`] | the reconnecting EventSource (`js/connection.js`) |
//! | [`feed`], [`event_stream`] | the two JavaScript classes' state |
//! | [`live`], [`store`] | lazy start/stop and the Svelte store contract |
//! | [`http`], [`urls`], [`decode`], [`options`], [`js`] | fetch, URLs, decoding, options, JS values |

pub mod backoff;
pub mod connection;
pub mod decode;
pub mod event_stream;
pub mod feed;
pub mod http;
pub mod js;
pub mod live;
pub mod options;
pub mod relay;
pub mod replica;
pub mod resources;
pub mod retry;
pub mod rust_api;
pub mod session;
pub mod status;
pub mod store;
pub mod urls;

use std::rc::Rc;

// Single-threaded wasm (no `atomics`): talc's cell is sound there, and the allocator is a
// fraction of the size of std's dlmalloc.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use js_sys::Object;
use wasm_bindgen::prelude::*;

pub use backoff::Backoff;
pub use rust_api::{fetch_todos, StreamConfig, StreamItem, TodoStream};
pub use status::{ClientError, ConnectionState, ConnectionStatus, Role};
pub use tidings_protocol::{List, Todo, TodoEvent, TodosSnapshot};

// The wire types, generated from the protocol crate by build.rs.
#[wasm_bindgen(typescript_custom_section)]
const WIRE_TYPES: &'static str = include_str!(concat!(env!("OUT_DIR"), "/wire.d.ts"));

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** `T` with every property, element and nested value `readonly`: what `Object.freeze`d
 * store values are. */
export type Frozen<T> = T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

/** A todo, as the server sends it. Values from the stores are frozen, hence `readonly`. */
export type Todo = Frozen<wire.Todo>;

/** A todo list. `id` is a slug such as `inbox`. */
export type List = Frozen<wire.List>;

/** A change, as delivered on the stream (the `type` is the SSE event name). */
export type TodoEvent = Frozen<wire.TodoEvent>;

/** What `GET /api/lists/<list>/todos` returns; pass it as `initial` to start from it. */
export type TodosSnapshot = Frozen<wire.TodosSnapshot>;

/** `feed.update`'s changes: rename, toggle, move (`list_id`). */
export type TodoPatch = wire.TodoPatch;

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** How this tab gets its events: `'leader'` holds the connection shared by the tabs of this
 * origin that follow the same server and lists, and relays every event to them;
 * `'follower'` applies what the leader relays (its `state` is the leader's connection);
 * `'own'` has a connection of its own (`shareConnection: false`, or Web Locks or
 * `BroadcastChannel` missing). */
export type ConnectionRole = 'leader' | 'follower' | 'own';

/** An error: rejected promises and `ConnectionStatus.error` carry this shape. */
export interface TidingsError extends Error {
  /** Stable code: the server's (`invalid_title`, `not_found`, …) or the client's
   * (`network_error`, `decode_error`, `heartbeat_timeout`, `stopped_by_server`, …). */
  code: string;
  /** HTTP status, when the server answered. */
  status?: number;
}

export interface ConnectionStatus {
  state: ConnectionState;
  /** Failed attempts since the last stable connection. */
  attempt: number;
  /** The id up to which every change has been applied: where a reconnect resumes. */
  lastEventId: string | null;
  /** Whether this tab leads, follows or has its own connection. */
  role: ConnectionRole;
  /** The latest problem; cleared by a successful connection. */
  error?: TidingsError;
}

/** The Svelte store contract (`$store` works), plus `get()` for React's
 * `useSyncExternalStore(store.subscribe, store.get)`. */
export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
  get(): T;
}

export interface BackoffOptions {
  /** Ceiling of the first retry delay (default 1000). */
  initialMs: number;
  /** Largest delay (default 30000). */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor: number;
  /** Random share of each delay, 0..1 (default 1: full jitter). */
  jitter: number;
}

export interface StreamOptions {
  backoff?: Partial<BackoffOptions>;
  /** Silence after which the connection is treated as dead and reopened. */
  heartbeatTimeoutMs?: number;
  /** Send cookies cross-origin. */
  withCredentials?: boolean;
  /** Sent as the `access_token` query parameter (EventSource cannot send headers) and as
   * `Authorization: Bearer` on REST calls. */
  accessToken?: string;
}

export interface FeedOptions extends StreamOptions {
  /** Lists to follow (default: every list). */
  lists?: string[];
  /** A snapshot already loaded (e.g. by SvelteKit's `load`): shown at once, and the stream
   * resumes at its `last_event_id`. */
  initial?: TodosSnapshot;
  /** Extra headers for the REST calls. */
  headers?: Record<string, string>;
  /** Share one stream with the other tabs of this origin that follow the same server and
   * lists (default `true`): one tab leads and relays, REST stays in each tab. */
  shareConnection?: boolean;
}

export interface CreateOptions {
  /** The list (default: the first followed list, or `inbox`). */
  list?: string;
  /** A UUID of your choice; by default one is generated, so a retried create is idempotent. */
  id?: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `FeedOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "FeedOptions")]
    pub type FeedOptionsJs;
    /// `StreamOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "StreamOptions")]
    pub type StreamOptionsJs;
    /// `CreateOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "CreateOptions")]
    pub type CreateOptionsJs;
    /// `TodoPatch` in TypeScript.
    #[wasm_bindgen(typescript_type = "TodoPatch")]
    pub type TodoPatchJs;
    /// `Readable<readonly Todo[]>`.
    #[wasm_bindgen(typescript_type = "Readable<readonly Todo[]>")]
    pub type TodosStore;
    /// `Readable<readonly List[]>`.
    #[wasm_bindgen(typescript_type = "Readable<readonly List[]>")]
    pub type ListsStore;
    /// `Readable<ConnectionStatus>`.
    #[wasm_bindgen(typescript_type = "Readable<ConnectionStatus>")]
    pub type StatusStore;
    /// `Readable<TodoEvent | null>`.
    #[wasm_bindgen(typescript_type = "Readable<TodoEvent | null>")]
    pub type EventsStore;
    /// `Readable<unknown>`.
    #[wasm_bindgen(typescript_type = "Readable<unknown>")]
    pub type DataStore;
    /// `Promise<Todo>`.
    #[wasm_bindgen(typescript_type = "Promise<Todo>")]
    pub type TodoPromise;
    /// `Promise<List>`.
    #[wasm_bindgen(typescript_type = "Promise<List>")]
    pub type ListPromise;
    /// `Promise<void>`.
    #[wasm_bindgen(typescript_type = "Promise<void>")]
    pub type VoidPromise;
}

/// A `TypeError`-like `Error` with `code = "invalid_input"` for bad constructor arguments.
fn invalid(error: ClientError) -> JsValue {
    js::error(&error)
}

/// The live todos of one or more lists, with REST helpers. Stores open the stream when the
/// first subscriber arrives and close it a second after the last one leaves.
#[wasm_bindgen]
pub struct TodoFeed {
    inner: Rc<feed::Feed>,
}

#[wasm_bindgen]
impl TodoFeed {
    /// `new TodoFeed(baseUrl, options?)`. `baseUrl` is the server (`""`: this page's origin).
    #[wasm_bindgen(constructor)]
    pub fn new(base_url: &str, options: Option<FeedOptionsJs>) -> Result<TodoFeed, JsValue> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let inner = feed::Feed::new(base_url, &options).map_err(invalid)?;
        Ok(TodoFeed { inner })
    }

    /// The todos of the followed lists, in server order.
    #[wasm_bindgen(getter)]
    pub fn todos(&self) -> TodosStore {
        self.inner.todos.clone().unchecked_into()
    }

    /// Every list, oldest first.
    #[wasm_bindgen(getter)]
    pub fn lists(&self) -> ListsStore {
        self.inner.list_store.clone().unchecked_into()
    }

    /// The connection status.
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> StatusStore {
        self.inner.status.clone().unchecked_into()
    }

    /// The last change applied (`null` before the first).
    #[wasm_bindgen(getter)]
    pub fn events(&self) -> EventsStore {
        self.inner.events.clone().unchecked_into()
    }

    /// The id of the last change applied.
    #[wasm_bindgen(getter, js_name = lastEventId)]
    pub fn last_event_id(&self) -> f64 {
        self.inner.last_event_id() as f64
    }

    /// Create a todo. Resolves with it; rejects with a `TidingsError`. Network failures are
    /// retried twice (after 250 ms, then 1 s) with the same id, so the todo is created at
    /// most once.
    pub fn create(&self, title: String, options: Option<CreateOptionsJs>) -> TodoPromise {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let list =
            js::get(&options, "list").as_string().unwrap_or_else(|| self.inner.default_list());
        let id = js::get(&options, "id").as_string().unwrap_or_else(random_uuid);
        let body = Object::new();
        let _ = js_sys::Reflect::set(&body, &"title".into(), &title.into());
        let _ = js_sys::Reflect::set(&body, &"id".into(), &id.into());
        let path = ["/api/lists/", &urls::encode(&list), "/todos"].concat();
        self.inner.http().create(&path, &body).unchecked_into()
    }

    /// Rename, toggle or move a todo. Resolves with the updated todo.
    pub fn update(&self, id: String, patch: TodoPatchJs) -> TodoPromise {
        let path = ["/api/todos/", &urls::encode(&id)].concat();
        self.inner.http().request("PATCH", &path, Some(&patch), None).unchecked_into()
    }

    /// Delete a todo.
    pub fn remove(&self, id: String) -> VoidPromise {
        let path = ["/api/todos/", &urls::encode(&id)].concat();
        self.inner.http().request("DELETE", &path, None, None).unchecked_into()
    }

    /// Create a list (`id` defaults to a slug of the title). Resolves with the list.
    #[wasm_bindgen(js_name = createList)]
    pub fn create_list(&self, title: String, id: Option<String>) -> ListPromise {
        let body = Object::new();
        let _ = js_sys::Reflect::set(&body, &"title".into(), &title.into());
        if let Some(id) = id {
            let _ = js_sys::Reflect::set(&body, &"id".into(), &id.into());
        }
        self.inner.http().request("POST", "/api/lists", Some(&body), None).unchecked_into()
    }

    /// Close for good: the stream, every listener and timer, any pending retry. Stores keep
    /// their last value.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// Any Server-Sent Events endpoint, with the same reconnection, as stores of parsed JSON
/// per event name.
#[wasm_bindgen]
pub struct EventStream {
    inner: Rc<event_stream::Generic>,
}

#[wasm_bindgen]
impl EventStream {
    /// `new EventStream(url, options?)`.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: Option<StreamOptionsJs>) -> Result<EventStream, JsValue> {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        let inner = event_stream::Generic::new(url, &options).map_err(invalid)?;
        Ok(EventStream { inner })
    }

    /// The parsed JSON data of the latest event named `name` (`null` before the first).
    pub fn select(&self, name: &str) -> DataStore {
        self.inner.select(name).unchecked_into()
    }

    /// The connection status.
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> StatusStore {
        self.inner.status.clone().unchecked_into()
    }

    /// The last event id received.
    #[wasm_bindgen(getter, js_name = lastEventId)]
    pub fn last_event_id(&self) -> Option<String> {
        self.inner.last_event_id()
    }

    /// Close for good.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// How many browser resources (event sources, listeners, timers, closures, and the tab
/// relay's locks, channels and timers) the library holds right now. For leak tests.
#[wasm_bindgen(js_name = liveResources)]
pub fn live_resources() -> usize {
    resources::live() + relay::live()
}

/// A v4 UUID: `crypto.randomUUID()` where available (secure contexts), otherwise built from
/// `Math.random` (only used as an idempotency key).
fn random_uuid() -> String {
    let crypto = js::get(&js_sys::global(), "crypto");
    let random_uuid = js::get(&crypto, "randomUUID");
    if let Some(f) = random_uuid.dyn_ref::<js_sys::Function>() {
        if let Some(id) = f.call0(&crypto).ok().and_then(|v| v.as_string()) {
            return id;
        }
    }
    let mut bytes = [0u8; 16];
    for b in &mut bytes {
        *b = (js_sys::Math::random() * 256.0) as u8;
    }
    uuid_v4_from(bytes)
}

/// A version-4 UUID string from 16 random bytes.
fn uuid_v4_from(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // By hand rather than `format!`: padded hex and string slicing would pull std's
    // formatting and slice-panic paths into the package for this one fallback.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_bytes_make_a_version_4_uuid() {
        let id = super::uuid_v4_from([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = super::uuid_v4_from(core::array::from_fn(|i| i as u8 * 17));
        assert_eq!(id, "00112233-4455-4677-8899-aabbccddeeff");
    }
}
