//! The tidings wire contract.
//!
//! Every type that crosses the network between the server and a client lives here, so both
//! sides compile against the same definitions: a schema change breaks the build, not
//! production. The crate depends on `serde` only, which keeps it cheap for the WASM client;
//! the optional `ts` feature adds `ts_rs::TS` to every type, so the client's build generates
//! its TypeScript declarations from these definitions.
//!
//! JSON shapes (field names are `snake_case`):
//!
//! * REST bodies: [`NewList`], [`NewTodo`], [`TodoPatch`] in; [`List`], [`Todo`],
//!   [`ListsSnapshot`], [`TodosSnapshot`], [`Health`] out; failures are an [`ErrorBody`].
//! * Stream messages: every change is a [`TodoEvent`], and the stream's own control messages
//!   are [`Connected`], [`Heartbeat`] and [`Resync`]. Each message's `data` is
//!   self-describing: it carries a `type` field equal to the SSE `event:` name.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Longest title, in characters, accepted for a todo or a list (after trimming).
pub const MAX_TITLE_CHARS: usize = 500;

/// Longest list id (a slug), in bytes.
pub const MAX_LIST_ID_LEN: usize = 64;

/// The list every server has; it cannot be missing.
pub const DEFAULT_LIST_ID: &str = "inbox";

/// A todo list. `id` is a slug (see [`is_valid_list_id`]), stable for the list's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct List {
    /// Slug that names the list in URLs and events.
    pub id: String,
    /// Human-readable title.
    pub title: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// With access control: what the requesting user may do with the list (in
    /// `GET /api/lists` and `list_shared`; absent without access control and in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub role: Option<Role>,
}

/// What a user may do with a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read the list and its todos.
    Viewer,
    /// Read, and create, change and delete its todos.
    Editor,
    /// Everything an editor may, and share, unshare and delete the list. The user who created
    /// it; there is one.
    Owner,
}

impl Role {
    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// Whether this role may change the list's todos.
    pub fn can_edit(self) -> bool {
        self >= Role::Editor
    }
}

/// One todo.
///
/// Lists are ordered by [`Todo::order_key`]; the server's snapshot and a client that applies
/// events use the same order, so both show the same list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Todo {
    /// UUID, chosen by the server or (for idempotent retries) by the client.
    pub id: String,
    /// The list this todo belongs to.
    pub list_id: String,
    /// Trimmed title, 1..=[`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// Whether the todo is done.
    pub done: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Time of the last change, milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// Where the todo stands in its list: compared byte by byte (see [`position`]). New
    /// todos go to the end; a move (`after` in [`TodoPatch`]) changes it. Absent from events
    /// logged before positions existed (read as `""`).
    #[serde(default)]
    pub position: String,
}

impl Todo {
    /// The sort key: a list's todos by position, ties broken by id so the order is total;
    /// todos of several lists grouped by list (ids compared byte by byte, like the rest).
    pub fn order_key(&self) -> (&str, &str, &str) {
        (&self.list_id, &self.position, &self.id)
    }
}

