//! Storage: lists, todos and the durable event log, behind one interface with two backends,
//! SQLite (the embedded default) and PostgreSQL (several server processes on one database).
//!
//! Every change is one write transaction that also appends its event to the log, so the log
//! and the data never disagree. The store publishes nothing itself: after a commit it only
//! signals that the head of the log moved ([`HeadSignal`]), and the process's tailer reads
//! the log and broadcasts. A write that fails to commit is therefore never seen by anyone,
//! and a write is acknowledged only after its commit returned.
//!
//! Event ids follow commit order, which is what lets the tailer and every stream keep one
//! number as their position: SQLite has a single writer; PostgreSQL writers take one
//! transaction-scoped advisory lock before they assign an id, and a transaction becomes
//! visible before it releases its locks, so no reader can see id `n + 1` without `n`.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `changes` | what each change does, written once over `WriteTx` |
//! | `sql`, `tx` | the SQL of both backends, written once: reads, and a write transaction's statements |
//! | `sqlite`, `postgres` | what differs (`sql::Dialect`): opening, migrations, id allocation, hooks |
//! | [`StoreError`] | storage failures in storage terms |

mod changes;
mod error;
mod postgres;
mod sql;
mod sqlite;
mod tx;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tidings_protocol::{
    List, ListsSnapshot, Member, Members, Role, Todo, TodoEvent, TodosSnapshot,
};
use tokio::sync::watch;

pub(crate) use changes::look_alike;
pub use changes::Patch;
pub(crate) use error::Shown;
pub use error::StoreError;

/// A storage result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One row of the event log, as stored: the data is the JSON sent on the wire, and the other
/// fields say who may receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Global event id.
    pub id: u64,
    /// SSE event name (`todo_created`, …).
    pub kind: String,
    /// The list the change happened in.
    pub list_id: String,
    /// The list a moved todo left.
    pub moved_from: Option<String>,
    /// Delivered to every stream, whatever lists it follows (`list_created` without access
    /// control).
    pub global: bool,
    /// Delivered only to this user's streams (per-user events; the `audience` column).
    pub for_user: Option<String>,
    /// Self-describing JSON data.
    pub data: String,
}

/// The outcome of an idempotent create: the row, and whether this call created it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upserted<T> {
    /// The created (or already existing) value.
    pub value: T,
    /// `false` when an identical earlier request had already created it.
    pub created: bool,
}

/// What a write answers: its result, the last event it logged, and whether it is the
/// remembered outcome of an earlier request with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// The result.
    pub value: T,
    /// The id of the last event the write logged (`None`: it changed nothing).
    pub event_id: Option<u64>,
    /// `true` when this is an earlier request's outcome, given back for its idempotency key.
    pub replayed: bool,
}

/// A client's idempotency key for one write (the `Idempotency-Key` header): the same key
/// again gets the first outcome back and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key, chosen by the client; scoped to the user.
    pub key: String,
    /// What the request asked for (method, path, body): the same key with another request is
    /// refused ([`StoreError::IdempotencyKeyReused`]).
    pub request: String,
}

/// A remembered outcome, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remembered {
    pub request: String,
    pub outcome: String,
    pub event_id: Option<u64>,
}

/// How long an idempotency key is remembered at least (and as long as its event is in the
/// log).
pub const IDEMPOTENCY_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// Where the event log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    /// The newest event id (`origin` before the first change).
    pub last_event_id: u64,
    /// The newest id pruned by retention: every event after it is still in the log, so a
    /// client may resume from any id at or above it.
    pub floor: u64,
    /// The id the log started after: random and far from 0 for a database made since ids
    /// have origins (so another database's ids cannot be taken for its own), 0 for older ones.
    pub origin: u64,
}

/// A bound on one read of the event log: at most `events` rows, and no more rows once
/// `bytes` of data are reached (the first row always comes, whatever its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Most rows.
    pub events: u32,
    /// Data bytes after which no further row is added.
    pub bytes: u32,
}

