//! A reconnecting SSE connection.
//!
//! * While the browser's own retry works (a dropped connection: `readyState` goes back to
//!   `CONNECTING`), it is left to it: it resends `Last-Event-ID` by itself.
//! * When the browser gives up (`CLOSED`: HTTP error, wrong content type, `204`), a probe
//!   request learns why, then a new `EventSource` is created after the [`Retry`] delay
//!   (exponential, jittered, capped), resuming from the last id (`last_event_id` query
//!   parameter). `204` stops; `401`/`403` jump to the cap; `Retry-After` is honoured.
//! * A watchdog reconnects a connection that has been silent for longer than the heartbeat
//!   timeout (a dead TCP connection can look open for minutes).
//! * `online`, `pageshow` and a tab becoming visible retry at once when the connection is
//!   down.
//! * The attempt counter resets after a connection has stayed open for [`STABLE_MS`].
//! * With an `accessToken` function, every EventSource gets a token of its own: the browser's
//!   own retry would resend the URL with the old token (the server ends a stream when its
//!   token expires), so the connection reconnects by itself instead, at once the first time
//!   after a stable connection. A 401 asks the function for a fresh token (`refresh`) and
//!   tries once more at once; a second 401 backs off like any refusal. The same takeover
//!   happens when the server announced its event log's epoch after the EventSource was
//!   made: the resume URL carries it from then on (`epoch`, beside `last_event_id`), so a
//!   server whose database was replaced answers `resync` instead of resuming at an id of
//!   another log.
//!
//! Everything registered (EventSource, listeners, timers, in-flight probe) is owned here and
//! released by [`Connection::stop`], [`Connection::close`] or drop. No borrow is held while
//! calling the [`Handler`], which may call back into the connection (even close it).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, VisibilityState};

use crate::backoff::Backoff;
use crate::http;
use crate::resources::Tracked;
use crate::retry::Retry;
use crate::source::{Message, ReadyState, Source};
use crate::status::{ClientError, ConnectionState, ConnectionStatus};
use crate::token::AccessToken;
use crate::urls::with_query;

/// How long a connection must stay open before the attempt counter starts over.
pub const STABLE_MS: u32 = 5_000;

/// What a connection tells its owner.
pub trait Handler {
    /// A message arrived (any of the listened-for names).
    fn on_message(self: Rc<Self>, message: Message);
    /// The status changed.
    fn on_status(self: Rc<Self>, status: ConnectionStatus);
}

/// Static settings of a connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// The stream URL, without resume parameter.
    pub url: String,
    /// Send cookies cross-origin.
    pub with_credentials: bool,
    /// Sent as the `access_token` query parameter (EventSource cannot send headers).
    pub access_token: Option<AccessToken>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which the connection counts as dead; `None` disables the watchdog.
    pub heartbeat_timeout_ms: Option<f64>,
    /// Event names to listen for.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started, or stopped for lack of subscribers.
    Idle,
    /// An EventSource exists and is not open (first connect or the browser's own retry).
    Connecting,
    Open,
    /// No EventSource; a retry is scheduled (or a probe is finding out why).
    Waiting,
    /// Closed for good.
    Closed,
}

struct State {
    config: Config,
    phase: Phase,
    retry: Retry,
    ever_opened: bool,
    last_event_id: Option<String>,
    /// The event log's epoch `last_event_id` belongs to, when known.
    epoch: Option<String>,
    /// Whether the current EventSource's URL carries `epoch`.
    source_epoch: bool,
    /// The token of the current (or last) EventSource.
    token: Option<String>,
    /// The token function was asked for a fresh token after a 401, and no connection has
    /// opened since.
    refreshed: bool,
    error: Option<ClientError>,
    /// Bumped whenever the EventSource is replaced or dropped; callbacks of an older one
    /// are ignored.
    generation: u64,
    source: Option<Source>,
    watchdog: Option<Tracked<Timeout>>,
    stable: Option<Tracked<Timeout>>,
    probe: Option<AbortController>,
    window: Vec<Tracked<EventListener>>,
    last_activity: f64,
}

