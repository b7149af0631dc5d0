//! The PostgreSQL backend: several server processes on one database.
//!
//! **Id order is commit order.** Every write transaction first takes one transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`), then reads `meta.last_event_id + 1` as its event
//! id. PostgreSQL makes a committing transaction visible before it releases its locks, so the
//! next writer can only take the lock — and so an id — after the previous id is visible to
//! every new snapshot. A reader that sees id `n` therefore sees every id below it, and the
//! tailer can follow the log with one number. (A sequence would not do: a transaction holding
//! id 11 could commit before the one holding id 10, and a reader that has seen 11 would skip
//! 10 forever.) The price is that writes are serialised across the cluster, as on SQLite; the
//! lock is held for the few statements of one change and its commit.
//!
//! **Head moved.** A commit notifies channel `tidings_events` with the new id only (never the
//! event: payloads are capped and lost while a listener is disconnected). Each process's
//! [`Listener`] reconnects with backoff and reports each reconnection as a wake-up, so the
//! tailer re-reads from its cursor; the tailer also checks on a timer.

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres as Db};
use tidings_protocol::{List, ListsSnapshot, Member, Role, Todo, TodosSnapshot, DEFAULT_LIST_ID};

use super::writer::Writer;
use super::{
    event_from_row, grants_from_rows, now_ms, parse_role, prune_slack, todo_from_row, Audience,
    Backend, EventRow, Grants, HeadSignal, HeadSignalInner, ListRow, LogHead, LoggedEvent, Page,
    Recorded, Result, Shown, StoreConfig, StoreError, TodoRow, Work, WriteTx, TODO_COLUMNS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock every writer takes first (an arbitrary constant: "tidings" in ASCII).
const LOG_LOCK: i64 = 0x0074_6964_696e_6773;

/// The notification channel a commit signals.
const CHANNEL: &str = "tidings_events";

/// How long a database-size reading is trusted before it is taken again.
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long the first connection at start may take before the server gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Postgres {
    /// One connection, opened on the writer thread.
    writer: PgPool,
    readers: PgPool,
    /// One connection for the tailer and the health check.
    monitor: PgPool,
    /// For the `LISTEN` connection.
    options: PgConnectOptions,
    retain_events: u64,
    size_limit: Option<SizeLimit>,
}

/// `max_database_bytes` on PostgreSQL: the size is read at most every [`SIZE_CHECK_EVERY`].
#[derive(Debug)]
struct SizeLimit {
    bytes: u64,
    last_size: AtomicU64,
    /// Milliseconds since `since` at the last reading (`-1`: never read).
    read_at: AtomicI64,
    since: Instant,
}

/// Where a URL points, for messages (never the password).
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

impl Postgres {
    /// Connect to and migrate `url`; the backend and the log's epoch.
    pub(super) async fn open(
        url: &str,
        config: &StoreConfig,
        writer_thread: &Writer,
    ) -> Result<(Self, String)> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?
            // A statement that runs this long is stuck (a lock, a dying server): fail it
            // rather than hold the writer.
            .options([("statement_timeout", "10s")]);
        // Each connection says what it is for, per process, in `pg_stat_activity`.
        let role = |what: &str| {
            let name = format!("tidings-{what}-{}", std::process::id());
            options.clone().application_name(&name)
        };
        let target = describe(&options);
        // One connection first, for the real reason when it fails (a pool only says that it
        // timed out).
        let first =
            tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&role("start")))
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!(
                        "no answer from PostgreSQL at {target} within {CONNECT_TIMEOUT:?}"
                    ))
                })?
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot connect to PostgreSQL at {target}: {e}"
                    ))
                })?;
        first.close().await.ok();

        let pool = |size: u32| {
            PgPoolOptions::new()
                .max_connections(size)
                .min_connections(0)
                .acquire_timeout(config.acquire_timeout)
                .idle_timeout(Some(Duration::from_secs(300)))
                // A connection that broke while idle (a database restart) is found out here,
                // not by the request that takes it.
                .test_before_acquire(true)
        };
        let writer_pool = pool(1);
        let writer_options = role("writer");
        let (writer, epoch) = writer_thread
            .spawn(async move {
                let writer = writer_pool.connect_lazy_with(writer_options);
                // sqlx takes an advisory lock of its own, so processes starting together
                // migrate once.
                MIGRATOR.run(&writer).await?;
                sqlx::query(
                    "INSERT INTO lists (id, title, created_at) VALUES ($1, 'Inbox', $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(DEFAULT_LIST_ID)
                .bind(now_ms())
                .execute(&writer)
                .await?;
                let epoch: String =
                    sqlx::query_scalar("SELECT epoch FROM meta").fetch_one(&writer).await?;
                Ok((writer, epoch))
            })
            .await?;
        let readers = pool(config.read_connections.max(1)).connect_lazy_with(role("reader"));
        let size_limit = config.max_database_bytes.map(|bytes| SizeLimit {
            bytes,
            last_size: AtomicU64::new(0),
            read_at: AtomicI64::new(-1),
            since: Instant::now(),
        });
        let monitor = pool(1).connect_lazy_with(role("tailer"));
        let backend = Postgres {
            writer,
            readers,
            monitor,
            options: role("listener"),
            retain_events: config.retain_events,
            size_limit,
        };
        Ok((backend, epoch))
    }

    async fn reader(&self) -> Result<PoolConnection<Db>> {
        Ok(self.readers.acquire().await?)
    }

    /// Refuse writes while the database is past `max_database_bytes`.
    async fn check_size(&self, conn: &mut PgConnection) -> Result<()> {
        let Some(limit) = &self.size_limit else { return Ok(()) };
        let now = limit.since.elapsed().as_millis() as i64;
        let read_at = limit.read_at.load(Ordering::Relaxed);
        if read_at < 0 || now - read_at > SIZE_CHECK_EVERY.as_millis() as i64 {
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut *conn)
                .await?;
            limit.last_size.store(size as u64, Ordering::Relaxed);
            limit.read_at.store(now, Ordering::Relaxed);
        }
        if limit.last_size.load(Ordering::Relaxed) >= limit.bytes {
            return Err(StoreError::Full);
        }
        Ok(())
    }
}

