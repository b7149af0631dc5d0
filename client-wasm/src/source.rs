//! A `web_sys::EventSource` that owns its listeners: dropping it closes the connection and
//! removes every listener (gloo-style), so nothing outlives it.

use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{Event, EventSource, EventSourceInit, MessageEvent};

use crate::resources::Tracked;
use crate::status::ClientError;

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

/// The browser's `EventSource.readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// Connecting, or reconnecting by itself.
    Connecting,
    /// Open.
    Open,
    /// Given up for good (HTTP error, wrong content type, `204`): needs a new EventSource.
    Closed,
}

/// An open `EventSource` and the listeners registered on it.
pub struct Source {
    es: EventSource,
    listeners: Vec<Tracked<EventListener>>,
    _alive: Tracked<()>,
}

impl Source {
    /// Open `url`.
    pub fn open(url: &str, with_credentials: bool) -> Result<Self, ClientError> {
        let init = EventSourceInit::new();
        init.set_with_credentials(with_credentials);
        let es = EventSource::new_with_event_source_init_dict(url, &init).map_err(|e| {
            ClientError::InvalidInput(format!(
                "cannot open an EventSource on `{url}`: {}",
                crate::js::describe(&e)
            ))
        })?;
        Ok(Source { es, listeners: Vec::new(), _alive: Tracked::new(()) })
    }

    /// Call `f` with every message named `name`.
    pub fn on_message(&mut self, name: &str, f: impl Fn(Message) + 'static) {
        let owned = name.to_owned();
        let listener = EventListener::new(&self.es, owned.clone(), move |event: &Event| {
            let Some(event) = event.dyn_ref::<MessageEvent>() else { return };
            f(Message {
                name: owned.clone(),
                data: event.data().as_string().unwrap_or_default(),
                last_event_id: event.last_event_id(),
            });
        });
        self.listeners.push(Tracked::new(listener));
    }

    /// Call `f` on the `open` event.
    pub fn on_open(&mut self, f: impl Fn() + 'static) {
        let listener = EventListener::new(&self.es, "open", move |_| f());
        self.listeners.push(Tracked::new(listener));
    }

    /// Call `f` on the `error` event (a lost connection or one the browser gave up on).
    pub fn on_error(&mut self, f: impl Fn() + 'static) {
        let listener = EventListener::new(&self.es, "error", move |_| f());
        self.listeners.push(Tracked::new(listener));
    }

    /// The current ready state.
    pub fn ready_state(&self) -> ReadyState {
        match self.es.ready_state() {
            EventSource::CONNECTING => ReadyState::Connecting,
            EventSource::OPEN => ReadyState::Open,
            _ => ReadyState::Closed,
        }
    }

    /// The URL this source was opened on.
    pub fn url(&self) -> String {
        self.es.url()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.es.close();
        // `listeners` drop next: each removes itself from the EventSource.
    }
}