impl State {
    fn status(&self) -> ConnectionStatus {
        let state = match self.phase {
            Phase::Idle | Phase::Closed => ConnectionState::Closed,
            Phase::Open => ConnectionState::Open,
            Phase::Waiting => ConnectionState::Reconnecting,
            Phase::Connecting if self.retry.attempt() == 0 && !self.ever_opened => {
                ConnectionState::Connecting
            }
            Phase::Connecting => ConnectionState::Reconnecting,
        };
        ConnectionStatus {
            state,
            attempt: self.retry.attempt(),
            error: self.error.clone(),
            ..ConnectionStatus::default()
        }
    }

    fn url(&self) -> String {
        let mut url = self.config.url.clone();
        if let Some(id) = &self.last_event_id {
            url = with_query(&url, "last_event_id", id);
        }
        if let Some(epoch) = &self.epoch {
            url = with_query(&url, "epoch", epoch);
        }
        if let Some(token) = &self.token {
            url = with_query(&url, "access_token", token);
        }
        url
    }

    /// The token function, if tokens come from one.
    fn provider(&self) -> Option<AccessToken> {
        self.config.access_token.clone().filter(AccessToken::is_provider)
    }

    /// Drop the EventSource and every timer; callbacks already queued become stale.
    fn release(&mut self) {
        self.generation += 1;
        self.source = None;
        self.retry.cancel();
        self.watchdog = None;
        self.stable = None;
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
    }

    fn silent_for(&self) -> f64 {
        js_sys::Date::now() - self.last_activity
    }
}

struct Shared {
    handler: Weak<dyn Handler>,
    state: RefCell<State>,
}

/// A reconnecting SSE connection; see the module docs.
pub struct Connection {
    shared: Rc<Shared>,
}

impl Connection {
    /// A connection that opens on [`Connection::start`] and reports to `handler`.
    pub fn new(config: Config, handler: Weak<dyn Handler>) -> Self {
        let state = State {
            retry: Retry::new(config.backoff),
            token: config.access_token.as_ref().and_then(AccessToken::as_fixed),
            config,
            phase: Phase::Idle,
            ever_opened: false,
            last_event_id: None,
            epoch: None,
            source_epoch: false,
            refreshed: false,
            error: None,
            generation: 0,
            source: None,
            watchdog: None,
            stable: None,
            probe: None,
            window: Vec::new(),
            last_activity: 0.0,
        };
        Connection { shared: Rc::new(Shared { handler, state: RefCell::new(state) }) }
    }

    /// Open the connection if it is idle.
    pub fn start(&self) {
        let idle = self.shared.state.borrow().phase == Phase::Idle;
        if idle {
            self.shared.watch_window();
            self.shared.open(false);
        }
    }

    /// Release everything and go idle; [`Connection::start`] resumes from the last id.
    pub fn stop(&self) {
        self.shared.halt(Phase::Idle);
    }

    /// Release everything for good.
    pub fn close(&self) {
        self.shared.halt(Phase::Closed);
    }

    /// Whether [`Connection::close`] was called or the server said stop.
    pub fn is_closed(&self) -> bool {
        self.shared.state.borrow().phase == Phase::Closed
    }

    /// Whether the connection is doing anything (not idle or closed).
    pub fn is_running(&self) -> bool {
        !matches!(self.shared.state.borrow().phase, Phase::Idle | Phase::Closed)
    }

    /// The id the next connection resumes after.
    pub fn set_last_event_id(&self, id: Option<String>) {
        self.shared.state.borrow_mut().last_event_id = id;
    }

    /// The last event id seen (or set).
    pub fn last_event_id(&self) -> Option<String> {
        self.shared.state.borrow().last_event_id.clone()
    }

    /// The epoch of the event log the last event id belongs to, sent with it on reconnect.
    pub fn set_epoch(&self, epoch: Option<String>) {
        self.shared.state.borrow_mut().epoch = epoch;
    }

    /// The epoch set with [`Connection::set_epoch`].
    pub fn epoch(&self) -> Option<String> {
        self.shared.state.borrow().epoch.clone()
    }

    /// Change the watchdog's timeout (the server announces its heartbeat on connect).
    pub fn set_heartbeat_timeout(&self, timeout_ms: Option<f64>) {
        self.shared.state.borrow_mut().config.heartbeat_timeout_ms = timeout_ms;
        self.shared.arm_watchdog();
    }

