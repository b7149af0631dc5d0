//! The session layer: the tidings stream protocol, once, under every binding. `TodoFeed`
//! ([`crate::feed`]), [`crate::TodoStream`] and the tab relay ([`crate::relay`]) are thin
//! layers over a [`Session`], which owns:
//!
//! * the stream URL and the event names (every change type the protocol lists in
//!   `event_names::CHANGES`, plus `connected`, `heartbeat`, `resync`, `presence`);
//! * `connected`, decoded as the protocol's [`Connected`]: the heartbeat watchdog's timeout
//!   (twice the announced interval plus five seconds, unless the user set one). A new field
//!   of `connected` is read in `Shared::on_connected`, and only there;
//! * event ids: parsed once, `u64` from here on;
//! * the cursor, and what becomes of each change: applied, skipped or a gap, as the chain
//!   rule ([`crate::chain`]) judges it;
//! * where changes come from: the tab's own reconnecting [`Connection`], or the tab that
//!   leads (`shareConnection`, on by default for `TodoFeed`);
//! * `presence` (who is on a list), which is not a change: see below.
//!
//! # Filling gaps
//!
//! A follower that finds a gap (a frame with `prev > cursor`, or a leader whose announced
//! cursor is ahead of its own) asks the leader for everything after its cursor. Every tab
//! keeps its last applied frames as one unbroken chain (`js/relay.js`); the leader answers
//! with the frames after the asker's cursor if its chain reaches back that far, and otherwise
//! tells it to reload its snapshot. A reload always closes a gap, because of the order of
//! events in [`Session::start`]: a tab listens to the relay (or its own stream) *before* its
//! snapshot is read, and keeps every frame that arrives while it loads. The leader's chain
//! position when the tab began listening is an id that was committed before the snapshot was
//! read, so it is at or below the snapshot's `last_event_id`; every change after it reaches
//! the tab as a chained frame. After [`Session::install`], the kept frames at or below the
//! snapshot are duplicates and the first newer one has `prev` at or below it. (`resync`, the
//! server's "your resume point is gone", is the same: the stream continues after the id it
//! names, and the snapshot reloaded after it is at least that new.)
//!
//! # Handover
//!
//! When the leader closes, crashes or navigates, the browser releases its lock and the next
//! tab in the lock's queue starts its own stream at its own cursor: the newest id it applied,
//! normally the newest any tab applied, since every tab got the same frames. A tab that is
//! behind (it had not yet received the old leader's last frames) sees the new leader's first
//! frame or status with a cursor ahead of its own and gets the difference from the new
//! leader's chain, which holds what it applied as a follower. A leader that stopped running
//! (frozen, blocked) keeps its lock; the others take it (`js/relay.js` says when), and the old
//! leader follows once it runs again. Until it notices it may still relay: those frames obey
//! the chain rule like any other. Without Web Locks or `BroadcastChannel` (or with
//! `shareConnection: false`) a session has its own connection.
//!
//! # Whose token
//!
//! The leading tab connects with its own `accessToken`; the others only apply what it
//! relays. So tabs share a stream only when their tokens name the same user (`js/relay.js`
//! says how it tells). When an `accessToken` function gives no token to tell the user by,
//! the relay says [`codes::relay::ALONE`] and the session connects alone.
//!
//! # Presence
//!
//! A `presence` message says who is on a list now, not what happened: it has no id, is not
//! in the event log, and a stream is told the current presence when it opens. So it stays
//! outside everything above: it does not move the cursor or the stream's position, is not
//! held back while a snapshot loads (it does not depend on one), and travels between tabs
//! apart from the chain of frames ([`codes::relay::PRESENCE`]): a follower that missed one
//! loses nothing the next one does not restore. The stream repeats it only when it changes,
//! though, so a tab that joins the group later asks the leader for the last ones it received
//! ([`codes::relay::HELLO`], answered by `js/relay.js`).
//!
//! # Epochs
//!
//! Event ids mean something only within one event log, named by its epoch. The session
//! learns the epoch from the snapshot it installs, or from `connected` when it has none, and
//! from `resync` (which starts over in the server's log); the connection sends it with every
//! resume, so a server whose database was replaced answers `resync` rather than resuming at
//! an id of another log.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use tidings_protocol::{event_names, Connected, Presence, Resync, TodoEvent};
use wasm_bindgen::JsValue;