async fn head(conn: &mut PgConnection) -> Result<LogHead> {
    let (last, floor): (i64, i64) =
        sqlx::query_as("SELECT last_event_id, log_floor FROM meta").fetch_one(conn).await?;
    Ok(LogHead { last_event_id: last as u64, floor: floor as u64 })
}

/// The lists `$U` may read (every list when `$U` is NULL).
fn readable(n: u8) -> String {
    format!(
        "SELECT id FROM lists WHERE ${n}::text IS NULL OR owner = ${n} \
         UNION SELECT list_id FROM members WHERE user_id = ${n}"
    )
}

async fn first_unreadable_list(
    conn: &mut PgConnection,
    lists: &[String],
    user: Option<&str>,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT l FROM unnest($1::text[]) AS l WHERE l NOT IN ({}) LIMIT 1",
        readable(2)
    ))
    .bind(lists)
    .bind(user)
    .fetch_optional(conn)
    .await?)
}

/// A snapshot read: every statement of it sees the same committed state.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn write(&self, work: Work) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let outcome = async {
            self.check_size(&mut conn).await?;
            let mut tx = Tx { conn: &mut conn, retain_events: self.retain_events };
            tx.exec("BEGIN").await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LOG_LOCK)
                .execute(&mut *tx.conn)
                .await?;
            work(&mut tx).await?;
            tx.exec("COMMIT").await
        }
        .await;
        if let Err(e) = &outcome {
            let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await.is_ok();
            if e.poisons_connection() || !rolled_back {
                let _ = conn.close().await;
            }
        }
        outcome
    }

    async fn head(&self) -> Result<LogHead> {
        head(&mut *self.reader().await?).await
    }

    async fn lists(&self, user: Option<&str>) -> Result<ListsSnapshot> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(BEGIN_SNAPSHOT).await?;
        let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, title, created_at, CASE WHEN $1::text IS NULL THEN NULL ELSE 'owner' END \
               FROM lists WHERE $1::text IS NULL OR owner = $1 \
             UNION ALL \
             SELECT l.id, l.title, l.created_at, m.role FROM lists l \
               JOIN members m ON m.list_id = l.id WHERE m.user_id = $1 \
             ORDER BY 3, 1",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        let last_event_id = head(&mut tx).await?.last_event_id;
        tx.commit().await?;
        let lists = rows
            .into_iter()
            .map(|(id, title, created_at, role)| List {
                id,
                title,
                created_at,
                role: role.as_deref().and_then(parse_role),
            })
            .collect();
        Ok(ListsSnapshot { lists, last_event_id, epoch: None })
    }

    async fn todos(
        &self,
        lists: Option<&[String]>,
        user: Option<&str>,
        limit: u64,
    ) -> Result<TodosSnapshot> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(BEGIN_SNAPSHOT).await?;
        if let Some(missing) = match lists {
            Some(lists) => first_unreadable_list(&mut tx, lists, user).await?,
            None => None,
        } {
            return Err(StoreError::ListNotFound(missing));
        }
        let filter =
            format!("($1::text[] IS NULL OR list_id = ANY($1)) AND list_id IN ({})", readable(2));
        // Counted first (an index-only scan): a snapshot never holds more than `limit` rows.
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM todos WHERE {filter}"))
            .bind(lists)
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
        if count as u64 > limit {
            return Err(StoreError::SnapshotTooLarge { count: count as u64, limit });
        }
        let rows: Vec<TodoRow> = sqlx::query_as(&format!(
            "SELECT {TODO_COLUMNS} FROM todos WHERE {filter} ORDER BY created_at, id"
        ))
        .bind(lists)
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        let last_event_id = head(&mut tx).await?.last_event_id;
        tx.commit().await?;
        let todos = rows.into_iter().map(todo_from_row).collect();
        Ok(TodosSnapshot { todos, last_event_id, epoch: None })
    }

    async fn first_unreadable_list(
        &self,
        lists: &[String],
        user: Option<&str>,
    ) -> Result<Option<String>> {
        first_unreadable_list(&mut *self.reader().await?, lists, user).await
    }

    async fn members(&self, list: &str) -> Result<Option<(Option<String>, Vec<Member>)>> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(BEGIN_SNAPSHOT).await?;
        let Some(owner): Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM lists WHERE id = $1")
                .bind(list)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT user_id, role FROM members WHERE list_id = $1 ORDER BY user_id")
                .bind(list)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let members = rows
            .into_iter()
            .filter_map(|(user, role)| parse_role(&role).map(|role| Member { user, role }))
            .collect();
        Ok(Some((owner, members)))
    }

    async fn stream_start(&self, user: &str) -> Result<(LogHead, Grants)> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(BEGIN_SNAPSHOT).await?;
        let head = head(&mut tx).await?;
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT list_id, from_event, until_event FROM grants WHERE user_id = $1 \
             ORDER BY from_event",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((head, grants_from_rows(rows)))
    }

    async fn events_after(
        &self,
        after: u64,
        lists: Option<&[String]>,
        audience: Option<&str>,
        page: Page,
    ) -> Result<Vec<LoggedEvent>> {
        let audience = Audience::Of(audience);
        events_after(&mut *self.reader().await?, after, lists, audience, page).await
    }

    async fn head_signal(&self) -> Result<HeadSignal> {
        Ok(HeadSignal {
            inner: HeadSignalInner::Postgres(Box::new(Listener::new(self.options.clone()))),
        })
    }

    async fn tail(&self, after: u64, page: Page) -> Result<Vec<LoggedEvent>> {
        events_after(&mut *self.monitor.acquire().await?, after, None, Audience::All, page).await
    }

    async fn probe_head(&self) -> Result<LogHead> {
        head(&mut *self.monitor.acquire().await?).await
    }
}