/// Limits, retention and connection settings the store works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How many of the newest events the log keeps for resuming clients (at least).
    pub retain_events: u64,
    /// And the events of how many of the last seconds (at least), however many: a burst
    /// cannot push out the resume point of a client that was away for a moment.
    pub retain_secs: u64,
    /// Most lists in the database.
    pub max_lists: u64,
    /// Most lists one user owns (with access control).
    pub max_lists_per_user: u64,
    /// Most members of one list besides its owner.
    pub max_members_per_list: u64,
    /// Most todos in one list.
    pub max_todos_per_list: u64,
    /// Most todos one snapshot read returns.
    pub max_snapshot_todos: u64,
    /// Largest database, in bytes; writes past it fail with [`StoreError::Full`].
    pub max_database_bytes: Option<u64>,
    /// Connections for reads (snapshots, replays).
    pub read_connections: u32,
    /// How long a request waits for a connection before it gets
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
}

impl StoreConfig {
    pub(crate) fn retention(&self) -> Retention {
        Retention { events: self.retain_events, secs: self.retain_secs }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retain_events: 100_000,
            retain_secs: 3_600,
            max_lists: 1_000_000,
            max_lists_per_user: 1_000,
            max_members_per_list: 1_000,
            max_todos_per_list: 5_000,
            max_snapshot_todos: 10_000,
            max_database_bytes: None,
            read_connections: 4,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// A change as the store records it: the event and who receives it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub event: TodoEvent,
    pub global: bool,
    pub for_user: Option<String>,
}

/// A list as stored: the list and its owner (`None`: made without access control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListRow {
    pub list: List,
    pub owner: Option<String>,
}

/// An interval of the log in which a user may read a list: events with ids in
/// `(from, until]` (`until` `None`: still open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The event that opened it (created or shared the list).
    pub from: u64,
    /// The event that closed it (unshared or deleted the list).
    pub until: Option<u64>,
}

/// A user's grants by list.
pub type Grants = std::collections::HashMap<String, Vec<Grant>>;