    /// Also deliver messages named `name`, from now on and after every reconnect.
    pub fn listen(&self, name: &str) {
        let mut state = self.shared.state.borrow_mut();
        if state.config.names.iter().any(|n| n == name) {
            return;
        }
        state.config.names.push(name.to_owned());
        let generation = state.generation;
        if let Some(source) = state.source.as_mut() {
            Shared::listen_on(&self.shared, source, name, generation);
        }
    }

    /// Record a problem the owner found (a malformed event) in the status.
    pub fn report(&self, error: ClientError) {
        self.shared.state.borrow_mut().error = Some(error);
        self.shared.emit();
    }

    /// The current status.
    pub fn status(&self) -> ConnectionStatus {
        self.shared.state.borrow().status()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.halt(Phase::Closed);
    }
}

impl Shared {
    fn emit(&self) {
        let status = self.state.borrow().status();
        if let Some(handler) = self.handler.upgrade() {
            handler.on_status(status);
        }
    }

    fn halt(&self, phase: Phase) {
        {
            let mut state = self.state.borrow_mut();
            if state.phase == Phase::Closed || (state.phase == phase && state.source.is_none()) {
                return;
            }
            state.release();
            state.window.clear();
            state.phase = phase;
        }
        self.emit();
    }

    /// Connect now, resuming from the last id: with a token function, once it gave a token
    /// (`refresh`: after a 401), otherwise at once.
    fn open(self: &Rc<Self>, refresh: bool) {
        let pending = {
            let mut state = self.state.borrow_mut();
            if state.phase == Phase::Closed {
                return;
            }
            state.provider().map(|provider| {
                state.release();
                state.phase = Phase::Connecting;
                (provider, state.generation)
            })
        };
        let Some((provider, generation)) = pending else { return self.open_source() };
        self.emit();
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let token = provider.get(refresh).await;
            let Some(shared) = weak.upgrade() else { return };
            if !shared.current(generation) {
                return;
            }
            match token {
                Ok(token) => {
                    shared.state.borrow_mut().token = Some(token);
                    shared.open_source();
                }
                Err(error) => {
                    {
                        let mut state = shared.state.borrow_mut();
                        state.retry.failed();
                        state.retry.back_off_for(&error);
                        state.error = Some(error);
                        state.phase = Phase::Waiting;
                    }
                    shared.schedule_retry(None);
                }
            }
        });
    }

    /// Create a new EventSource now, resuming from the last id.
    fn open_source(self: &Rc<Self>) {
        let (url, with_credentials, names, generation) = {
            let mut state = self.state.borrow_mut();
            if state.phase == Phase::Closed {
                return;
            }
            state.release();
            state.phase = Phase::Connecting;
            state.last_activity = js_sys::Date::now();
            state.source_epoch = state.epoch.is_some();
            (
                state.url(),
                state.config.with_credentials,
                state.config.names.clone(),
                state.generation,
            )
        };
        let mut source = match Source::open(&url, with_credentials) {
            Ok(source) => source,
            Err(error) => {
                // An unusable URL will not get better by retrying.
                {
                    let mut state = self.state.borrow_mut();
                    state.error = Some(error);
                    state.phase = Phase::Closed;
                    state.window.clear();
                }
                self.emit();
                return;
            }
        };
        let weak = Rc::downgrade(self);
        source.on_open(move || {
            if let Some(shared) = weak.upgrade() {
                shared.on_open(generation);
            }
        });
        let weak = Rc::downgrade(self);
        source.on_error(move || {
            if let Some(shared) = weak.upgrade() {
                shared.on_error(generation);
            }
        });
        for name in &names {
            Shared::listen_on(self, &mut source, name, generation);
        }
        self.state.borrow_mut().source = Some(source);
        self.arm_watchdog();
        self.emit();
    }

    fn listen_on(self: &Rc<Self>, source: &mut Source, name: &str, generation: u64) {
        let weak = Rc::downgrade(self);
        source.on_message(name, move |message| {
            if let Some(shared) = weak.upgrade() {
                shared.on_message(generation, message);
            }
        });
    }

    fn current(&self, generation: u64) -> bool {
        self.state.borrow().generation == generation
    }

    fn on_open(self: &Rc<Self>, generation: u64) {
        {
            let mut state = self.state.borrow_mut();
            if state.generation != generation {
                return;
            }
            state.phase = Phase::Open;
            state.ever_opened = true;
            state.refreshed = false;
            state.error = None;
            state.last_activity = js_sys::Date::now();
            let weak = Rc::downgrade(self);
            state.stable = Some(Tracked::new(Timeout::new(STABLE_MS, move || {
                if let Some(shared) = weak.upgrade() {
                    if shared.current(generation) {
                        shared.state.borrow_mut().retry.reset();
                        shared.emit();
                    }
                }
            })));
        }
        self.emit();
    }

    fn on_message(&self, generation: u64, message: Message) {
        {
            let mut state = self.state.borrow_mut();
            if state.generation != generation {
                return;
            }
            state.last_activity = js_sys::Date::now();
            if !message.last_event_id.is_empty() {
                state.last_event_id = Some(message.last_event_id.clone());
            }
        }
        if let Some(handler) = self.handler.upgrade() {
            handler.on_message(message);
        }
    }

    fn on_error(self: &Rc<Self>, generation: u64) {
        let next = {
            let mut state = self.state.borrow_mut();
            if state.generation != generation {
                return;
            }
            let Some(ready) = state.source.as_ref().map(Source::ready_state) else { return };
            state.stable = None;
            state.retry.failed();
            // The browser would retry with this EventSource's URL: right, unless the token
            // comes from a function or the epoch became known since (module docs).
            let stale =
                state.provider().is_some() || (state.epoch.is_some() && !state.source_epoch);
            match ready {
                // The browser retries by itself and resends Last-Event-ID: let it.
                ReadyState::Connecting if !stale => {
                    state.phase = Phase::Connecting;
                    None
                }
                ReadyState::Connecting | ReadyState::Closed => {
                    state.generation += 1;
                    state.source = None;
                    state.watchdog = None;
                    state.phase = Phase::Waiting;
                    Some(ready == ReadyState::Closed)
                }
                ReadyState::Open => return,
            }
        };
        match next {
            Some(true) => self.probe(),
            // The first reconnect after a stable connection (a token's expiry) goes at once.
            Some(false) if self.state.borrow().retry.attempt() <= 1 => self.open(false),
            Some(false) => self.schedule_retry(None),
            None => {}
        }
        self.emit();
    }

    /// The browser gave up on the EventSource, which does not say why: ask the server with a
    /// plain request, then retry accordingly.
    fn probe(self: &Rc<Self>) {
        let (url, with_credentials, generation) = {
            let state = self.state.borrow();
            (state.url(), state.config.with_credentials, state.generation)
        };
        let Ok(controller) = AbortController::new() else {
            self.schedule_retry(None);
            return;
        };
        self.state.borrow_mut().probe = Some(controller.clone());
        let weak = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = http::probe_stream(&url, with_credentials, &controller).await;
            let Some(shared) = weak.upgrade() else { return };
            if !shared.current(generation) {
                return;
            }
            shared.state.borrow_mut().probe = None;
            shared.after_probe(outcome);
        });
    }

    fn after_probe(self: &Rc<Self>, outcome: http::ProbeOutcome) {
        use http::ProbeOutcome;
        let mut not_before_ms = None;
        {
            let mut state = self.state.borrow_mut();
            match outcome {
                // The token was refused: ask the function for a fresh one and try again at
                // once, one time.
                ProbeOutcome::Failed { error, .. }
                    if error.status() == Some(401)
                        && !state.refreshed
                        && state.provider().is_some() =>
                {
                    // The status says `unauthorized` only if the fresh token fails too.
                    state.refreshed = true;
                    drop(state);
                    self.open(true);
                    return;
                }
                ProbeOutcome::Stream => {}
                ProbeOutcome::Stop => {
                    state.error = Some(ClientError::StoppedByServer);
                    state.release();
                    state.window.clear();
                    state.phase = Phase::Closed;
                }
                ProbeOutcome::Failed { error, retry_after_ms } => {
                    state.retry.back_off_for(&error);
                    state.error = Some(error);
                    not_before_ms = retry_after_ms;
                }
            }
        }
        if self.state.borrow().phase == Phase::Closed {
            self.emit();
        } else {
            self.schedule_retry(not_before_ms);
        }
    }

    /// Open a new EventSource after the retry delay (at least `not_before_ms`).
    fn schedule_retry(self: &Rc<Self>, not_before_ms: Option<f64>) {
        {
            let mut state = self.state.borrow_mut();
            if state.phase == Phase::Closed || state.phase == Phase::Idle {
                return;
            }
            state.phase = Phase::Waiting;
            let weak = Rc::downgrade(self);
            let generation = state.generation;
            state.retry.schedule(not_before_ms, move || {
                if let Some(shared) = weak.upgrade() {
                    if shared.current(generation) {
                        shared.open(false);
                    }
                }
            });
        }
        self.emit();
    }

    /// (Re)arm the watchdog for the current EventSource.
    fn arm_watchdog(self: &Rc<Self>) {
        let mut state = self.state.borrow_mut();
        state.watchdog = None;
        let Some(timeout) = state.config.heartbeat_timeout_ms else { return };
        if state.source.is_none() || !timeout.is_finite() || timeout <= 0.0 {
            return;
        }
        let wait = (timeout - state.silent_for()).max(0.0);
        let weak = Rc::downgrade(self);
        let generation = state.generation;
        state.watchdog = Some(Tracked::new(Timeout::new(wait.ceil() as u32 + 1, move || {
            if let Some(shared) = weak.upgrade() {
                if shared.current(generation) {
                    shared.on_watchdog(timeout);
                }
            }
        })));
    }

    fn on_watchdog(self: &Rc<Self>, timeout: f64) {
        let dead = {
            let mut state = self.state.borrow_mut();
            let dead = state.silent_for() >= timeout;
            if dead {
                state.generation += 1;
                state.source = None;
                state.watchdog = None;
                state.stable = None;
                state.retry.failed();
                state.error = Some(ClientError::HeartbeatTimeout);
                state.phase = Phase::Waiting;
            }
            dead
        };
        if dead {
            self.schedule_retry(None);
        } else {
            self.arm_watchdog(); // there was activity: wait for the rest
        }
    }

    /// Retry now if the connection is down (called on `online`, `pageshow`, visible tab).
    fn wake(self: &Rc<Self>) {
        let down = {
            let state = self.state.borrow();
            let overdue = state
                .config
                .heartbeat_timeout_ms
                .is_some_and(|timeout| state.silent_for() >= timeout);
            match state.phase {
                Phase::Waiting => true,
                Phase::Connecting => state.retry.attempt() > 0 || overdue,
                Phase::Open => {
                    overdue
                        || state.source.as_ref().map(Source::ready_state)
                            == Some(ReadyState::Closed)
                }
                Phase::Idle | Phase::Closed => false,
            }
        };
        if down {
            self.open(false);
        }
    }

    /// Listen for the page events that mean "try again now".
    fn watch_window(self: &Rc<Self>) {
        let Some(window) = web_sys::window() else { return }; // workers, SSR: nothing to watch
        let mut listeners = Vec::new();
        for name in ["online", "pageshow"] {
            let weak = Rc::downgrade(self);
            listeners.push(Tracked::new(EventListener::new(&window, name, move |_| {
                if let Some(shared) = weak.upgrade() {
                    shared.wake();
                }
            })));
        }
        if let Some(document) = window.document() {
            let weak = Rc::downgrade(self);
            let doc: JsValue = document.clone().into();
            listeners.push(Tracked::new(EventListener::new(
                &document,
                "visibilitychange",
                move |_| {
                    let visible = doc
                        .dyn_ref::<web_sys::Document>()
                        .is_some_and(|d| d.visibility_state() == VisibilityState::Visible);
                    if let (true, Some(shared)) = (visible, weak.upgrade()) {
                        shared.wake();
                    }
                },
            )));
        }
        self.state.borrow_mut().window = listeners;
    }
}
