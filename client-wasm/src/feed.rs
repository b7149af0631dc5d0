//! The Rust core of a `TodoFeed`: its replica of the todos and lists over a [`Session`],
//! which decides which changes those are (once each, in order, from its own stream or the
//! leading tab). The `TodoFeed` class around it is JavaScript (`js/feed.js`): the stores and
//! their laziness, the REST calls, the snapshot loads and their retries, the status it shows.
//! That is plumbing a few lines long in JavaScript and kilobytes of wasm (README "Package
//! size"); what stays here is what the protocol decides: decoding, the chain rule, the
//! server's order.
//!
//! The script drives it: [`FeedCore::snapshot`] puts a loaded (or `initial`) snapshot in
//! the replica ([`op::INSTALL`] starts the session there), [`FeedCore::start`] connects
//! with a `hook` function that hears every change (`hook(hook::CHANGE, effect, event)`,
//! `effect` a set of [`effect`] bits), every `resync` ([`hook::RESYNC`]), status change
//! ([`hook::STATUS`]) and `presence` message ([`hook::PRESENCE`]), codes of
//! [`crate::codes`]. The core holds the hook only while started, so a feed nobody listens to
//! can be garbage-collected. Presence is not in the replica: the script keeps the last one of
//! each list (`feed.presence`), since nothing is applied to it.
//!
//! Lists come and go (created, shared, unshared, deleted), so a lists snapshot replaces the
//! lists. That is exact because it happens only while the session holds back the changes
//! that arrive, and the session resumes at an id no newer than either snapshot: every change
//! after it is applied on top, and each change carries the whole state of its todo or list.
//! What a feed does when a list it follows goes away, or one is shared with its user, is the
//! script's (`js/feed.js`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::Function;
use tidings_protocol::{is_valid_list_id, List, Presence, Todo, TodoEvent};
use wasm_bindgen::prelude::*;

use crate::backoff::Backoff;
use crate::codes::{effect, hook, op};
use crate::decode::{self, FromJs};
use crate::js;
use crate::replica::{Effect, Replica};
use crate::session::{self, Session, Sink};
use crate::status::ClientError;

