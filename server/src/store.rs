//! SQLite storage: lists, todos and the durable event log.
//!
//! Every change is one transaction that also appends its event to the log, so the log and the
//! data never disagree. All writes go through one connection behind a lock that is held from
//! `BEGIN` until the event has been published to the hub: event ids are assigned, committed
//! and broadcast in the same order, which is what lets a stream skip live events it already
//! replayed by comparing ids.
//!
//! Write transactions run on a thread of their own (a single-threaded tokio runtime). Every
//! query is a round trip to SQLite's connection thread, and a change takes about six; on the
//! server's runtime each return would queue behind the thousands of stream tasks the previous
//! change woke, so under fan-out load a `POST` waited for many fan-out rounds. On the writer
//! thread a change costs the request one wake-up instead.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, Transaction};
use tidings_protocol::{List, ListsSnapshot, Todo, TodoEvent, TodosSnapshot, DEFAULT_LIST_ID};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Mutex, MutexGuard};

use crate::error::AppError;
use crate::hub::{encode, Frame, Hub, Scope};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One row of the event log, as stored: the data is the JSON sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Global event id.
    pub id: u64,
    /// SSE event name (`todo_created`, …).
    pub kind: String,
    /// Self-describing JSON data.
    pub data: String,
}

impl LoggedEvent {
    /// The SSE frame of this event.
    pub fn frame(&self) -> bytes::Bytes {
        encode(Some(self.id), &self.kind, &self.data, None)
    }
}

/// The outcome of an idempotent create: the row, and whether this call created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted<T> {
    /// The created (or already existing) value.
    pub value: T,
    /// `false` when an identical earlier request had already created it.
    pub created: bool,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One connection: SQLite has one writer at a time anyway.
    writer: SqlitePool,
    /// Held from `BEGIN` until the event is published, so publish order is commit order.
    write_lock: Mutex<()>,
    /// For an in-memory database, the writer pool itself (its one connection is the
    /// database).
    readers: SqlitePool,
    hub: Hub,
    retain_events: u64,
    /// Where write transactions run.
    writer_thread: WriterThread,
    /// The newest `created_at` given out; see [`Store::next_created_at`].
    last_created_at: AtomicI64,
}

/// A thread running a single-threaded runtime for write transactions; it ends when this is
/// dropped (with the last [`Store`] clone).
#[derive(Debug)]
struct WriterThread {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("tidings-writer".into()).spawn(move || {
            // Ends when the sender is dropped; the runtime is then dropped on its own thread.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(WriterThread { handle, _stop: stop })
    }

    /// Run `work` on the writer thread and wait for its result.
    async fn run<T, F>(&self, work: F) -> Result<T, AppError>
    where
        F: Future<Output = Result<T, AppError>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| AppError::Internal(format!("writer task: {e}")))?
    }
}

type TodoRow = (String, String, String, bool, i64, i64);

fn todo_from_row((id, list_id, title, done, created_at, updated_at): TodoRow) -> Todo {
    Todo { id, list_id, title, done, created_at, updated_at }
}

const TODO_COLUMNS: &str = "id, list_id, title, done, created_at, updated_at";

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A JSON array of strings, the form `json_each(?)` takes in the queries below.
fn json_array(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings always serialize")
}

impl Store {
    /// Open (creating if needed) and migrate the database at `url`, make sure the default
    /// list exists, and publish committed changes to `hub`.
    pub async fn open(url: &str, retain_events: u64, hub: Hub) -> Result<Self, AppError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a change acknowledged to a client survives power loss, not only restarts.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");