/// A change to the data. Each one is a single SSE message whose `event:` name is
/// [`TodoEvent::name`] and whose `id:` is the global, strictly increasing event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TodoEvent {
    /// A todo was created.
    TodoCreated {
        /// The new todo.
        todo: Todo,
    },
    /// A todo was renamed, toggled or moved; `todo` is its full new state.
    TodoUpdated {
        /// The todo after the change.
        todo: Todo,
        /// Set when the todo moved: the list it left. Clients of that list drop the todo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        moved_from: Option<String>,
    },
    /// A todo was deleted.
    TodoDeleted {
        /// Id of the deleted todo.
        id: String,
        /// The list it was in.
        list_id: String,
    },
    /// A list was created. Delivered to every stream, whatever lists it follows (with access
    /// control: to its owner's streams).
    ListCreated {
        /// The new list.
        list: List,
    },
    /// A list and its todos were deleted. Delivered to every stream (with access control: to
    /// the streams of everyone who could read it).
    ListDeleted {
        /// Id of the deleted list.
        list_id: String,
    },
    /// The receiving user was given access to a list, or a new role on it (per-user: only
    /// that user's streams get it). The list's events follow from here on.
    ListShared {
        /// The list, with the user's `role`.
        list: List,
        /// The user's role on it.
        role: Role,
    },
    /// The receiving user lost access to a list (per-user). No event of it follows.
    ListUnshared {
        /// Id of the list.
        list_id: String,
    },
    /// A list was renamed. Delivered like [`TodoEvent::ListDeleted`]: to every stream without
    /// access control, to everyone who may read it with it. `list.role` is absent (readers
    /// have different roles): a client keeps the role it knows.
    ListUpdated {
        /// The list after the change.
        list: List,
    },
}

impl TodoEvent {
    /// The SSE `event:` name, equal to the `type` field of the JSON data.
    pub fn name(&self) -> &'static str {
        match self {
            TodoEvent::TodoCreated { .. } => event_names::TODO_CREATED,
            TodoEvent::TodoUpdated { .. } => event_names::TODO_UPDATED,
            TodoEvent::TodoDeleted { .. } => event_names::TODO_DELETED,
            TodoEvent::ListCreated { .. } => event_names::LIST_CREATED,
            TodoEvent::ListDeleted { .. } => event_names::LIST_DELETED,
            TodoEvent::ListShared { .. } => event_names::LIST_SHARED,
            TodoEvent::ListUnshared { .. } => event_names::LIST_UNSHARED,
            TodoEvent::ListUpdated { .. } => event_names::LIST_UPDATED,
        }
    }

    /// The list the change happened in.
    pub fn list_id(&self) -> &str {
        match self {
            TodoEvent::TodoCreated { todo } | TodoEvent::TodoUpdated { todo, .. } => &todo.list_id,
            TodoEvent::TodoDeleted { list_id, .. }
            | TodoEvent::ListDeleted { list_id }
            | TodoEvent::ListUnshared { list_id } => list_id,
            TodoEvent::ListCreated { list }
            | TodoEvent::ListShared { list, .. }
            | TodoEvent::ListUpdated { list } => &list.id,
        }
    }

    /// The other list a change concerns: the list a moved todo left.
    pub fn moved_from(&self) -> Option<&str> {
        match self {
            TodoEvent::TodoUpdated { moved_from, .. } => moved_from.as_deref(),
            _ => None,
        }
    }

    /// Whether, without access control, every stream receives this event, whatever lists it
    /// follows (changes to the set of lists).
    pub fn is_global(&self) -> bool {
        matches!(
            self,
            TodoEvent::ListCreated { .. }
                | TodoEvent::ListDeleted { .. }
                | TodoEvent::ListUpdated { .. }
        )
    }
}

pub mod position;

/// The SSE `event:` names used on the stream.
pub mod event_names {
    /// [`crate::TodoEvent::TodoCreated`].
    pub const TODO_CREATED: &str = "todo_created";
    /// [`crate::TodoEvent::TodoUpdated`].
    pub const TODO_UPDATED: &str = "todo_updated";
    /// [`crate::TodoEvent::TodoDeleted`].
    pub const TODO_DELETED: &str = "todo_deleted";
    /// [`crate::TodoEvent::ListCreated`].
    pub const LIST_CREATED: &str = "list_created";
    /// [`crate::TodoEvent::ListDeleted`].
    pub const LIST_DELETED: &str = "list_deleted";
    /// [`crate::TodoEvent::ListShared`].
    pub const LIST_SHARED: &str = "list_shared";
    /// [`crate::TodoEvent::ListUnshared`].
    pub const LIST_UNSHARED: &str = "list_unshared";
    /// [`crate::TodoEvent::ListUpdated`].
    pub const LIST_UPDATED: &str = "list_updated";
    /// [`crate::Connected`].
    pub const CONNECTED: &str = "connected";
    /// [`crate::Heartbeat`].
    pub const HEARTBEAT: &str = "heartbeat";
    /// [`crate::Resync`].
    pub const RESYNC: &str = "resync";
    /// [`crate::Presence`].
    pub const PRESENCE: &str = "presence";
    /// Every change event name, in the order of [`crate::TodoEvent`]'s variants.
    pub const CHANGES: [&str; 8] = [
        TODO_CREATED,
        TODO_UPDATED,
        TODO_DELETED,
        LIST_CREATED,
        LIST_DELETED,
        LIST_SHARED,
        LIST_UNSHARED,
        LIST_UPDATED,
    ];
}