use crate::backoff::Backoff;
use crate::chain::{judge, Frame, Verdict};
use crate::codes;
use crate::connection::{self, Connection, Handler, Message};
use crate::decode;
use crate::js;
use crate::relay::Relay;
use crate::status::{ClientError, ConnectionRole, ConnectionState, ConnectionStatus};
use crate::urls;

/// Where and how a session connects.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server base URL without trailing slash (`""`: the page's origin).
    pub base: String,
    /// Lists to follow; `None`: every list.
    pub lists: Option<Vec<String>>,
    /// Send cookies cross-origin.
    pub with_credentials: bool,
    /// The `accessToken` option: a string, a function, or `undefined` (see
    /// [`crate::connection`]).
    pub access_token: JsValue,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which the stream counts as dead; `None`: from the server's heartbeat.
    pub heartbeat_timeout_ms: Option<f64>,
    /// Share one stream with the other tabs that follow the same server and lists.
    pub share: bool,
}

impl Config {
    /// The stream URL, without resume point.
    fn url(&self) -> String {
        let query = urls::list_query(self.lists.as_deref().unwrap_or(&[]));
        urls::join(&self.base, &["/api/events", &query].concat())
    }
}

/// What a session tells its owner. Called with no borrow held, so the owner may call back
/// into the session (even stop or close it).
pub trait Sink {
    /// A change this tab had not applied, in id order, with its parsed JSON data.
    fn change(self: Rc<Self>, id: u64, event: TodoEvent, data: JsValue);
    /// The changes after the cursor cannot be had from the stream: load a snapshot and
    /// [`Session::install`] it (changes arriving meanwhile wait). `last_event_id`: where the
    /// stream now continues (a snapshot at least this new closes the gap).
    fn resync(self: Rc<Self>, last_event_id: u64);
    /// The status changed; read it with [`Session::status`].
    fn status(self: Rc<Self>);
    /// Who is on a list now, with the message's parsed JSON data (module docs: presence).
    fn presence(self: Rc<Self>, presence: Presence, data: JsValue) {
        let _ = (presence, data);
    }
    /// A malformed event (already on the status and the console); the stream goes on.
    fn error(self: Rc<Self>, error: ClientError) {
        let _ = error;
    }
}

struct State {
    role: ConnectionRole,
    awake: bool,
    /// The id up to which this tab holds every change (`None`: nothing yet).
    cursor: Option<u64>,
    /// While the owner loads a snapshot: the frames that arrive meanwhile.
    loading: Option<Vec<Frame>>,
    /// The own stream's position: it is complete after this id.
    position: u64,
    /// Following: the leader's last announced status (as `js/relay.js` relays it) and cursor.
    remote: Option<JsValue>,
    remote_at: u64,
    /// Following: the last malformed event (a leader keeps it in its connection status).
    problem: Option<ClientError>,
    /// Whether the connection knows the epoch (module docs).
    epoch: bool,
}

struct Shared {
    sink: Weak<dyn Sink>,
    config: Config,
    conn: Connection,
    relay: RefCell<Option<Relay>>,
    state: RefCell<State>,
}

/// A session: the stream protocol, the cursor, and own or shared connection.
pub struct Session {
    shared: Rc<Shared>,
}

