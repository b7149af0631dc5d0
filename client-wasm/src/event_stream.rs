//! `EventStream`: any SSE endpoint, with the same reconnection, as stores of parsed JSON per
//! event name.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use wasm_bindgen::JsValue;

use crate::connection::{self, Connection, Handler, Message};
use crate::js;
use crate::live::{Lazy, Lifecycle};
use crate::options::Options;
use crate::status::{ClientError, ConnectionStatus};
use crate::store::LiveStore;

/// The shared state behind an `EventStream` handle.
pub struct Generic {
    lazy: Lazy<Generic>,
    conn: Connection,
    /// The connection status.
    pub status: LiveStore,
    selected: RefCell<Vec<(String, LiveStore)>>,
}

impl Generic {
    /// A stream on `url`, idle until its first subscriber.
    pub fn new(url: &str, options: &JsValue) -> Result<Rc<Generic>, ClientError> {
        let options = Options::from_js(options)?;
        let config = connection::Config {
            url: url.to_owned(),
            with_credentials: options.with_credentials,
            access_token: options.access_token,
            backoff: options.backoff,
            heartbeat_timeout_ms: options.heartbeat_timeout_ms,
            names: Vec::new(),
        };
        Ok(Rc::new_cyclic(|weak: &Weak<Generic>| {
            let handler: Weak<dyn Handler> = weak.clone();
            let lazy = Lazy::new(weak.clone());
            Generic {
                status: lazy.store(&js::status(&ConnectionStatus::default(), None)),
                lazy,
                conn: Connection::new(config, handler),
                selected: RefCell::new(Vec::new()),
            }
        }))
    }

    /// The store of event `name`'s parsed data (`null` until the first one).
    pub fn select(&self, name: &str) -> LiveStore {
        if let Some((_, store)) = self.selected.borrow().iter().find(|(n, _)| n == name) {
            return store.clone();
        }
        let store = self.lazy.store(&JsValue::NULL);
        self.selected.borrow_mut().push((name.to_owned(), store.clone()));
        self.conn.listen(name);
        store
    }

    /// The last event id received.
    pub fn last_event_id(&self) -> Option<String> {
        self.conn.last_event_id()
    }

    /// Stop for good.
    pub fn close(&self) {
        self.conn.close();
        self.lazy.close();
    }
}

impl Handler for Generic {
    fn on_message(self: Rc<Self>, message: Message) {
        let store =
            self.selected.borrow().iter().find(|(n, _)| *n == message.name).map(|(_, s)| s.clone());
        let Some(store) = store else { return };
        match js_sys::JSON::parse(&message.data) {
            Ok(value) => store.set(&js::freeze(value)),
            Err(e) => {
                let error = ClientError::Decode {
                    what: message.name.clone(),
                    message: ["not JSON: ", &js::describe(&e)].concat(),
                };
                js::warn(&["tidings: ", &error.message()].concat());
                self.conn.report(error);
            }
        }
    }

    fn on_status(self: Rc<Self>, status: ConnectionStatus) {
        let id = self.conn.last_event_id();
        self.status.set(&js::status(&status, id.as_deref()));
    }
}

impl Lifecycle for Generic {
    fn lazy(&self) -> &Lazy<Self> {
        &self.lazy
    }

    fn wake(self: &Rc<Self>) {
        self.conn.start();
    }

    fn sleep(self: &Rc<Self>) {
        self.conn.stop();
    }
}