/// Marker for the `type` field of the control messages, so their JSON is self-describing
/// like the change events' (`{"type": "connected", …}`).
macro_rules! tagged {
    ($name:ident, $tag:literal) => {
        impl $name {
            /// The value of this message's `type` field and SSE `event:` name.
            pub const TYPE: &'static str = $tag;
        }
    };
}

/// First message of every stream.
///
/// Its SSE `id:` is the point the stream starts from (the resume id, or the current
/// `last_event_id` for a fresh stream), so a browser that reconnects before any change
/// arrives still resumes without a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename = "connected")]
#[cfg_attr(feature = "ts", ts(rename = "Connected"))]
pub struct Connected {
    /// Server version (`CARGO_PKG_VERSION` of the server crate).
    pub server_version: String,
    /// The newest event id at connect time.
    pub last_event_id: u64,
    /// The id the stream resumes after: every change with a larger id follows.
    pub resume_from: u64,
    /// Seconds between `heartbeat` messages; a client may treat silence well past this as a
    /// dead connection.
    pub heartbeat_secs: u64,
    /// The identity of the event log, generated when the database was created. Event ids
    /// mean something only within one epoch: a client resuming with an id of another epoch
    /// (the database was reset or replaced) gets [`Resync`]. Send it back as the `epoch` query
    /// parameter when reconnecting.
    #[serde(default)]
    pub epoch: String,
}
tagged!(Connected, "connected");

/// Sent every `heartbeat_secs` so clients can tell a quiet stream from a dead one.
/// (SSE comments never reach JavaScript, hence a named event.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename = "heartbeat")]
#[cfg_attr(feature = "ts", ts(rename = "Heartbeat"))]
pub struct Heartbeat {}
tagged!(Heartbeat, "heartbeat");

/// The requested resume point cannot be honoured: the client must refetch its snapshot. The
/// stream continues live after `last_event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename = "resync")]
#[cfg_attr(feature = "ts", ts(rename = "Resync"))]
pub struct Resync {
    /// The id the stream continues after.
    pub last_event_id: u64,
    /// The id the client asked to resume from.
    pub requested: u64,
    /// Why the resume point was refused.
    #[serde(default)]
    pub reason: ResyncReason,
    /// The epoch of the log the stream continues in (see [`Connected::epoch`]).
    #[serde(default)]
    pub epoch: String,
}
tagged!(Resync, "resync");

/// Who has a stream open that follows a list. Sent to the streams that follow the list
/// whenever that changes (at most once a second per list) and when a stream opens. Not in
/// the log, and with no SSE `id:`: a reconnecting client is told the current presence, not
/// its history. Also the answer of `GET /api/lists/<list>/presence`.
///
/// A stream is present on the lists it names (`?list=…`); a stream that follows every list
/// (a sidebar, a dashboard) receives the presence of the lists it may read but is not counted
/// on any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename = "presence")]
#[cfg_attr(feature = "ts", ts(rename = "Presence"))]
pub struct Presence {
    /// The list.
    pub list_id: String,
    /// With access control: the users (their token's `sub`) who have a stream open on the
    /// list and may read it, sorted, each once however many streams they hold.
    pub users: Vec<String>,
    /// Without access control: how many streams are open on the list (nobody is known by
    /// name). Always 0 with access control.
    pub anonymous: u64,
}
tagged!(Presence, "presence");