impl Session {
    /// An idle session reporting to `sink`. Before [`Session::start`], either
    /// [`Session::install`] a snapshot or [`Session::begin_load`]; with neither, the cursor
    /// starts where the server's stream starts (the newest id at connect).
    pub fn new(config: Config, sink: Weak<dyn Sink>) -> Session {
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let handler: Weak<dyn Handler> = weak.clone();
            let names = event_names::CHANGES
                .iter()
                .chain(&[
                    event_names::CONNECTED,
                    event_names::HEARTBEAT,
                    event_names::RESYNC,
                    event_names::PRESENCE,
                ])
                .map(|n| (*n).to_owned())
                .collect();
            let conn_config = connection::Config {
                url: config.url(),
                with_credentials: config.with_credentials,
                access_token: config.access_token.clone(),
                backoff: config.backoff,
                heartbeat_timeout_ms: config.heartbeat_timeout_ms,
                names,
            };
            Shared {
                sink,
                conn: Connection::new(conn_config, handler),
                relay: RefCell::new(None),
                state: RefCell::new(State {
                    role: if config.share { ConnectionRole::Follower } else { ConnectionRole::Own },
                    awake: false,
                    cursor: None,
                    loading: None,
                    position: 0,
                    remote: None,
                    remote_at: 0,
                    problem: None,
                    epoch: false,
                }),
                config,
            }
        });
        Session { shared }
    }

    /// Connect: join the other tabs (or open the own stream once there is a cursor).
    pub fn start(&self) {
        self.shared.start();
    }

    /// Disconnect (not for good): leave the other tabs, close the stream. The cursor stays.
    pub fn stop(&self) {
        self.shared.halt(false);
    }

    /// Disconnect for good.
    pub fn close(&self) {
        self.shared.halt(true);
    }

    /// The owner is loading a snapshot: keep arriving changes until [`Session::install`].
    pub fn begin_load(&self) {
        let mut state = self.shared.state.borrow_mut();
        if state.loading.is_none() {
            state.loading = Some(Vec::new());
        }
    }

    /// Whether a snapshot is awaited.
    pub fn is_loading(&self) -> bool {
        self.shared.state.borrow().loading.is_some()
    }

    /// The owner holds everything up to `last_event_id` (a snapshot of the event log
    /// `epoch`, when known): apply what arrived meanwhile on top, and stream from there.
    pub fn install(&self, last_event_id: u64, epoch: Option<String>) {
        if let Some(epoch) = epoch {
            self.shared.set_epoch(&epoch);
        }
        self.shared.install(last_event_id);
    }

    /// The id up to which this tab holds every change.
    pub fn cursor(&self) -> Option<u64> {
        self.shared.state.borrow().cursor
    }

    /// The status: the own connection's, or the leader's as it announced it.
    pub fn status(&self) -> ConnectionStatus {
        let mut status = js::read_status(&self.shared.status());
        let state = self.shared.state.borrow();
        status.role = state.role;
        status.last_event_id = state.cursor;
        status
    }

    /// [`Session::status`] as the `status` store shows it, not yet frozen: `{state,
    /// attempt, lastEventId, role, error?}`, `error` as the connection (or the leading tab)
    /// reported it: a `TidingsError`, or its plain `{code, message, status?}` form.
    pub fn status_js(&self) -> JsValue {
        self.shared.status()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.halt(true);
    }
}

impl Shared {
    fn sink(&self) -> Option<Rc<dyn Sink>> {
        self.sink.upgrade()
    }

    fn notify(&self) {
        if let Some(sink) = self.sink() {
            sink.status();
        }
    }

    /// The event log the cursor's ids belong to, from now on (module docs: epochs).
    fn set_epoch(&self, epoch: &str) {
        self.state.borrow_mut().epoch = true;
        self.conn.set_epoch(epoch);
    }