/// The primitive operations of one write transaction. Each backend implements them in its
/// SQL; [`changes`] composes them, once for both.
#[async_trait::async_trait]
pub(crate) trait WriteTx: Send {
    /// The list `id`, if it exists.
    async fn list(&mut self, id: &str) -> Result<Option<ListRow>>;
    /// How many lists exist; with `owner`, how many that user owns.
    async fn count_lists(&mut self, owner: Option<&str>) -> Result<u64>;
    /// Insert a new list.
    async fn insert_list(&mut self, list: &List, owner: Option<&str>) -> Result<()>;
    /// Delete a list, its todos (leaving tombstones) and its members; whether it existed.
    async fn delete_list(&mut self, id: &str, event_id: u64) -> Result<bool>;
    /// A free list id derived from `base`: `base` itself, or `base-N` with the next `N`.
    async fn claim_list_id(&mut self, base: &str) -> Result<String>;
    /// `user`'s role on `list` as a member (not as owner).
    async fn member_role(&mut self, list: &str, user: &str) -> Result<Option<Role>>;
    /// Make `user` a member with `role`.
    async fn set_member(&mut self, list: &str, user: &str, role: Role) -> Result<()>;
    /// Remove `user` from the members; whether they were one.
    async fn remove_member(&mut self, list: &str, user: &str) -> Result<bool>;
    /// How many members (besides the owner) `list` has.
    async fn count_members(&mut self, list: &str) -> Result<u64>;
    /// Open `user`'s read access to `list` at event `from`.
    async fn open_grant(&mut self, list: &str, user: &str, from: u64) -> Result<()>;
    /// Close read access to `list` at event `at`: `user`'s, or everyone's.
    async fn close_grants(&mut self, list: &str, user: Option<&str>, at: u64) -> Result<()>;
    /// The personal default list of `user`, once made.
    async fn user_inbox(&mut self, user: &str) -> Result<Option<String>>;
    /// Remember `inbox` as `user`'s personal default list.
    async fn set_user_inbox(&mut self, user: &str, inbox: &str) -> Result<()>;
    /// The todo `id`, if it exists.
    async fn todo(&mut self, id: &str) -> Result<Option<Todo>>;
    /// Whether `id` names a deleted todo (kept for idempotent creates).
    async fn is_tombstoned(&mut self, id: &str) -> Result<bool>;
    /// How many todos `list` holds, and the last position among them.
    async fn list_tail(&mut self, list: &str) -> Result<(u64, Option<String>)>;
    /// The position and id of the first todo of `list` after `(position, id)` (`None`: the
    /// first todo), leaving `except` out.
    async fn todo_after(
        &mut self,
        list: &str,
        after: Option<(&str, &str)>,
        except: Option<&str>,
    ) -> Result<Option<(String, String)>>;
    /// Every todo of `list`, in order.
    async fn list_todos(&mut self, list: &str) -> Result<Vec<Todo>>;
    /// Rename a list.
    async fn rename_list(&mut self, id: &str, title: &str) -> Result<()>;
    /// Keep a stream ticket for `user` until `expires_at` (seconds), forgetting expired ones.
    async fn insert_ticket(
        &mut self,
        ticket: &str,
        user: &str,
        token_expires_at: u64,
        expires_at: u64,
    ) -> Result<()>;
    /// Take the ticket if it is still good: its user and when their token expires.
    async fn take_ticket(&mut self, ticket: &str, now: u64) -> Result<Option<(String, u64)>>;
    /// Mark `process` alive at `now` (ms) and store its new stream counts; forget processes
    /// not seen since `forget_before` (ms), with their rows.
    async fn publish_presence(
        &mut self,
        process: &str,
        counts: &[PresenceCount],
        now: i64,
        forget_before: i64,
    ) -> Result<()>;
    /// Forget `process` and its rows (it is shutting down).
    async fn forget_presence(&mut self, process: &str) -> Result<()>;
    /// Insert a new todo.
    async fn insert_todo(&mut self, todo: &Todo) -> Result<()>;
    /// Store a todo's new title, done state, list and update time.
    async fn update_todo(&mut self, todo: &Todo) -> Result<()>;
    /// The ids of `list`'s done todos, in display order.
    async fn done_todos(&mut self, list: &str) -> Result<Vec<String>>;
    /// Delete a todo, leaving a tombstone; the list it was in, if it existed.
    async fn delete_todo(&mut self, id: &str, event_id: u64) -> Result<Option<String>>;
    /// A creation time: `now`, but later than every one given out before.
    async fn next_created_at(&mut self, now: i64) -> Result<i64>;
    /// The id the next appended event gets.
    async fn next_event_id(&mut self) -> Result<u64>;
    /// Append `event` under `id` (from [`WriteTx::next_event_id`]) and prune the log.
    async fn append(&mut self, id: u64, event: &Recorded, data: &str) -> Result<()>;
    /// The id of the newest event appended in this transaction so far.
    fn last_appended(&self) -> Option<u64>;
    /// The outcome remembered for `user`'s idempotency `key`.
    async fn remembered(&mut self, user: &str, key: &str) -> Result<Option<Remembered>>;
    /// Remember the outcome of `user`'s request under `key`.
    async fn remember(&mut self, user: &str, key: &Idempotency, outcome: &Remembered)
        -> Result<()>;
}

/// Work to run inside one write transaction.
pub(crate) type Work =
    Box<dyn for<'t> FnOnce(&'t mut dyn WriteTx) -> BoxFuture<'t, Result<()>> + Send>;

