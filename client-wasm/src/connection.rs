//! A reconnecting SSE connection: Rust's handle on `js/connection.js`, which documents what
//! it does (the browser's own retry, a probe when the browser gives up, backoff, the
//! heartbeat watchdog, tokens and the epoch on resume). An `EventSource`, its listeners,
//! timers and a probe request are a few lines of JavaScript and several kilobytes of wasm
//! (README "Package size").
//!
//! Everything the script registers is released by [`Connection::stop`], [`Connection::close`]
//! or drop, and counted in [`crate::resources::live`]. The [`Handler`] is called with no
//! borrow held, so it may call back into the connection (even close it).

use std::rc::Weak;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::backoff::Backoff;
use crate::status::ClientError;

#[wasm_bindgen(module = "/js/connection.js")]
extern "C" {
    #[wasm_bindgen(js_name = Connection)]
    type ConnectionJs;

    #[wasm_bindgen(constructor, js_class = "Connection")]
    fn new(
        url: &str,
        with_credentials: bool,
        token: &JsValue,
        heartbeat_ms: Option<f64>,
        names: &str,
        backoff: &[f64],
        on: &Function,
    ) -> ConnectionJs;

    #[wasm_bindgen(method, js_class = "Connection")]
    fn start(this: &ConnectionJs);
    #[wasm_bindgen(method, js_class = "Connection")]
    fn stop(this: &ConnectionJs);
    #[wasm_bindgen(method, js_class = "Connection")]
    fn close(this: &ConnectionJs);
    #[wasm_bindgen(method, js_class = "Connection")]
    fn running(this: &ConnectionJs) -> bool;
    #[wasm_bindgen(method, js_class = "Connection")]
    fn closed(this: &ConnectionJs) -> bool;
    #[wasm_bindgen(method, js_class = "Connection")]
    fn status(this: &ConnectionJs) -> JsValue;
    #[wasm_bindgen(method, js_class = "Connection", js_name = setHeartbeat)]
    fn set_heartbeat(this: &ConnectionJs, ms: Option<f64>);
    #[wasm_bindgen(method, js_class = "Connection")]
    fn listen(this: &ConnectionJs, name: &str);
    #[wasm_bindgen(method, js_class = "Connection")]
    fn report(this: &ConnectionJs, code: &str, message: &str, status: Option<u16>);
    #[wasm_bindgen(method, getter = lastEventId, js_class = "Connection")]
    fn last_event_id(this: &ConnectionJs) -> Option<String>;
    #[wasm_bindgen(method, setter = lastEventId, js_class = "Connection")]
    fn set_last_event_id(this: &ConnectionJs, id: Option<String>);
    #[wasm_bindgen(method, setter, js_class = "Connection")]
    fn set_epoch(this: &ConnectionJs, epoch: &str);
}

/// What a connection tells its owner.
pub trait Handler {
    /// A message arrived (any of the listened-for names).
    fn on_message(self: std::rc::Rc<Self>, message: Message);
    /// The status changed; read it with [`Connection::status`].
    fn on_status(self: std::rc::Rc<Self>);
}

/// One SSE message as the browser delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `event:` name (`message` when the server sent none).
    pub name: String,
    /// The `data:` payload.
    pub data: String,
    /// The browser's last event id after this message (empty if none was ever sent).
    pub last_event_id: String,
}

/// Static settings of a connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// The stream URL, without resume parameter.
    pub url: String,
    /// Send cookies cross-origin.
    pub with_credentials: bool,
    /// The `accessToken` option, sent as the `access_token` query parameter (EventSource
    /// cannot send headers): a string, a function called before each connect (`js/rest.js`
    /// says how), or `undefined`.
    pub access_token: JsValue,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which the connection counts as dead; `None` disables the watchdog.
    pub heartbeat_timeout_ms: Option<f64>,
    /// Event names to listen for.
    pub names: Vec<String>,
}

// Owned like any field: the script holds it as long as the connection exists, and never
// calls it once closed (so it is not counted in `live`).
type Callback = Closure<dyn Fn(JsValue, JsValue, JsValue)>;

/// A reconnecting SSE connection; see the module docs.
pub struct Connection {
    js: ConnectionJs,
    _on: Callback,
}

impl Connection {
    /// A connection that opens on [`Connection::start`] and reports to `handler`.
    pub fn new(config: Config, handler: Weak<dyn Handler>) -> Self {
        // `(name, data, lastEventId)` for a message, `(undefined, status)` for a status.
        let on = Closure::<dyn Fn(JsValue, JsValue, JsValue)>::new(
            move |name: JsValue, data: JsValue, id: JsValue| {
                let Some(handler) = handler.upgrade() else { return };
                match name.as_string() {
                    Some(name) => handler.on_message(Message {
                        name,
                        data: data.as_string().unwrap_or_default(),
                        last_event_id: id.as_string().unwrap_or_default(),
                    }),
                    None => handler.on_status(),
                }
            },
        );
        let js = ConnectionJs::new(
            &config.url,
            config.with_credentials,
            &config.access_token,
            config.heartbeat_timeout_ms,
            &config.names.join(" "),
            &config.backoff.numbers(),
            on.as_ref().unchecked_ref(),
        );
        Connection { js, _on: on }
    }

    /// Open the connection if it is idle.
    pub fn start(&self) {
        self.js.start();
    }

    /// Release everything and go idle; [`Connection::start`] resumes from the last id.
    pub fn stop(&self) {
        self.js.stop();
    }

    /// Release everything for good.
    pub fn close(&self) {
        self.js.close();
    }

    /// Whether [`Connection::close`] was called or the server said stop.
    pub fn is_closed(&self) -> bool {
        self.js.closed()
    }

    /// Whether the connection is doing anything (not idle or closed).
    pub fn is_running(&self) -> bool {
        self.js.running()
    }

    /// The id the next connection resumes after.
    pub fn set_last_event_id(&self, id: Option<String>) {
        self.js.set_last_event_id(id);
    }

    /// The last event id seen (or set).
    pub fn last_event_id(&self) -> Option<String> {
        self.js.last_event_id()
    }

    /// The epoch of the event log the last event id belongs to, sent with it on reconnect.
    pub fn set_epoch(&self, epoch: &str) {
        self.js.set_epoch(epoch);
    }

    /// Change the watchdog's timeout (the server announces its heartbeat on connect).
    pub fn set_heartbeat_timeout(&self, timeout_ms: Option<f64>) {
        self.js.set_heartbeat(timeout_ms);
    }

    /// Also deliver messages named `name`, from now on and after every reconnect.
    pub fn listen(&self, name: &str) {
        self.js.listen(name);
    }

    /// Record a problem the owner found (a malformed event) in the status.
    pub fn report(&self, error: ClientError) {
        self.js.report(error.code(), &error.message(), error.status());
    }

    /// The current status, a fresh `{state, attempt, error?}` object (`js::read_status`
    /// reads it); `error` is a `TidingsError` or its plain `{code, message, status?}` form.
    pub fn status(&self) -> JsValue {
        self.js.status()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.js.close();
        // The callbacks drop next: a closed connection never calls them again.
    }
}