/// Why a stream answered a resume point with [`Resync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResyncReason {
    /// The events after the resume point are no longer retained.
    #[default]
    Pruned,
    /// The resume point is newer than anything this log holds.
    Ahead,
    /// The resume point belongs to another event log (another epoch).
    Epoch,
}

/// `POST /api/lists` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewList {
    /// Optional slug; derived from the title when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub id: Option<String>,
    /// Title, trimmed, 1..=[`MAX_TITLE_CHARS`] characters.
    pub title: String,
}

/// `POST /api/lists/<list>/todos` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTodo {
    /// Title, trimmed, 1..=[`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// Optional client-chosen UUID: retrying a create with the same id creates one todo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub id: Option<String>,
}

/// `PATCH /api/todos/<id>` body: rename, toggle, move; at least one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TodoPatch {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub title: Option<String>,
    /// New done state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub done: Option<bool>,
    /// Move to this list (to its end, unless `after` says where).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub list_id: Option<String>,
    /// Place the todo right after this todo of its list (or of `list_id`'s); `null`: first.
    /// Absent: the todo stays where it is.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "string | null"))]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub after: Option<Option<String>>,
}

impl TodoPatch {
    /// Whether the patch names no field at all.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.done.is_none()
            && self.list_id.is_none()
            && self.after.is_none()
    }
}

/// A field that may be `null`: present (even as `null`) is `Some`, absent is `None` (by
/// `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `PATCH /api/lists/<list>` body: rename a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListPatch {
    /// New title, trimmed, 1..=[`MAX_TITLE_CHARS`] characters.
    pub title: String,
}

/// `POST /api/events/ticket` response: a one-time ticket to open one stream with
/// (`GET /api/events?ticket=…`), so that no bearer token travels in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamTicket {
    /// Opens one stream, once, for the user whose token bought it.
    pub ticket: String,
    /// When it stops being good, seconds since the Unix epoch (a few seconds from now).
    pub expires_at: u64,
}

/// `PUT /api/lists/<list>/members/<user>` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMember {
    /// `viewer` or `editor` (a list has one owner, its creator).
    pub role: MemberRole,
}

/// The roles a member can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Reads the list.
    Viewer,
    /// Reads and changes its todos.
    Editor,
}

impl From<MemberRole> for Role {
    fn from(role: MemberRole) -> Self {
        match role {
            MemberRole::Viewer => Role::Viewer,
            MemberRole::Editor => Role::Editor,
        }
    }
}

/// A member of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The user (`sub` of their tokens).
    pub user: String,
    /// Their role.
    pub role: Role,
}

/// `GET /api/lists/<list>/members` response: the owner first, then the others by user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Members {
    /// Everyone who may read the list.
    pub members: Vec<Member>,
}

/// `POST /api/dev/token` body (only with `TIDINGS_AUTH_DEV_LOGIN`, for demos and tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevLogin {
    /// The user to sign a token for.
    pub user: String,
}

/// `POST /api/dev/token` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevToken {
    /// A signed JWT for `user`.
    pub token: String,
    /// Its expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// `GET /api/lists` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListsSnapshot {
    /// Every list, oldest first.
    pub lists: Vec<List>,
    /// The newest event id, read in the same transaction as `lists`.
    pub last_event_id: u64,
    /// The epoch `last_event_id` belongs to (see [`Connected::epoch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub epoch: Option<String>,
}