async fn events_after(
    conn: &mut PgConnection,
    after: u64,
    lists: Option<&[String]>,
    audience: Audience<'_>,
    page: Page,
) -> Result<Vec<LoggedEvent>> {
    let (everyone, user) = match audience {
        Audience::All => (true, None),
        Audience::Of(user) => (false, user),
    };
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, kind, list_id, moved_from, global, audience, data FROM ( \
           SELECT *, SUM(octet_length(data)) OVER (ORDER BY id) AS upto FROM ( \
             SELECT id, kind, list_id, moved_from, global, audience, data FROM events \
             WHERE id > $1 AND ($5 OR audience IS NULL OR audience = $6) \
               AND ($2::text[] IS NULL OR global OR audience = $6 \
                 OR list_id = ANY($2) OR moved_from = ANY($2)) \
             ORDER BY id LIMIT $3) AS page) AS sized \
         WHERE upto - octet_length(data) < $4 ORDER BY id",
    )
    .bind(after as i64)
    .bind(lists)
    .bind(i64::from(page.events))
    .bind(i64::from(page.bytes))
    .bind(everyone)
    .bind(user)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(event_from_row).collect())
}

/// One write transaction on the writer connection, under the log's advisory lock.
struct Tx<'c> {
    conn: &'c mut PgConnection,
    retain_events: u64,
}

impl Tx<'_> {
    async fn exec(&mut self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&mut *self.conn).await?;
        Ok(())
    }

    async fn list_exists(&mut self, id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lists WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?)
    }
}