/// What a backend provides; [`Store`] adds the typed operations on top.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// Run a group of writes in one write transaction, each in a savepoint of its own, and
    /// commit it: the outcome of each write, known once the commit succeeded; `Err` when the
    /// transaction failed as a whole (none of the group is written). Called one group at a
    /// time, on the writer thread.
    async fn write(&self, group: Vec<Work>) -> Result<Vec<Result<()>>>;
    /// The newest event id and the retention floor.
    async fn head(&self) -> Result<LogHead>;
    /// Every list `user` may read (`None`: every list), with their role, and the event id
    /// the answer is current as of.
    async fn lists(&self, user: Option<&str>) -> Result<ListsSnapshot>;
    /// The todos of `lists` (`None`: every list `user` may read) with the event id they are
    /// current as of, read in one snapshot; [`StoreError::ListNotFound`] for a list `user`
    /// may not read, [`StoreError::SnapshotTooLarge`] past `limit` todos.
    async fn todos(
        &self,
        lists: Option<&[String]>,
        user: Option<&str>,
        limit: u64,
    ) -> Result<TodosSnapshot>;
    /// The first of `lists` that does not exist or that `user` may not read.
    async fn first_unreadable_list(
        &self,
        lists: &[String],
        user: Option<&str>,
    ) -> Result<Option<String>>;
    /// The owner and members of `list`, if it exists.
    async fn members(&self, list: &str) -> Result<Option<(Option<String>, Vec<Member>)>>;
    /// The head and `user`'s grants, read in one snapshot: where a stream starts and what its
    /// user may read from there on.
    async fn stream_start(&self, user: &str) -> Result<(LogHead, Grants)>;
    /// Events after `after`, oldest first, for `lists` (`None`: all) and per-user events for
    /// `user` (none of another user's), bounded by `page`.
    async fn events_after(
        &self,
        after: u64,
        lists: Option<&[String]>,
        user: Option<&str>,
        page: Page,
    ) -> Result<Vec<LoggedEvent>>;
    /// A signal that fires when the head may have moved.
    async fn head_signal(&self) -> Result<HeadSignal>;
    /// [`Backend::events_after`] for every list, on the tailer's own connection.
    async fn tail(&self, after: u64, page: Page) -> Result<Vec<LoggedEvent>>;
    /// [`Backend::head`] on the tailer's own connection: the health check must answer
    /// even while snapshot reads hold every reader.
    async fn probe_head(&self) -> Result<LogHead>;
    /// The streams open on `lists` in every process seen since `alive_since` (ms), summed per
    /// list and user, counting only users who may read the list now.
    async fn presence(&self, lists: &[String], alive_since: i64) -> Result<Vec<PresenceCount>>;
}

/// Wakes the tailer when the head of the log may have moved. Wake-ups can be spurious or
/// (for PostgreSQL, while its listener reconnects) missed: the tailer also checks the head
/// on a timer, and a wake-up only means "read the log now".
pub struct HeadSignal {
    inner: HeadSignalInner,
}

enum HeadSignalInner {
    /// In-process: the writer sends the new head after each commit.
    Local(watch::Receiver<u64>),
    /// `LISTEN` on PostgreSQL, reconnecting with backoff.
    Postgres(Box<postgres::Listener>),
}

impl HeadSignal {
    /// Wait until the head may have moved.
    pub async fn changed(&mut self) {
        match &mut self.inner {
            HeadSignalInner::Local(rx) => {
                if rx.changed().await.is_err() {
                    // The store is gone: nothing will ever move again.
                    std::future::pending::<()>().await;
                }
            }
            HeadSignalInner::Postgres(listener) => listener.changed().await,
        }
    }

    /// Whether the signal is connected right now (PostgreSQL's `LISTEN` connection).
    pub fn is_connected(&self) -> bool {
        match &self.inner {
            HeadSignalInner::Local(_) => true,
            HeadSignalInner::Postgres(listener) => listener.is_connected(),
        }
    }
}