    fn start(self: &Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            if state.awake {
                return;
            }
            state.awake = true;
        }
        if self.config.share {
            let weak = Rc::downgrade(self);
            let relay = Relay::open(
                &self.config.base,
                self.config.lists.as_deref(),
                self.config.with_credentials,
                &self.config.access_token,
                move |m| {
                    if let Some(shared) = weak.upgrade() {
                        shared.on_relay(&m);
                    }
                },
            );
            let role = if relay.is_some() { ConnectionRole::Follower } else { ConnectionRole::Own };
            *self.relay.borrow_mut() = relay;
            self.state.borrow_mut().role = role;
        }
        self.stream_if_due();
        self.notify();
    }

    fn halt(&self, for_good: bool) {
        let relay = self.relay.borrow_mut().take();
        drop(relay);
        {
            let mut state = self.state.borrow_mut();
            state.awake = false;
            state.remote = None;
            if state.role == ConnectionRole::Leader {
                state.role = ConnectionRole::Follower;
            }
        }
        if for_good {
            self.conn.close();
        } else {
            self.conn.stop();
        }
    }

    /// Open the own stream when this tab should have one: awake, own or leading, and with a
    /// cursor to resume from.
    fn stream_if_due(&self) {
        let cursor = {
            let state = self.state.borrow();
            if !state.awake || state.role == ConnectionRole::Follower || state.loading.is_some() {
                return;
            }
            state.cursor
        };
        if !self.conn.is_running() {
            self.conn.set_last_event_id(cursor.map(urls::decimal));
            self.conn.start();
        }
    }

    fn install(&self, at: u64) {
        let kept = {
            let mut state = self.state.borrow_mut();
            state.cursor = Some(at);
            state.loading.take().unwrap_or_default()
        };
        for frame in kept {
            self.on_frame(frame);
        }
        self.stream_if_due();
        self.announce();
        self.check_remote();
        self.notify();
    }

    /// Stop applying until the owner installs a snapshot.
    fn reload(&self, last_event_id: u64) {
        self.state.borrow_mut().loading.get_or_insert_with(Vec::new);
        if let Some(sink) = self.sink() {
            sink.resync(last_event_id);
        }
    }

    /// A frame, as the chain rule ([`judge`]) says: applied, skipped, or a gap to fill.
    fn on_frame(&self, frame: Frame) {
        let cursor = {
            let mut state = self.state.borrow_mut();
            if let Some(kept) = state.loading.as_mut() {
                kept.push(frame);
                return;
            }
            let Some(cursor) = state.cursor else { return };
            let verdict = judge(cursor, &frame);
            if verdict == Verdict::Duplicate {
                return;
            }
            if verdict == Verdict::Gap {
                if state.role == ConnectionRole::Follower {
                    drop(state);
                    self.ask(cursor);
                } else {
                    // The own stream is ahead of the snapshot: reload, and keep the frame.
                    let after = frame.prev;
                    state.loading = Some(vec![frame]);
                    drop(state);
                    if let Some(sink) = self.sink() {
                        sink.resync(after);
                    }
                }
                return;
            }
            state.cursor = Some(frame.id);
            cursor
        };
        if let Some(relay) = self.relay.borrow().as_ref() {
            relay.applied(cursor, frame.id, &frame.name, &frame.data);
        }
        let bad = |e| decode::error(&frame.name, e);
        let decoded = decode::parse(&frame.data)
            .map_err(bad)
            .and_then(|value| Ok((decode::event(&frame.name, &value).map_err(bad)?, value)));
        match decoded {
            Ok((event, value)) => {
                if let Some(sink) = self.sink() {
                    sink.change(frame.id, event, value);
                }
            }
            Err(error) => self.problem(error),
        }
    }

    /// A `presence` message's JSON data, from the own stream or the leader (module docs:
    /// presence): kept by the relay (and sent to the other tabs when leading), then to the
    /// sink; malformed, a problem.
    fn on_presence(&self, data: &str) {
        let decoded =
            decode::parse(data).and_then(|value| Ok((decode::from_js::<Presence>(&value)?, value)));
        match decoded {
            Ok((presence, value)) => {
                if let Some(relay) = self.relay.borrow().as_ref() {
                    relay.presence(&presence.list_id, data);
                }
                if let Some(sink) = self.sink() {
                    sink.presence(presence, value);
                }
            }
            Err(e) => self.problem(decode::error(event_names::PRESENCE, e)),
        }
    }

    /// A malformed event: on the console, in the status, to the sink; the stream goes on.
    fn problem(&self, error: ClientError) {
        js::warn(&["tidings: ", &error.message()].concat());
        let own = {
            let mut state = self.state.borrow_mut();
            if state.role == ConnectionRole::Follower {
                state.problem = Some(error.clone());
            }
            state.role != ConnectionRole::Follower
        };
        if own {
            self.conn.report(error.clone()); // notifies through `on_status`
        } else {
            self.notify();
        }
        if let Some(sink) = self.sink() {
            sink.error(error);
        }
    }

    fn ask(&self, from: u64) {
        if let Some(relay) = self.relay.borrow().as_ref() {
            relay.need(from);
        }
    }

    /// Following: a leader whose cursor is ahead of ours has something we lack (or cannot
    /// prove otherwise): ask for it.
    fn check_remote(&self) {
        let behind = {
            let state = self.state.borrow();
            match state.cursor {
                Some(cursor)
                    if state.role == ConnectionRole::Follower
                        && state.loading.is_none()
                        && state.remote_at > cursor =>
                {
                    Some(cursor)
                }
                _ => None,
            }
        };
        if let Some(cursor) = behind {
            self.ask(cursor);
        }
    }

    /// Leading: tell the other tabs our cursor and status.
    fn announce(&self) {
        let (leading, at) = {
            let state = self.state.borrow();
            (state.role == ConnectionRole::Leader, state.cursor.unwrap_or(0))
        };
        if !leading {
            return;
        }
        let value = self.status();
        if let Some(relay) = self.relay.borrow().as_ref() {
            relay.status(at, &value);
        }
    }

    /// The status as a JavaScript object (see [`Session::status_js`]): built there, as the
    /// connection and the relay hand it over, rather than read into a [`ConnectionStatus`]
    /// and written out again (README "Package size").
    fn status(&self) -> JsValue {
        let state = self.state.borrow();
        let status = match state.role {
            ConnectionRole::Follower if state.awake => {
                let status = js::copy(state.remote.as_ref(), ConnectionState::Connecting);
                if let Some(problem) = &state.problem {
                    js::set(&status, "error", &js::error(problem));
                }
                status
            }
            ConnectionRole::Follower => js::copy(None, ConnectionState::Closed),
            ConnectionRole::Own | ConnectionRole::Leader => {
                let status = js::copy(Some(&self.conn.status()), ConnectionState::Closed);
                // Awake, waiting for a snapshot before it opens: on its way, not closed.
                if state.awake && !self.conn.is_running() && !self.conn.is_closed() {
                    js::set(&status, "state", &ConnectionState::Connecting.as_str().into());
                }
                status
            }
        };
        js::set(&status, "role", &state.role.as_str().into());
        let id = state.cursor.map_or(JsValue::NULL, |id| urls::decimal(id).into());
        js::set(&status, "lastEventId", &id);
        status.into()
    }

    // --- the own stream ---

    fn on_stream(self: &Rc<Self>, message: &Message) -> Result<(), ClientError> {
        let what = message.name.as_str();
        let bad = |e| decode::error(what, e);
        let id = || -> Result<u64, ClientError> {
            decode::event_id(&message.last_event_id).ok_or_else(|| ClientError::Decode {
                what: what.to_owned(),
                message: "the event id is not a number".into(),
            })
        };
        match what {
            event_names::HEARTBEAT => {}
            // No id: the position and the cursor stay where they are.
            event_names::PRESENCE => self.on_presence(&message.data),
            event_names::CONNECTED => {
                let connected = decode::parse(&message.data).and_then(|v| decode::from_js(&v));
                self.on_connected(id()?, &connected.map_err(bad)?);
            }
            event_names::RESYNC => {
                let resync: Resync =
                    decode::parse(&message.data).and_then(|v| decode::from_js(&v)).map_err(bad)?;
                self.state.borrow_mut().position = resync.last_event_id;
                // The stream goes on in the server's log, whatever the reason.
                if !resync.epoch.is_empty() {
                    self.set_epoch(&resync.epoch);
                }
                if let Some(relay) = self.relay.borrow().as_ref() {
                    relay.resync();
                }
                self.reload(resync.last_event_id);
            }
            _ => {
                let id = id()?;
                let prev = std::mem::replace(&mut self.state.borrow_mut().position, id);
                self.on_frame(Frame {
                    prev,
                    id,
                    name: message.name.clone(),
                    data: message.data.clone(),
                });
            }
        }
        Ok(())
    }

    /// The first message of every connection; `id` is where the stream resumes.
    fn on_connected(&self, id: u64, connected: &Connected) {
        if self.config.heartbeat_timeout_ms.is_none() {
            let timeout = connected.heartbeat_secs as f64 * 2000.0 + 5000.0;
            self.conn.set_heartbeat_timeout(Some(timeout));
        }
        // A stream that resumed in another epoch is followed by `resync`, which names the
        // epoch it goes on in; only a session without one takes the announced epoch.
        if !self.state.borrow().epoch && !connected.epoch.is_empty() {
            self.set_epoch(&connected.epoch);
        }
        let mut state = self.state.borrow_mut();
        state.position = id;
        if state.cursor.is_none() && state.loading.is_none() {
            state.cursor = Some(id); // no snapshot: follow from where the stream starts
        }
    }

    // --- the relay ---

    fn on_relay(self: &Rc<Self>, message: &JsValue) {
        let number = |key| js::get(message, key).as_f64().unwrap_or(0.0) as u64;
        match js::get(message, "t").as_string().as_deref() {
            Some(codes::relay::FRAME) => self.on_frame(Frame {
                prev: number("prev"),
                id: number("id"),
                name: js::get(message, "name").as_string().unwrap_or_default(),
                data: js::get(message, "data").as_string().unwrap_or_default(),
            }),
            Some(codes::relay::STATUS) => {
                {
                    let mut state = self.state.borrow_mut();
                    state.remote = Some(js::get(message, "s")).filter(JsValue::is_object);
                    state.remote_at = number("at");
                    state.problem = None;
                }
                self.check_remote();
                self.notify();
            }
            Some(codes::relay::PRESENCE) => {
                self.on_presence(&js::get(message, "data").as_string().unwrap_or_default());
            }
            Some(codes::relay::RELOAD) => {
                let cursor = self.state.borrow().cursor.unwrap_or(0);
                self.reload(cursor);
            }
            Some(codes::relay::LEAD) => self.set_leading(js::get(message, "on").is_truthy()),
            // No user to share as (the token function gave no token): connect alone.
            Some(codes::relay::ALONE) => {
                self.state.borrow_mut().role = ConnectionRole::Own;
                self.stream_if_due();
                self.notify();
            }
            _ => {}
        }
    }

    fn set_leading(&self, leading: bool) {
        {
            let mut state = self.state.borrow_mut();
            state.role = if leading { ConnectionRole::Leader } else { ConnectionRole::Follower };
            state.remote = None;
            state.problem = None;
        }
        if leading {
            self.stream_if_due();
            self.announce();
        } else {
            self.conn.stop();
        }
        self.notify();
    }
}

impl Handler for Shared {
    fn on_message(self: Rc<Self>, message: Message) {
        if let Err(error) = self.on_stream(&message) {
            self.problem(error);
        }
    }

    fn on_status(self: Rc<Self>) {
        self.announce();
        self.notify();
    }
}