/// Decode a JSON array of `T`, keeping each element's (frozen) object.
fn items<T: FromJs>(what: &str, array: &JsValue) -> Result<Vec<(T, JsValue)>, ClientError> {
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

/// A `TodosSnapshot` as the replica takes it: each todo with its object, the id it is
/// current as of, and the event log that id belongs to.
type Todos = (Vec<(Todo, JsValue)>, u64, Option<String>);

/// Decode a `TodosSnapshot` JSON value, keeping each todo's object.
fn todos_snapshot(what: &str, value: &JsValue) -> Result<Todos, ClientError> {
    let last_event_id = js::get(value, "last_event_id")
        .as_f64()
        .filter(|id| id.is_finite() && *id >= 0.0)
        .ok_or_else(|| ClientError::Decode {
            what: what.into(),
            message: "`last_event_id` must be a non-negative number".into(),
        })? as u64;
    let todos = items(what, &js::get(value, "todos"))?;
    Ok((todos, last_event_id, js::get(value, "epoch").as_string()))
}

struct Inner {
    session: Session,
    replica: RefCell<Replica<JsValue>>,
    /// The script's hook, while started.
    hook: RefCell<Option<Function>>,
    /// The last snapshot's id and epoch, until [`op::INSTALL`] starts the session there.
    pending: RefCell<Option<(u64, Option<String>)>>,
}

impl Inner {
    fn call(&self, what: u32, effect: u32, event: &JsValue) {
        let hook = self.hook.borrow().clone();
        if let Some(hook) = hook {
            let _ = hook.call3(&JsValue::NULL, &what.into(), &effect.into(), event);
        }
    }
}

impl Sink for Inner {
    fn change(self: Rc<Self>, _id: u64, event: TodoEvent, value: JsValue) {
        // A renamed list comes without the role, which the list as shown keeps.
        let role = match &event {
            TodoEvent::ListUpdated { list } => self.replica.borrow().role(&list.id),
            _ => None,
        };
        let effect = self.replica.borrow_mut().apply(&event, || match event {
            TodoEvent::ListCreated { .. } | TodoEvent::ListShared { .. } => {
                js::freeze(js::get(&value, "list"))
            }
            TodoEvent::ListUpdated { .. } => {
                let list =
                    js_sys::Object::assign(&js_sys::Object::new(), &js::get(&value, "list").into());
                if let Some(role) = role {
                    js::set(&list, "role", &role.as_str().into());
                }
                js::freeze(list.into())
            }
            _ => js::freeze(js::get(&value, "todo")),
        });
        let bits = match effect {
            Effect::None => 0,
            Effect::Todos => effect::TODOS,
            Effect::Lists => effect::LISTS,
            Effect::ListsAndTodos => effect::TODOS | effect::LISTS,
        };
        self.call(hook::CHANGE, bits, &js::freeze(value));
    }

    fn resync(self: Rc<Self>, _last_event_id: u64) {
        // The changes since our snapshot cannot be had: start over from a new one.
        self.call(hook::RESYNC, 0, &JsValue::UNDEFINED);
    }

    fn status(self: Rc<Self>) {
        self.call(hook::STATUS, 0, &JsValue::UNDEFINED);
    }

    fn presence(self: Rc<Self>, _presence: Presence, data: JsValue) {
        // Decoded, so the script may trust its shape; it makes the store's frozen value.
        self.call(hook::PRESENCE, 0, &data);
    }
}

/// The core of one `TodoFeed` (see the module docs). Not part of the package's API.
#[wasm_bindgen(skip_typescript)]
pub struct FeedCore {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl FeedCore {
    /// A core on the server at `base` (no trailing slash) following `lists` (`None`: all),
    /// with the options `js/options.js` read (`backoff`: its four numbers, NaN for a default).
    #[wasm_bindgen(constructor)]
    pub fn new(
        base: String,
        lists: Option<Vec<String>>,
        with_credentials: bool,
        access_token: JsValue,
        backoff: Vec<f64>,
        heartbeat_timeout_ms: Option<f64>,
        share: bool,
    ) -> Result<FeedCore, JsValue> {
        if lists.iter().flatten().any(|l| !is_valid_list_id(l)) {
            return Err(js::error(&ClientError::InvalidInput(
                "`lists` holds something that is not a list id (a lowercase slug)".into(),
            )));
        }
        let config = session::Config {
            base,
            lists: lists.clone(),
            with_credentials,
            access_token,
            backoff: Backoff::from_numbers(&backoff),
            heartbeat_timeout_ms,
            share,
        };
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let sink: Weak<dyn Sink> = weak.clone();
            Inner {
                session: Session::new(config, sink),
                replica: RefCell::new(Replica::new(lists)),
                hook: RefCell::new(None),
                pending: RefCell::new(None),
            }
        });
        Ok(FeedCore { inner })
    }

    /// Put a snapshot in the replica: `todos` is a `TodosSnapshot` (`GET …/todos`, or the
    /// `initial` option), `lists` a `ListsSnapshot` that replaces the lists (`undefined`:
    /// the lists stay). The session starts at its id on the next [`op::INSTALL`].
    /// Whether the lists changed; throws a `decode_error` (`what`: where it came from),
    /// changing nothing.
    pub fn snapshot(&self, todos: &JsValue, lists: &JsValue, what: &str) -> Result<bool, JsValue> {
        let (todos, last_event_id, epoch) =
            todos_snapshot(what, todos).map_err(|e| js::error(&e))?;
        let lists = if lists.is_undefined() {
            None
        } else {
            Some(items::<List>("/api/lists", &js::get(lists, "lists")).map_err(|e| js::error(&e))?)
        };
        let mut replica = self.inner.replica.borrow_mut();
        replica.reset(todos);
        *self.inner.pending.borrow_mut() = Some((last_event_id, epoch));
        Ok(lists.is_some_and(|lists| replica.set_lists(lists)))
    }

    /// Replace the lists with those of a `ListsSnapshot`; whether they changed (a malformed
    /// one: no).
    #[wasm_bindgen(js_name = setLists)]
    pub fn set_lists(&self, lists: &JsValue) -> bool {
        match items::<List>("/api/lists", &js::get(lists, "lists")) {
            Ok(lists) => self.inner.replica.borrow_mut().set_lists(lists),
            Err(_) => false,
        }
    }

    /// One of the operations of [`op`], by its code; what it answers is said there.
    pub fn op(&self, code: u32) -> f64 {
        let inner = &self.inner;
        match code {
            op::BEGIN_LOAD => inner.session.begin_load(),
            op::INSTALL => {
                let pending = inner.pending.borrow_mut().take();
                if let Some((id, epoch)) = pending {
                    inner.session.install(id, epoch);
                }
            }
            op::IS_LOADING => return f64::from(u8::from(inner.session.is_loading())),
            op::CURSOR => return inner.session.cursor().map_or(-1.0, |id| id as f64),
            op::STOP => {
                inner.session.stop();
                inner.hook.borrow_mut().take();
            }
            op::CLOSE => {
                inner.session.close();
                inner.hook.borrow_mut().take();
            }
            _ => {}
        }
        0.0
    }

    /// Connect (join the other tabs, or open the own stream), telling `hook`.
    pub fn start(&self, hook: Function) {
        *self.inner.hook.borrow_mut() = Some(hook);
        self.inner.session.start();
    }

    /// The todos, in the server's order: a frozen array of frozen objects.
    pub fn todos(&self) -> JsValue {
        js::frozen_array(self.inner.replica.borrow().todos().iter().map(|(_, v)| v))
    }

    /// Every list, oldest first: a frozen array of frozen objects.
    pub fn lists(&self) -> JsValue {
        js::frozen_array(self.inner.replica.borrow().lists().iter().map(|(_, v)| v))
    }

    /// The session's status, `{state, attempt, lastEventId, role, error?}` (not frozen: the
    /// script adds what only it knows: a snapshot load's progress).
    pub fn status(&self) -> JsValue {
        self.inner.session.status_js()
    }
}