/// `GET /api/lists/<list>/todos` (and `GET /api/todos?list=…`) response.
///
/// Opening the stream with `last_event_id` yields exactly the changes after this snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TodosSnapshot {
    /// The todos, in [`Todo::order_key`] order.
    pub todos: Vec<Todo>,
    /// The newest event id, read in the same transaction as `todos`.
    pub last_event_id: u64,
    /// The epoch `last_event_id` belongs to (see [`Connected::epoch`]); pass it to the stream
    /// as `epoch` together with `last_event_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub epoch: Option<String>,
}

/// Body of every error response: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The detail of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code such as `invalid_title` or `not_found`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// `GET /health` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` when the database answers, `unavailable` otherwise.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Event streams open right now.
    pub open_streams: u64,
    /// The newest event id this process knows of: read from the database when it answers,
    /// otherwise the last one seen (never a made-up 0).
    pub last_event_id: u64,
    /// The event log's epoch (see [`Connected::epoch`]).
    #[serde(default)]
    pub epoch: String,
    /// `ok` or `unavailable`: whether the database answered this check.
    #[serde(default)]
    pub database: String,
    /// The newest event id this process has broadcast to its streams.
    #[serde(default)]
    pub broadcast_id: u64,
    /// How many committed events this process has not broadcast yet
    /// (`last_event_id - broadcast_id`).
    #[serde(default)]
    pub tailer_lag: u64,
}

