//! Options as JavaScript passes them: every field optional, partial objects allowed. Their
//! shapes are checked in `js/options.js` (a handful of `typeof`s there, kilobytes of wasm
//! here; README "Package size"), which throws an `invalid_input` `TidingsError` for a wrong
//! one; what only Rust knows is checked here: list ids ([`is_valid_list_id`], the server's own
//! rule), and backoff settings ([`Backoff::sanitized`]).

use tidings_protocol::is_valid_list_id;
use wasm_bindgen::prelude::*;

use crate::backoff::Backoff;
use crate::status::ClientError;

#[wasm_bindgen(module = "/js/options.js")]
extern "C" {
    /// What `readOptions` returns.
    type Read;

    #[wasm_bindgen(js_name = readOptions, catch)]
    fn read_options(value: &JsValue) -> Result<Read, JsValue>;

    #[wasm_bindgen(method, getter, structural)]
    fn lists(this: &Read) -> Option<Vec<String>>;
    #[wasm_bindgen(method, getter, structural)]
    fn backoff(this: &Read) -> Vec<f64>;
    #[wasm_bindgen(method, getter, structural)]
    fn heartbeat(this: &Read) -> Option<f64>;
    #[wasm_bindgen(method, getter, structural)]
    fn credentials(this: &Read) -> bool;
    #[wasm_bindgen(method, getter, structural)]
    fn token(this: &Read) -> Option<String>;
    #[wasm_bindgen(method, getter, structural)]
    fn headers(this: &Read) -> JsValue;
    #[wasm_bindgen(method, getter, structural)]
    fn share(this: &Read) -> bool;
    #[wasm_bindgen(method, getter, structural)]
    fn initial(this: &Read) -> JsValue;
}

/// Options shared by `TodoFeed` and `EventStream`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lists to follow (`TodoFeed` only); absent: every list.
    pub lists: Option<Vec<String>>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which a connection counts as dead. Absent: twice the server's
    /// announced heartbeat plus five seconds (`TodoFeed`), off (`EventStream`).
    pub heartbeat_timeout_ms: Option<f64>,
    /// Send cookies cross-origin (EventSource `withCredentials`, fetch `credentials`).
    pub with_credentials: bool,
    /// Sent as the `access_token` query parameter on the stream (EventSource cannot send
    /// headers) and as `Authorization: Bearer` on REST calls.
    pub access_token: Option<String>,
    /// Extra headers for REST calls: `[[name, value], …]`, as `js/rest.js` takes them.
    pub headers: JsValue,
    /// Share one stream with the other tabs of this origin that follow the same server and
    /// lists (`TodoFeed` only; default on).
    pub share_connection: bool,
    /// A snapshot already loaded (`TodoFeed` only; `undefined`: none).
    pub initial: JsValue,
}

fn invalid(message: &str) -> ClientError {
    ClientError::InvalidInput(message.to_owned())
}

impl Options {
    /// Read `value` (`undefined`/`null`: all defaults) and check it.
    pub fn from_js(value: &JsValue) -> Result<Self, ClientError> {
        let read = read_options(value).map_err(|e| crate::js::read_error(&e))?;
        let lists = read.lists();
        if lists.iter().flatten().any(|l| !is_valid_list_id(l)) {
            return Err(invalid(
                "`lists` holds something that is not a list id (a lowercase slug)",
            ));
        }
        let b = read.backoff();
        let at = |i: usize| b.get(i).copied().unwrap_or(f64::NAN);
        Ok(Options {
            lists,
            backoff: Backoff { initial_ms: at(0), max_ms: at(1), factor: at(2), jitter: at(3) }
                .sanitized(),
            heartbeat_timeout_ms: read.heartbeat(),
            with_credentials: read.credentials(),
            access_token: read.token(),
            headers: read.headers(),
            share_connection: read.share(),
            initial: read.initial(),
        })
    }
}