        let pool = |size: u32| {
            SqlitePoolOptions::new()
                .max_connections(size)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                // An in-memory database lives as long as a connection to it: never recycle.
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let writer_thread = WriterThread::start()
            .map_err(|e| AppError::Internal(format!("starting the writer thread: {e}")))?;
        let writer_options = options.clone();
        let (writer, newest) = writer_thread
            .run(async move {
                let writer = pool(1).connect_with(writer_options).await?;
                MIGRATOR.run(&writer).await?;
                sqlx::query(
                    "INSERT OR IGNORE INTO lists (id, title, created_at) VALUES (?, 'Inbox', ?)",
                )
                .bind(DEFAULT_LIST_ID)
                .bind(now_ms())
                .execute(&writer)
                .await?;
                let newest: i64 = sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT MAX(created_at) FROM todos), 0), \
                     (SELECT MAX(created_at) FROM lists))",
                )
                .fetch_one(&writer)
                .await?;
                Ok((writer, newest))
            })
            .await?;
        let readers =
            if in_memory { writer.clone() } else { pool(4).connect_with(options).await? };
        Ok(Store {
            inner: Arc::new(Inner {
                writer,
                write_lock: Mutex::new(()),
                readers,
                hub,
                retain_events,
                writer_thread,
                last_created_at: AtomicI64::new(newest),
            }),
        })
    }

    async fn reader(&self) -> Result<PoolConnection<Sqlite>, AppError> {
        Ok(self.inner.readers.acquire().await?)
    }

    /// Begin a write transaction under the write lock; keep the guard until after
    /// [`Store::commit`].
    async fn begin_write(
        &self,
    ) -> Result<(MutexGuard<'_, ()>, Transaction<'static, Sqlite>), AppError> {
        let guard = self.inner.write_lock.lock().await;
        let tx = self.inner.writer.begin().await?;
        Ok((guard, tx))
    }

    /// A creation time for a new list or todo: now, but always later than every earlier one,
    /// so display order ([`Todo::order_key`]) is creation order even for changes made in the
    /// same millisecond or across a clock step back.
    fn next_created_at(&self) -> i64 {
        let now = now_ms();
        let previous = self
            .inner
            .last_created_at
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1)))
            .unwrap_or_else(|last| last);
        now.max(previous + 1)
    }

    /// The newest event id (0 before the first change).
    pub async fn head(&self) -> Result<u64, AppError> {
        let mut conn = self.reader().await?;
        Ok(head(&mut conn).await?)
    }

    /// The oldest event id still in the log, if any.
    pub async fn oldest_retained(&self) -> Result<Option<u64>, AppError> {
        let mut conn = self.reader().await?;
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(id) FROM events").fetch_one(&mut *conn).await?;
        Ok(oldest.map(|id| id as u64))
    }

    /// The first of `lists` that does not exist, if any.
    pub async fn first_missing_list(&self, lists: &[String]) -> Result<Option<String>, AppError> {
        let mut conn = self.reader().await?;
        Ok(first_missing_list(&mut conn, lists).await?)
    }

    /// Every list, with the event id it is current as of.
    pub async fn lists(&self) -> Result<ListsSnapshot, AppError> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin().await?;
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, title, created_at FROM lists ORDER BY created_at, id")
                .fetch_all(&mut *tx)
                .await?;
        let last_event_id = head(&mut tx).await?;
        tx.commit().await?;
        let lists = rows
            .into_iter()
            .map(|(id, title, created_at)| List { id, title, created_at })
            .collect();
        Ok(ListsSnapshot { lists, last_event_id })
    }

    /// The todos of `lists` (`None`: every list) and the event id they are current as of, read in one
    /// transaction: a stream opened at that id yields exactly the later changes.
    pub async fn todos(&self, lists: Option<&[String]>) -> Result<TodosSnapshot, AppError> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin().await?;
        if let Some(missing) = match lists {
            Some(lists) => first_missing_list(&mut tx, lists).await?,
            None => None,
        } {
            return Err(AppError::list_not_found(&missing));
        }
        let rows: Vec<TodoRow> = sqlx::query_as(&format!(
            "SELECT {TODO_COLUMNS} FROM todos \
             WHERE ?1 IS NULL OR list_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY created_at, id"
        ))
        .bind(lists.map(json_array))
        .fetch_all(&mut *tx)
        .await?;
        let last_event_id = head(&mut tx).await?;
        tx.commit().await?;
        Ok(TodosSnapshot { todos: rows.into_iter().map(todo_from_row).collect(), last_event_id })
    }

    /// Up to `limit` logged events after `after`, oldest first, for `lists` (`None`: all).
    pub async fn events_after(
        &self,
        after: u64,
        lists: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, AppError> {
        let mut conn = self.reader().await?;
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, kind, data FROM events WHERE id > ?1 AND (?2 IS NULL OR global = 1 \
             OR list_id IN (SELECT value FROM json_each(?2)) \
             OR moved_from IN (SELECT value FROM json_each(?2))) ORDER BY id LIMIT ?3",
        )
        .bind(after as i64)
        .bind(lists.map(json_array))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, data)| LoggedEvent { id: id as u64, kind, data })
            .collect())
    }

    /// Create a list. An `id` that exists with the same title is an idempotent retry; with
    /// another title it is a conflict. Without an id, one is derived from the title.
    pub async fn create_list(
        &self,
        id: Option<String>,
        title: String,
    ) -> Result<Upserted<List>, AppError> {
        let store = self.clone();
        self.inner.writer_thread.run(async move { store.create_list_now(id, title).await }).await
    }

    async fn create_list_now(
        &self,
        id: Option<String>,
        title: String,
    ) -> Result<Upserted<List>, AppError> {
        let (_lock, mut tx) = self.begin_write().await?;
        let id = match id {
            Some(id) => {
                let existing: Option<(String, i64)> =
                    sqlx::query_as("SELECT title, created_at FROM lists WHERE id = ?")
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((existing_title, created_at)) = existing {
                    return if existing_title == title {
                        Ok(Upserted { value: List { id, title, created_at }, created: false })
                    } else {
                        Err(AppError::Conflict(
                            "list_exists",
                            format!("a list with id `{id}` already exists"),
                        ))
                    };
                }
                id
            }
            None => free_list_id(&mut tx, &crate::validate::slugify(&title)).await?,
        };
        let list = List { id, title, created_at: self.next_created_at() };
        sqlx::query("INSERT INTO lists (id, title, created_at) VALUES (?, ?, ?)")
            .bind(&list.id)
            .bind(&list.title)
            .bind(list.created_at)
            .execute(&mut *tx)
            .await?;
        self.commit(tx, &TodoEvent::ListCreated { list: list.clone() }).await?;
        Ok(Upserted { value: list, created: true })
    }

    /// Create a todo in `list_id`. A client-chosen `id` that exists in the same list with the
    /// same title is an idempotent retry; otherwise an existing id is a conflict.
    pub async fn create_todo(
        &self,
        list_id: &str,
        id: Option<String>,
        title: String,
    ) -> Result<Upserted<Todo>, AppError> {
        let (store, list_id) = (self.clone(), list_id.to_owned());
        self.inner
            .writer_thread
            .run(async move { store.create_todo_now(&list_id, id, title).await })
            .await
    }

    async fn create_todo_now(
        &self,
        list_id: &str,
        id: Option<String>,
        title: String,
    ) -> Result<Upserted<Todo>, AppError> {
        let (_lock, mut tx) = self.begin_write().await?;
        if !list_exists(&mut tx, list_id).await? {
            return Err(AppError::list_not_found(list_id));
        }
        if let Some(id) = &id {
            if let Some(existing) = find_todo(&mut tx, id).await? {
                return if existing.list_id == list_id && existing.title == title {
                    Ok(Upserted { value: existing, created: false })
                } else {
                    Err(AppError::Conflict(
                        "id_conflict",
                        format!("a different todo with id `{id}` already exists"),
                    ))
                };
            }
        }
        let now = self.next_created_at();
        let todo = Todo {
            id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            list_id: list_id.to_owned(),
            title,
            done: false,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(&format!("INSERT INTO todos ({TODO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"))
            .bind(&todo.id)
            .bind(&todo.list_id)
            .bind(&todo.title)
            .bind(todo.done)
            .bind(todo.created_at)
            .bind(todo.updated_at)
            .execute(&mut *tx)
            .await?;
        self.commit(tx, &TodoEvent::TodoCreated { todo: todo.clone() }).await?;
        Ok(Upserted { value: todo, created: true })
    }

    /// Apply a validated patch. A patch that changes nothing returns the todo as it is and
    /// records no event.
    pub async fn update_todo(
        &self,
        id: &str,
        title: Option<String>,
        done: Option<bool>,
        list_id: Option<String>,
    ) -> Result<Todo, AppError> {
        let (store, id) = (self.clone(), id.to_owned());
        self.inner
            .writer_thread
            .run(async move { store.update_todo_now(&id, title, done, list_id).await })
            .await
    }

    async fn update_todo_now(
        &self,
        id: &str,
        title: Option<String>,
        done: Option<bool>,
        list_id: Option<String>,
    ) -> Result<Todo, AppError> {
        let (_lock, mut tx) = self.begin_write().await?;
        let before = find_todo(&mut tx, id).await?.ok_or_else(|| AppError::todo_not_found(id))?;
        if let Some(target) = &list_id {
            if !list_exists(&mut tx, target).await? {
                return Err(AppError::Unprocessable(
                    "unknown_list",
                    format!("cannot move to `{target}`: no such list"),
                ));
            }
        }
        let mut after = before.clone();
        after.title = title.unwrap_or(after.title);
        after.done = done.unwrap_or(after.done);
        after.list_id = list_id.unwrap_or(after.list_id);
        if after == before {
            return Ok(before);
        }
        after.updated_at = now_ms().max(before.updated_at);
        sqlx::query(
            "UPDATE todos SET title = ?, done = ?, list_id = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&after.title)
        .bind(after.done)
        .bind(&after.list_id)
        .bind(after.updated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let moved_from = (after.list_id != before.list_id).then_some(before.list_id);
        let event = TodoEvent::TodoUpdated { todo: after.clone(), moved_from };
        self.commit(tx, &event).await?;
        Ok(after)
    }

    /// Delete a todo.
    pub async fn delete_todo(&self, id: &str) -> Result<(), AppError> {
        let (store, id) = (self.clone(), id.to_owned());
        self.inner.writer_thread.run(async move { store.delete_todo_now(&id).await }).await
    }

    async fn delete_todo_now(&self, id: &str) -> Result<(), AppError> {
        let (_lock, mut tx) = self.begin_write().await?;
        let list_id: Option<String> =
            sqlx::query_scalar("DELETE FROM todos WHERE id = ? RETURNING list_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let list_id = list_id.ok_or_else(|| AppError::todo_not_found(id))?;
        let event = TodoEvent::TodoDeleted { id: id.to_owned(), list_id };
        self.commit(tx, &event).await
    }

    /// Append `event` to the log, prune what is past retention, commit, then publish.
    ///
    /// Runs while the caller holds the write lock, so the publish happens before any later
    /// transaction can commit.
    async fn commit(
        &self,
        mut tx: Transaction<'_, Sqlite>,
        event: &TodoEvent,
    ) -> Result<(), AppError> {
        // Serialized once: the same string is logged and broadcast.
        let data = serde_json::to_string(event).expect("events always serialize");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (kind, list_id, moved_from, global, data) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(event.name())
        .bind(event.list_id())
        .bind(event.moved_from())
        .bind(event.is_global())
        .bind(&data)
        .fetch_one(&mut *tx)
        .await?;
        let id = id as u64;
        if id > self.inner.retain_events {
            sqlx::query("DELETE FROM events WHERE id <= ?")
                .bind((id - self.inner.retain_events) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.inner.hub.publish(Frame {
            id: Some(id),
            scope: Scope::of(event),
            bytes: encode(Some(id), event.name(), &data, None),
        });
        Ok(())
    }
}

async fn head(conn: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    let head: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(conn).await?;
    Ok(head as u64)
}

async fn list_exists(conn: &mut SqliteConnection, id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lists WHERE id = ?)")
        .bind(id)
        .fetch_one(conn)
        .await
}

async fn first_missing_list(
    conn: &mut SqliteConnection,
    lists: &[String],
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT value FROM json_each(?) WHERE value NOT IN (SELECT id FROM lists) LIMIT 1",
    )
    .bind(json_array(lists))
    .fetch_optional(conn)
    .await
}

async fn find_todo(conn: &mut SqliteConnection, id: &str) -> Result<Option<Todo>, sqlx::Error> {
    let row: Option<TodoRow> =
        sqlx::query_as(&format!("SELECT {TODO_COLUMNS} FROM todos WHERE id = ?"))
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(todo_from_row))
}

/// `base`, or `base-2`, `base-3`, … : the first id no list has.
async fn free_list_id(conn: &mut SqliteConnection, base: &str) -> Result<String, AppError> {
    for n in 1..=1000u32 {
        let candidate = if n == 1 { base.to_owned() } else { format!("{base}-{n}") };
        if !list_exists(conn, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(AppError::Conflict(
        "list_exists",
        format!("too many lists named like `{base}`; choose an id"),
    ))
}