/// Whether `id` is a valid list id: a slug of at most [`MAX_LIST_ID_LEN`] bytes, like `inbox`,
/// `groceries-2` or `買い物`. Its ASCII characters are lowercase letters, digits and single
/// dashes (not at either end); any other character is allowed except spaces, control
/// characters and U+FFFD (what an undecodable byte in a URL becomes). Ids the server derives
/// from titles keep only letters, digits and marks; the server compares ids in Unicode NFC.
pub fn is_valid_list_id(id: &str) -> bool {
    // Dashes on the bytes, in one pass (a dash is ASCII, so no UTF-8 sequence holds one): not
    // first, not last, never two in a row. One loop rather than `contains("--")` and friends,
    // which would bring a substring searcher into the WASM client.
    let mut after_dash = true;
    for &b in id.as_bytes() {
        if b == b'-' && after_dash {
            return false;
        }
        after_dash = b == b'-';
    }
    !id.is_empty()
        && id.len() <= MAX_LIST_ID_LEN
        && !after_dash
        && id.chars().all(|c| {
            if c.is_ascii() {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            } else {
                !c.is_whitespace() && !c.is_control() && c != char::REPLACEMENT_CHARACTER
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn todo() -> Todo {
        Todo {
            id: "0b7e4f6e-8c4f-4d0e-9a53-6f2f0e6b9a10".into(),
            list_id: "inbox".into(),
            title: "Buy milk".into(),
            done: false,
            created_at: 1,
            updated_at: 2,
            position: "a0".into(),
        }
    }

    #[test]
    fn after_tells_null_from_absent() {
        let first: TodoPatch = serde_json::from_value(json!({ "after": null })).unwrap();
        assert_eq!(first.after, Some(None));
        assert!(!first.is_empty());
        let placed: TodoPatch = serde_json::from_value(json!({ "after": "x" })).unwrap();
        assert_eq!(placed.after, Some(Some("x".into())));
        let stays: TodoPatch = serde_json::from_value(json!({ "done": true })).unwrap();
        assert_eq!(stays.after, None);
        assert_eq!(serde_json::to_value(&first).unwrap(), json!({ "after": null }));
        assert_eq!(serde_json::to_value(&stays).unwrap(), json!({ "done": true }));
    }

    #[test]
    fn change_events_are_self_describing() {
        let event = TodoEvent::TodoCreated { todo: todo() };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], event.name());
        assert_eq!(value["todo"]["title"], "Buy milk");
        let back: TodoEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn moved_from_is_omitted_unless_moved() {
        let plain = TodoEvent::TodoUpdated { todo: todo(), moved_from: None };
        let value = serde_json::to_value(&plain).unwrap();
        assert!(value.get("moved_from").is_none());
        let moved: TodoEvent = serde_json::from_value(json!({
            "type": "todo_updated", "todo": serde_json::to_value(todo()).unwrap(),
            "moved_from": "work"
        }))
        .unwrap();
        assert_eq!(moved.moved_from(), Some("work"));
        assert_eq!(moved.list_id(), "inbox");
    }

    #[test]
    fn control_messages_carry_their_type() {
        let value = serde_json::to_value(Heartbeat {}).unwrap();
        assert_eq!(value, json!({"type": "heartbeat"}));
        let value = serde_json::to_value(Resync {
            last_event_id: 9,
            requested: 3,
            reason: ResyncReason::Epoch,
            epoch: "e".into(),
        })
        .unwrap();
        assert_eq!(value["type"], Resync::TYPE);
        assert_eq!(value["reason"], "epoch");
        let connected: Connected = serde_json::from_value(json!({
            "type": "connected", "server_version": "0.1.0", "last_event_id": 4,
            "resume_from": 4, "heartbeat_secs": 15
        }))
        .unwrap();
        assert_eq!(connected.heartbeat_secs, 15);
        assert_eq!(connected.epoch, "", "an older server without epochs still decodes");
    }

    #[test]
    fn event_names_match_variants() {
        let events = [
            TodoEvent::TodoCreated { todo: todo() },
            TodoEvent::TodoUpdated { todo: todo(), moved_from: None },
            TodoEvent::TodoDeleted { id: "x".into(), list_id: "inbox".into() },
            TodoEvent::ListCreated {
                list: List { id: "work".into(), title: "Work".into(), created_at: 0, role: None },
            },
            TodoEvent::ListDeleted { list_id: "work".into() },
            TodoEvent::ListShared {
                list: List {
                    id: "work".into(),
                    title: "Work".into(),
                    created_at: 0,
                    role: Some(Role::Viewer),
                },
                role: Role::Viewer,
            },
            TodoEvent::ListUnshared { list_id: "work".into() },
        ];
        for (event, name) in events.iter().zip(event_names::CHANGES) {
            assert_eq!(event.name(), name);
            let value: Value = serde_json::to_value(event).unwrap();
            assert_eq!(value["type"], name);
        }
    }

    #[test]
    fn roles_order_by_power_and_read_as_snake_case() {
        assert!(Role::Owner.can_edit() && Role::Editor.can_edit() && !Role::Viewer.can_edit());
        let member: NewMember = serde_json::from_str(r#"{"role": "editor"}"#).unwrap();
        assert_eq!(Role::from(member.role), Role::Editor);
        assert!(serde_json::from_str::<NewMember>(r#"{"role": "owner"}"#).is_err());
        assert_eq!(serde_json::to_value(Role::Viewer).unwrap(), "viewer");
        assert!(serde_json::from_str::<NewMember>(r#"{"role": "admin"}"#).is_err());
    }

    #[test]
    fn list_ids_are_slugs() {
        for ok in ["inbox", "a", "groceries-2", "x1-y2-z3"] {
            assert!(is_valid_list_id(ok), "{ok}");
        }
        let long = "a".repeat(MAX_LIST_ID_LEN + 1);
        for ok in ["ä", "買い物", "список-2"] {
            assert!(is_valid_list_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Inbox",
            "-a",
            "a-",
            "a--b",
            "a b",
            "a/b",
            "a\u{a0}b",
            "a\u{85}",
            "a\u{fffd}",
            "a_b",
            &long,
        ] {
            assert!(!is_valid_list_id(bad), "{bad}");
        }
    }

    #[test]
    fn empty_patch_is_detected() {
        let patch: TodoPatch = serde_json::from_str("{}").unwrap();
        assert!(patch.is_empty());
        let patch: TodoPatch = serde_json::from_str(r#"{"done": true}"#).unwrap();
        assert!(!patch.is_empty());
    }
}