impl fmt::Debug for HeadSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadSignal").field("connected", &self.is_connected()).finish()
    }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    writer: Arc<writer::Writer>,
    config: Arc<StoreConfig>,
    epoch: Arc<str>,
}

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` and `postgresql:` URLs.
    Postgres,
}

impl BackendKind {
    /// The backend of `url`, or `None` for a scheme tidings does not support.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase())?;
        match scheme.as_str() {
            "sqlite" => Some(BackendKind::Sqlite),
            "postgres" | "postgresql" => Some(BackendKind::Postgres),
            _ => None,
        }
    }
}

impl Store {
    /// Open (creating if needed) and migrate the database at `url`, and make sure the default
    /// list exists.
    pub async fn open(url: &str, config: StoreConfig) -> Result<Self> {
        let writer = writer::Writer::start(config.acquire_timeout)
            .map_err(|e| StoreError::Internal(format!("starting the writer thread: {e}")))?;
        let (backend, epoch): (Arc<dyn Backend>, String) = match BackendKind::of_url(url) {
            Some(BackendKind::Sqlite) => {
                let (backend, epoch) = sqlite::open(url, &config, &writer).await?;
                (Arc::new(backend), epoch)
            }
            Some(BackendKind::Postgres) => {
                let (backend, epoch) = postgres::open(url, &config, &writer).await?;
                (Arc::new(backend), epoch)
            }
            None => {
                return Err(StoreError::Internal(format!(
                    "unsupported database URL `{}`: use sqlite:… or postgres://…",
                    Shown(url)
                )))
            }
        };
        writer.serve(backend.clone());
        Ok(Store {
            backend,
            writer: Arc::new(writer),
            config: Arc::new(config),
            epoch: epoch.into(),
        })
    }

    /// The identity of this event log, generated when the database was created.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The newest event id and the retention floor.
    pub async fn head(&self) -> Result<LogHead> {
        noted(self.backend.head().await)
    }

    /// The first of `lists` that does not exist or that `user` may not read, if any.
    pub async fn first_unreadable_list(
        &self,
        lists: &[String],
        user: Option<&str>,
    ) -> Result<Option<String>> {
        if lists.is_empty() {
            return Ok(None);
        }
        noted(self.backend.first_unreadable_list(lists, user).await)
    }

    /// Every list `user` may read (`None`: every list) with their role, and the event id the
    /// answer is current as of.
    pub async fn lists(&self, user: Option<&str>) -> Result<ListsSnapshot> {
        let mut snapshot = noted(self.backend.lists(user).await)?;
        snapshot.epoch = Some(self.epoch.to_string());
        Ok(snapshot)
    }

    /// The todos of `lists` (`None`: every list `user` may read) and the event id they are
    /// current as of, read in one transaction: a stream opened at that id yields exactly the
    /// later changes.
    pub async fn todos(
        &self,
        lists: Option<&[String]>,
        user: Option<&str>,
    ) -> Result<TodosSnapshot> {
        let limit = self.config.max_snapshot_todos;
        let mut snapshot = noted(self.backend.todos(lists, user, limit).await)?;
        snapshot.epoch = Some(self.epoch.to_string());
        Ok(snapshot)
    }

    /// The members of `list`, owner first; only its owner may ask.
    pub async fn members(&self, list: &str, user: Option<&str>) -> Result<Members> {
        let Some(user) = user else { return Err(changes::sharing_needs_access_control()) };
        let (owner, members) = self
            .backend
            .members(list)
            .await
            .inspect_err(note)?
            .ok_or_else(|| StoreError::ListNotFound(list.into()))?;
        let is_member = members.iter().any(|m| m.user == user);
        match owner.as_deref() {
            Some(owner) if owner == user => {
                let mut all = vec![Member { user: owner.to_owned(), role: Role::Owner }];
                all.extend(members);
                Ok(Members { members: all })
            }
            _ if is_member => {
                Err(StoreError::Forbidden("only the list's owner may see its members".into()))
            }
            _ => Err(StoreError::ListNotFound(list.into())),
        }
    }

    /// Where `user`'s stream starts and what it may read from there on (see
    /// [`crate::audience`]).
    pub async fn stream_start(&self, user: &str) -> Result<(LogHead, Grants)> {
        noted(self.backend.stream_start(user).await)
    }

    /// Logged events after `after`, oldest first, for `lists` (`None`: all) and `user`'s
    /// per-user events, at most `page`.
    pub async fn events_after(
        &self,
        after: u64,
        lists: Option<&[String]>,
        user: Option<&str>,
        page: Page,
    ) -> Result<Vec<LoggedEvent>> {
        noted(self.backend.events_after(after, lists, user, page).await)
    }

    /// The events after `after` for every list, for the tailer, on a connection of its own.
    pub async fn tail(&self, after: u64, page: Page) -> Result<Vec<LoggedEvent>> {
        noted(self.backend.tail(after, page).await)
    }

    /// The head, read on the tailer's connection: answers even while snapshot reads hold
    /// every reader (the health check).
    pub async fn probe_head(&self) -> Result<LogHead> {
        noted(self.backend.probe_head().await)
    }

    /// A signal that fires when the head may have moved (after commits in any process on
    /// this database).
    pub async fn head_signal(&self) -> Result<HeadSignal> {
        noted(self.backend.head_signal().await)
    }

    /// Run one change in a write transaction on the writer thread, committed with whatever
    /// other changes wait (see `writer`). `bytes`: what the change carries (titles, ids),
    /// which bounds a group. With `key`, the outcome is remembered for `user` in the same
    /// transaction, and a change already made under that key is not made again: its
    /// remembered outcome is the answer.
    async fn write<T, F>(
        &self,
        bytes: usize,
        user: Option<&str>,
        key: Option<Idempotency>,
        op: F,
    ) -> Result<Written<T>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: for<'t> FnOnce(&'t mut dyn WriteTx, &'t StoreConfig) -> BoxFuture<'t, Result<T>>
            + Send
            + 'static,
    {
        let started = std::time::Instant::now();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let config = self.config.clone();
        // Keys of a user are theirs alone; without access control everyone is one user.
        let owner = user.unwrap_or_default().to_owned();
        let work: Work = Box::new(move |tx| {
            Box::pin(async move {
                let written = match key {
                    None => run_change(tx, &config, op).await?,
                    Some(key) => match tx.remembered(&owner, &key.key).await? {
                        Some(earlier) if earlier.request != key.request => {
                            return Err(StoreError::IdempotencyKeyReused(key.key));
                        }
                        Some(earlier) => Written {
                            value: serde_json::from_str(&earlier.outcome).map_err(|e| {
                                StoreError::Internal(format!("a remembered outcome: {e}"))
                            })?,
                            event_id: earlier.event_id,
                            replayed: true,
                        },
                        None => {
                            let written = run_change(tx, &config, op).await?;
                            let outcome = serde_json::to_string(&written.value).map_err(|e| {
                                StoreError::Internal(format!("remembering an outcome: {e}"))
                            })?;
                            let request = key.request.clone();
                            let remembered =
                                Remembered { request, outcome, event_id: written.event_id };
                            tx.remember(&owner, &key, &remembered).await?;
                            written
                        }
                    },
                };
                // Taken only if the commit succeeds (`run` returns `Ok`).
                let _ = done.send(written);
                Ok(())
            })
        });
        let written = self.writer.run(bytes, work).await;
        crate::metrics::handles().write_seconds.record(started.elapsed().as_secs_f64());
        noted(written)?;
        outcome.await.map_err(|_| StoreError::Internal("the write produced no result".into()))
    }

    /// Create a list owned by `user`. An `id` that exists with the same title (and owner) is
    /// an idempotent retry; otherwise it is a conflict. Without an id, one is derived from
    /// the title.
    pub async fn create_list(
        &self,
        id: Option<String>,
        title: String,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<Upserted<List>>> {
        let bytes = carried(&[id.as_deref(), Some(&title), user]);
        let by = user.map(str::to_owned);
        self.write(bytes, user, key, move |tx, config| {
            Box::pin(
                async move { changes::create_list(tx, config, id, title, by.as_deref()).await },
            )
        })
        .await
    }

    /// `user`'s personal default list (made on first use): its id.
    pub async fn ensure_inbox(&self, user: &str) -> Result<String> {
        let bytes = carried(&[Some(user)]);
        let by = user.to_owned();
        let made = self
            .write(bytes, Some(user), None, move |tx, config| {
                Box::pin(changes::ensure_inbox(tx, config, by))
            })
            .await?;
        Ok(made.value)
    }

    /// A one-time stream ticket for `user`, whose token expires at `token_expires_at`: the
    /// ticket, and when it stops being good ([`TICKET_SECS`] from now).
    pub async fn issue_ticket(&self, user: &str, token_expires_at: u64) -> Result<(String, u64)> {
        let ticket = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let expires_at = now_secs() + TICKET_SECS;
        let (kept, by) = (ticket.clone(), user.to_owned());
        self.write(ticket.len() + user.len(), Some(user), None, move |tx, _| {
            Box::pin(
                async move { tx.insert_ticket(&kept, &by, token_expires_at, expires_at).await },
            )
        })
        .await?;
        Ok((ticket, expires_at))
    }

    /// Redeem a stream ticket (once): its user and when their token expires, or `None` when
    /// it is unknown, used or expired.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Option<(String, u64)>> {
        let ticket = ticket.to_owned();
        let taken = self
            .write(ticket.len(), None, None, move |tx, _| {
                Box::pin(async move { tx.take_ticket(&ticket, now_secs()).await })
            })
            .await?;
        Ok(taken.value)
    }

    /// Store this process's changed stream counts (`streams: 0`: none any more) and mark it
    /// alive; forget processes not seen since `forget_before` (ms).
    pub async fn publish_presence(
        &self,
        process: &str,
        counts: Vec<PresenceCount>,
        forget_before: i64,
    ) -> Result<()> {
        let bytes = counts.iter().map(|c| c.list.len() + c.user.len()).sum::<usize>();
        let process = process.to_owned();
        self.write(bytes + process.len(), None, None, move |tx, _| {
            Box::pin(async move {
                tx.publish_presence(&process, &counts, now_ms(), forget_before).await
            })
        })
        .await?;
        Ok(())
    }

    /// Forget `process`'s presence (it is shutting down).
    pub async fn forget_presence(&self, process: &str) -> Result<()> {
        let process = process.to_owned();
        self.write(process.len(), None, None, move |tx, _| {
            Box::pin(async move { tx.forget_presence(&process).await })
        })
        .await?;
        Ok(())
    }

    /// The streams open on `lists` in every process seen since `alive_since` (ms), per list
    /// and user, counting only users who may read the list now.
    pub async fn presence(&self, lists: &[String], alive_since: i64) -> Result<Vec<PresenceCount>> {
        noted(self.backend.presence(lists, alive_since).await)
    }

    /// Create a todo in `list_id`. A client-chosen `id` that exists in the same list with the
    /// same title is an idempotent retry; otherwise an existing (or deleted) id is a conflict.
    pub async fn create_todo(
        &self,
        list_id: &str,
        id: Option<String>,
        title: String,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<Upserted<Todo>>> {
        let bytes = carried(&[Some(list_id), id.as_deref(), Some(&title), user]);
        let (list_id, by) = (list_id.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, config| {
            Box::pin(async move {
                changes::create_todo(tx, config, list_id, id, title, by.as_deref()).await
            })
        })
        .await
    }

    /// Apply a validated patch. A patch that changes nothing returns the todo as it is and
    /// records no event.
    pub async fn update_todo(
        &self,
        id: &str,
        patch: Patch,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<Todo>> {
        let after = patch.after.clone().flatten();
        let parts = [Some(id), patch.title.as_deref(), patch.list_id.as_deref(), after.as_deref()];
        let bytes = carried(&parts) + carried(&[user]);
        let (id, by) = (id.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, config| {
            Box::pin(
                async move { changes::update_todo(tx, config, id, patch, by.as_deref()).await },
            )
        })
        .await
    }

    /// Rename a list (its owner and editors); the list with the caller's role.
    pub async fn rename_list(
        &self,
        list: &str,
        title: String,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<List>> {
        let bytes = carried(&[Some(list), Some(&title), user]);
        let (list, by) = (list.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, _| {
            Box::pin(async move { changes::rename_list(tx, list, title, by.as_deref()).await })
        })
        .await
    }

    /// Delete a todo.
    pub async fn delete_todo(
        &self,
        id: &str,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<()>> {
        let bytes = carried(&[Some(id), user]);
        let (id, by) = (id.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, _| {
            Box::pin(async move { changes::delete_todo(tx, id, by.as_deref()).await })
        })
        .await
    }

    /// Delete a list and every todo in it.
    pub async fn delete_list(
        &self,
        id: &str,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<()>> {
        let bytes = carried(&[Some(id), user]);
        let (id, by) = (id.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, _| {
            Box::pin(async move { changes::delete_list(tx, id, by.as_deref()).await })
        })
        .await
    }

    /// Give `member` `role` on `list` (owner only); the member as stored. Giving the role a
    /// member already has changes nothing.
    pub async fn set_member(
        &self,
        list: &str,
        member: &str,
        role: Role,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<Member>> {
        let bytes = carried(&[Some(list), Some(member), user]);
        let (list, member, by) = (list.to_owned(), member.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, config| {
            Box::pin(async move {
                changes::set_member(tx, config, list, member, role, by.as_deref()).await
            })
        })
        .await
    }

    /// Delete the done todos of `list` in one transaction, one `todo_deleted` each; how many.
    pub async fn clear_done(
        &self,
        list: &str,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<u64>> {
        let bytes = carried(&[Some(list), user]);
        let (list, by) = (list.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, _| {
            Box::pin(async move { changes::clear_done(tx, list, by.as_deref()).await })
        })
        .await
    }

    /// Take `member`'s access to `list` away: its owner may, and a member may leave.
    pub async fn remove_member(
        &self,
        list: &str,
        member: &str,
        user: Option<&str>,
        key: Option<Idempotency>,
    ) -> Result<Written<()>> {
        let bytes = carried(&[Some(list), Some(member), user]);
        let (list, member, by) = (list.to_owned(), member.to_owned(), user.map(str::to_owned));
        self.write(bytes, user, key, move |tx, _| {
            Box::pin(async move { changes::remove_member(tx, list, member, by.as_deref()).await })
        })
        .await
    }
}

/// Run `op` in `tx`: its result and the last event it logged.
async fn run_change<T, F>(tx: &mut dyn WriteTx, config: &StoreConfig, op: F) -> Result<Written<T>>
where
    F: for<'t> FnOnce(&'t mut dyn WriteTx, &'t StoreConfig) -> BoxFuture<'t, Result<T>>,
{
    let before = tx.last_appended();
    let value = op(&mut *tx, config).await?;
    let event_id = tx.last_appended().filter(|id| Some(*id) != before);
    Ok(Written { value, event_id, replayed: false })
}

/// The request bytes a change carries: the strings it writes.
fn carried(parts: &[Option<&str>]) -> usize {
    parts.iter().flatten().map(|part| part.len()).sum()
}

/// Counts a failure of the database itself (`tidings_database_errors_total`).
fn note(e: &StoreError) {
    if let Some(kind) = e.failure_kind() {
        crate::metrics::database_error(kind);
    }
}

/// `result`, its failure counted by [`note`].
fn noted<T>(result: Result<T>) -> Result<T> {
    result.inspect_err(note)
}

/// How many streams of `user` (`""`: without access control) one process, or all of them,
/// holds open on `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceCount {
    /// The list.
    pub list: String,
    /// The user, `""` for streams without access control.
    pub user: String,
    /// Open streams; 0 in a published count means none any more.
    pub streams: u64,
}