#[async_trait::async_trait]
impl WriteTx for Tx<'_> {
    async fn list(&mut self, id: &str) -> Result<Option<ListRow>> {
        let row: Option<(String, String, i64, Option<String>)> =
            sqlx::query_as("SELECT id, title, created_at, owner FROM lists WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(row.map(|(id, title, created_at, owner)| ListRow {
            list: List { id, title, created_at, role: None },
            owner,
        }))
    }

    async fn count_lists(&mut self, owner: Option<&str>) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM lists WHERE $1::text IS NULL OR owner = $1")
                .bind(owner)
                .fetch_one(&mut *self.conn)
                .await?;
        Ok(n as u64)
    }

    async fn insert_list(&mut self, list: &List, owner: Option<&str>) -> Result<()> {
        sqlx::query("INSERT INTO lists (id, title, created_at, owner) VALUES ($1, $2, $3, $4)")
            .bind(&list.id)
            .bind(&list.title)
            .bind(list.created_at)
            .bind(owner)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn delete_list(&mut self, id: &str, event_id: u64) -> Result<bool> {
        let deleted: bool = sqlx::query_scalar(
            "WITH buried AS ( \
               INSERT INTO tombstones (id, list_id, event_id) \
               SELECT id, list_id, $2 FROM todos WHERE list_id = $1 \
               ON CONFLICT (id) DO UPDATE SET event_id = EXCLUDED.event_id), \
             gone AS (DELETE FROM todos WHERE list_id = $1) \
             SELECT EXISTS (SELECT 1 FROM lists WHERE id = $1)",
        )
        .bind(id)
        .bind(event_id as i64)
        .fetch_one(&mut *self.conn)
        .await?;
        // Members go with the list (ON DELETE CASCADE).
        sqlx::query("DELETE FROM lists WHERE id = $1").bind(id).execute(&mut *self.conn).await?;
        Ok(deleted)
    }

    async fn member_role(&mut self, list: &str, user: &str) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE list_id = $1 AND user_id = $2")
                .bind(list)
                .bind(user)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(role.as_deref().and_then(parse_role))
    }

    async fn set_member(&mut self, list: &str, user: &str, role: Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO members (list_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (list_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(list)
        .bind(user)
        .bind(role.as_str())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn remove_member(&mut self, list: &str, user: &str) -> Result<bool> {
        let removed = sqlx::query("DELETE FROM members WHERE list_id = $1 AND user_id = $2")
            .bind(list)
            .bind(user)
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn count_members(&mut self, list: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE list_id = $1")
            .bind(list)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(n as u64)
    }

    async fn open_grant(&mut self, list: &str, user: &str, from: u64) -> Result<()> {
        sqlx::query("INSERT INTO grants (list_id, user_id, from_event) VALUES ($1, $2, $3)")
            .bind(list)
            .bind(user)
            .bind(from as i64)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn close_grants(&mut self, list: &str, user: Option<&str>, at: u64) -> Result<()> {
        sqlx::query(
            "UPDATE grants SET until_event = $1 \
             WHERE list_id = $2 AND until_event IS NULL AND ($3::text IS NULL OR user_id = $3)",
        )
        .bind(at as i64)
        .bind(list)
        .bind(user)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn user_inbox(&mut self, user: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT inbox FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *self.conn)
            .await?)
    }

    async fn set_user_inbox(&mut self, user: &str, inbox: &str) -> Result<()> {
        sqlx::query("INSERT INTO users (id, inbox) VALUES ($1, $2)")
            .bind(user)
            .bind(inbox)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn claim_list_id(&mut self, base: &str) -> Result<String> {
        // See the SQLite backend: one counter per base, client-chosen ids stepped over.
        loop {
            let n: i64 = sqlx::query_scalar(
                "INSERT INTO slugs (base, taken) VALUES ($1, 1) \
                 ON CONFLICT (base) DO UPDATE SET taken = slugs.taken + 1 RETURNING taken",
            )
            .bind(base)
            .fetch_one(&mut *self.conn)
            .await?;
            let candidate = if n == 1 { base.to_owned() } else { format!("{base}-{n}") };
            if !self.list_exists(&candidate).await? {
                return Ok(candidate);
            }
        }
    }

    async fn todo(&mut self, id: &str) -> Result<Option<Todo>> {
        let row: Option<TodoRow> =
            sqlx::query_as(&format!("SELECT {TODO_COLUMNS} FROM todos WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(row.map(todo_from_row))
    }

    async fn is_tombstoned(&mut self, id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tombstones WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?)
    }

    async fn count_todos(&mut self, list: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM todos WHERE list_id = $1")
            .bind(list)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(n as u64)
    }

    async fn insert_todo(&mut self, todo: &Todo) -> Result<()> {
        sqlx::query(&format!("INSERT INTO todos ({TODO_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
            .bind(&todo.id)
            .bind(&todo.list_id)
            .bind(&todo.title)
            .bind(todo.done)
            .bind(todo.created_at)
            .bind(todo.updated_at)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn update_todo(&mut self, todo: &Todo) -> Result<()> {
        sqlx::query(
            "UPDATE todos SET title = $1, done = $2, list_id = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&todo.title)
        .bind(todo.done)
        .bind(&todo.list_id)
        .bind(todo.updated_at)
        .bind(&todo.id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn delete_todo(&mut self, id: &str, event_id: u64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "WITH gone AS (DELETE FROM todos WHERE id = $1 RETURNING id, list_id), \
             buried AS (INSERT INTO tombstones (id, list_id, event_id) \
               SELECT id, list_id, $2 FROM gone \
               ON CONFLICT (id) DO UPDATE SET event_id = EXCLUDED.event_id) \
             SELECT list_id FROM gone",
        )
        .bind(id)
        .bind(event_id as i64)
        .fetch_optional(&mut *self.conn)
        .await?)
    }

    async fn next_created_at(&mut self, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE meta SET last_created_at = GREATEST(last_created_at + 1, $1) \
             RETURNING last_created_at",
        )
        .bind(now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn next_event_id(&mut self) -> Result<u64> {
        // Under the advisory lock: nobody else can take this id.
        let last: i64 =
            sqlx::query_scalar("SELECT last_event_id FROM meta").fetch_one(&mut *self.conn).await?;
        Ok(last as u64 + 1)
    }

    async fn append(&mut self, id: u64, recorded: &Recorded, data: &str) -> Result<()> {
        let event = &recorded.event;
        // One round trip: the row, the head, and the notification (delivered at commit).
        sqlx::query(
            "WITH logged AS ( \
               INSERT INTO events (id, kind, list_id, moved_from, global, audience, data) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)), \
             moved AS (UPDATE meta SET last_event_id = $1) \
             SELECT pg_notify($8, $1::text)",
        )
        .bind(id as i64)
        .bind(event.name())
        .bind(event.list_id())
        .bind(event.moved_from())
        .bind(recorded.global)
        .bind(recorded.audience.as_deref())
        .bind(data)
        .bind(CHANNEL)
        .execute(&mut *self.conn)
        .await?;
        if id > self.retain_events && id % prune_slack(self.retain_events) == 0 {
            sqlx::query(
                "WITH pruned AS (DELETE FROM events WHERE id <= $1), \
                 forgotten AS (DELETE FROM tombstones WHERE event_id <= $1), \
                 closed AS (DELETE FROM grants WHERE until_event <= $1) \
                 UPDATE meta SET log_floor = GREATEST(log_floor, $1)",
            )
            .bind((id - self.retain_events) as i64)
            .execute(&mut *self.conn)
            .await?;
        }
        Ok(())
    }
}

/// `LISTEN tidings_events`, reconnecting with backoff.
pub(super) struct Listener {
    options: PgConnectOptions,
    listener: Option<PgListener>,
    /// Delay before the next reconnection attempt; doubles up to [`MAX_BACKOFF`].
    backoff: Duration,
    connected: Arc<std::sync::atomic::AtomicBool>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Listener {
    fn new(options: PgConnectOptions) -> Self {
        Listener {
            options,
            listener: None,
            backoff: MIN_BACKOFF,
            connected: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    async fn connect(&self) -> std::result::Result<PgListener, sqlx::Error> {
        // A pool of its own, so the listening connection is never one a request needs.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Wait for a notification. A (re)connection also counts: whatever was committed while
    /// no one listened must be read.
    pub(super) async fn changed(&mut self) {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match self.connect().await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        self.connected.store(true, Ordering::Relaxed);
                        self.backoff = MIN_BACKOFF;
                        return;
                    }
                    Err(e) => {
                        log::warn!(
                            "LISTEN {CHANNEL}: cannot connect ({}); retrying in {:?}",
                            Shown(&e.to_string()),
                            self.backoff
                        );
                        self.wait_backoff().await;
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(_)) => return,
                Ok(None) | Err(_) => {
                    // The connection is gone; notifications sent meanwhile are lost.
                    self.listener = None;
                    self.connected.store(false, Ordering::Relaxed);
                    log::warn!("LISTEN {CHANNEL}: connection lost; reconnecting");
                }
            }
        }
    }

    async fn wait_backoff(&mut self) {
        let jitter = fastrand::u64(0..=self.backoff.as_millis() as u64 / 2);
        tokio::time::sleep(self.backoff + Duration::from_millis(jitter)).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}