/// How long a stream ticket is good for, in seconds: long enough to open a stream with it,
/// too short for a logged one to be of use.
pub const TICKET_SECS: u64 = 30;

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What the log keeps for resuming clients: the newest `events` events, and every event of the
/// last `secs` seconds (by the clock of the process that logged it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Events kept, at least.
    pub events: u64,
    /// Seconds of events kept, at least.
    pub secs: u64,
}

/// How far past `retain_events` the log may grow before it is pruned: pruning in batches
/// costs one statement per batch instead of one per write.
pub(crate) fn prune_slack(retain_events: u64) -> u64 {
    (retain_events / 64).max(1)
}

/// A role as stored (`viewer`, `editor`, `owner`).
pub(crate) fn parse_role(stored: &str) -> Option<Role> {
    match stored {
        "viewer" => Some(Role::Viewer),
        "editor" => Some(Role::Editor),
        "owner" => Some(Role::Owner),
        _ => None,
    }
}

/// Grants read as `(list_id, from_event, until_event)` rows.
pub(crate) fn grants_from_rows(rows: Vec<(String, i64, Option<i64>)>) -> Grants {
    let mut grants = Grants::new();
    for (list, from, until) in rows {
        grants
            .entry(list)
            .or_default()
            .push(Grant { from: from as u64, until: until.map(|u| u as u64) });
    }
    grants
}

/// A todo as both backends read it.
pub(crate) type TodoRow = (String, String, String, bool, i64, i64, String);

pub(crate) fn todo_from_row(
    (id, list_id, title, done, created_at, updated_at, position): TodoRow,
) -> Todo {
    Todo { id, list_id, title, done, created_at, updated_at, position }
}

pub(crate) const TODO_COLUMNS: &str = "id, list_id, title, done, created_at, updated_at, position";

pub(crate) type EventRow = (i64, String, String, Option<String>, bool, Option<String>, String);

pub(crate) fn event_from_row(
    (id, kind, list_id, moved_from, global, for_user, data): EventRow,
) -> LoggedEvent {
    LoggedEvent { id: id as u64, kind, list_id, moved_from, global, for_user, data }
}

/// Whose per-user events a read of the log includes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserEvents<'a> {
    /// Everyone's (the tailer).
    All,
    /// Only this user's (`None`: no one's).
    Of(Option<&'a str>),
}
