//! The SQLite backend: one file (or memory), one writer connection, a few readers.
//!
//! Write transactions are plain `BEGIN IMMEDIATE` … `COMMIT` statements on the one writer
//! connection, never sqlx's nested transaction tracking: when SQLite rolls a transaction back
//! by itself (a full disk, an I/O error) sqlx's own `ROLLBACK` fails and its depth counter
//! would stay at one, turning every later transaction into a savepoint that never commits.
//! After any failed statement, commit or rollback the writer connection is closed and the
//! pool opens a fresh one.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite as Db};
use tidings_protocol::{List, ListsSnapshot, Member, Role, Todo, TodosSnapshot, DEFAULT_LIST_ID};
use tokio::sync::watch;

use super::writer::Writer;
use super::{
    event_from_row, grants_from_rows, now_ms, parse_role, prune_slack, todo_from_row, Audience,
    Backend, EventRow, Grants, HeadSignal, HeadSignalInner, ListRow, LogHead, LoggedEvent, Page,
    Recorded, Result, StoreConfig, StoreError, TodoRow, Work, WriteTx, TODO_COLUMNS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite's page size for new databases; `max_database_bytes` is counted in these.
const PAGE_BYTES: u64 = 4096;

#[derive(Debug)]
pub(super) struct Sqlite {
    /// One connection: SQLite has one writer at a time anyway. Opened on the writer thread.
    writer: SqlitePool,
    /// For an in-memory database, the writer pool itself (its one connection is the
    /// database, so it is also never replaced).
    readers: SqlitePool,
    /// One connection for the tailer and the health check.
    monitor: SqlitePool,
    in_memory: bool,
    retain_events: u64,
    /// The newest committed event id, sent after each commit.
    head: watch::Sender<u64>,
}

/// A JSON array of strings, the form `json_each(?)` takes in the queries below.
fn json_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Serializing a string cannot fail.
        out.push_str(&serde_json::to_string(item).unwrap_or_default());
    }
    out.push(']');
    out
}

impl Sqlite {
    /// Open and migrate `url`; the backend and the log's epoch.
    pub(super) async fn open(
        url: &str,
        config: &StoreConfig,
        writer_thread: &Writer,
    ) -> Result<(Self, String)> {
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a change acknowledged to a client survives power loss, not only restarts.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(bytes) = config.max_database_bytes {
            // Pages past this fail with SQLITE_FULL, exactly like a full disk.
            options = options.pragma("max_page_count", (bytes / PAGE_BYTES).max(1).to_string());
        }
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = |size: u32| {
            SqlitePoolOptions::new()
                .max_connections(size)
                .min_connections(if in_memory { 1 } else { 0 })
                .acquire_timeout(config.acquire_timeout)
                // An in-memory database lives as long as a connection to it: never recycle.
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let writer_options = options.clone();
        let writer_pool = pool(1);
        let (writer, epoch) = writer_thread
            .spawn(async move {
                let writer = writer_pool.connect_with(writer_options).await?;
                MIGRATOR.run(&writer).await?;
                sqlx::query(
                    "INSERT OR IGNORE INTO lists (id, title, created_at) VALUES (?, 'Inbox', ?)",
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
        let (readers, monitor) = if in_memory {
            (writer.clone(), writer.clone())
        } else {
            (
                pool(config.read_connections.max(1)).connect_with(options.clone()).await?,
                pool(1).connect_with(options).await?,
            )
        };
        let backend = Sqlite {
            writer,
            readers,
            monitor,
            in_memory,
            retain_events: config.retain_events,
            head: watch::channel(0).0,
        };
        let head = backend.head().await?;
        backend.head.send_replace(head.last_event_id);
        Ok((backend, epoch))
    }

    async fn reader(&self) -> Result<PoolConnection<Db>> {
        Ok(self.readers.acquire().await?)
    }
}

async fn head(conn: &mut SqliteConnection) -> Result<LogHead> {
    let (last, floor): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COALESCE(MAX(id), 0) FROM events), log_floor FROM meta")
            .fetch_one(conn)
            .await?;
    Ok(LogHead { last_event_id: last as u64, floor: floor as u64 })
}

/// The lists `?U` may read (every list when `?U` is NULL): a subquery over `?U` = `user`.
const READABLE: &str = "SELECT id FROM lists WHERE ?U IS NULL OR owner = ?U \
                        UNION SELECT list_id FROM members WHERE user_id = ?U";

/// `READABLE` with the user bound at parameter `n`.
fn readable(n: u8) -> String {
    READABLE.replace("?U", &format!("?{n}"))
}

async fn first_unreadable_list(
    conn: &mut SqliteConnection,
    lists: &[String],
    user: Option<&str>,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT value FROM json_each(?1) WHERE value NOT IN ({}) LIMIT 1",
        readable(2)
    ))
    .bind(json_array(lists))
    .bind(user)
    .fetch_optional(conn)
    .await?)
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn write(&self, work: Work) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = Tx { conn: &mut conn, retain_events: self.retain_events, appended: None };
        let outcome = match tx.exec("BEGIN IMMEDIATE").await {
            Ok(()) => match work(&mut tx).await {
                Ok(()) => tx.exec("COMMIT").await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let appended = tx.appended;
        match outcome {
            Ok(()) => {
                if let Some(id) = appended {
                    self.head.send_replace(id);
                }
                Ok(())
            }
            Err(e) => {
                let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await.is_ok();
                if (e.poisons_connection() || !rolled_back) && !self.in_memory {
                    // Its transaction state is unknown: never use it again.
                    let _ = conn.close().await;
                }
                Err(e)
            }
        }
    }

    async fn head(&self) -> Result<LogHead> {
        head(&mut *self.reader().await?).await
    }

    async fn lists(&self, user: Option<&str>) -> Result<ListsSnapshot> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin().await?;
        let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, title, created_at, CASE WHEN ?1 IS NULL THEN NULL ELSE 'owner' END \
               FROM lists WHERE ?1 IS NULL OR owner = ?1 \
             UNION ALL \
             SELECT l.id, l.title, l.created_at, m.role FROM lists l \
               JOIN members m ON m.list_id = l.id WHERE m.user_id = ?1 \
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
        let mut tx = conn.begin().await?;
        if let Some(missing) = match lists {
            Some(lists) => first_unreadable_list(&mut tx, lists, user).await?,
            None => None,
        } {
            return Err(StoreError::ListNotFound(missing));
        }
        // `?1`: the lists asked for (NULL: every readable one), `?2`: the user.
        let filter = format!(
            "(?1 IS NULL OR list_id IN (SELECT value FROM json_each(?1))) AND list_id IN ({})",
            readable(2)
        );
        // Counted first (an index-only scan): a snapshot never holds more than `limit` rows.
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM todos WHERE {filter}"))
            .bind(lists.map(json_array))
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
        if count as u64 > limit {
            return Err(StoreError::SnapshotTooLarge { count: count as u64, limit });
        }
        let rows: Vec<TodoRow> = sqlx::query_as(&format!(
            "SELECT {TODO_COLUMNS} FROM todos WHERE {filter} ORDER BY created_at, id"
        ))
        .bind(lists.map(json_array))
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
        let mut tx = conn.begin().await?;
        let Some(owner): Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM lists WHERE id = ?")
                .bind(list)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT user_id, role FROM members WHERE list_id = ? ORDER BY user_id")
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
        let mut tx = conn.begin().await?;
        let head = head(&mut tx).await?;
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT list_id, from_event, until_event FROM grants WHERE user_id = ? \
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
        Ok(HeadSignal { inner: HeadSignalInner::Local(self.head.subscribe()) })
    }

    async fn tail(&self, after: u64, page: Page) -> Result<Vec<LoggedEvent>> {
        events_after(&mut *self.monitor.acquire().await?, after, None, Audience::All, page).await
    }

    async fn probe_head(&self) -> Result<LogHead> {
        head(&mut *self.monitor.acquire().await?).await
    }
}

async fn events_after(
    conn: &mut SqliteConnection,
    after: u64,
    lists: Option<&[String]>,
    audience: Audience<'_>,
    page: Page,
) -> Result<Vec<LoggedEvent>> {
    let (everyone, user) = match audience {
        Audience::All => (true, None),
        Audience::Of(user) => (false, user),
    };
    // The running sum of data bytes cuts the page: a replay never holds more than about
    // `page.bytes`, however long the titles.
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, kind, list_id, moved_from, global, audience, data FROM ( \
           SELECT *, SUM(octet_length(data)) OVER (ORDER BY id) AS upto FROM ( \
             SELECT id, kind, list_id, moved_from, global, audience, data FROM events \
             WHERE id > ?1 AND (?5 OR audience IS NULL OR audience = ?6) \
               AND (?2 IS NULL OR global = 1 OR audience = ?6 \
                 OR list_id IN (SELECT value FROM json_each(?2)) \
                 OR moved_from IN (SELECT value FROM json_each(?2))) \
             ORDER BY id LIMIT ?3)) \
         WHERE upto - octet_length(data) < ?4 ORDER BY id",
    )
    .bind(after as i64)
    .bind(lists.map(json_array))
    .bind(page.events)
    .bind(page.bytes)
    .bind(everyone)
    .bind(user)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(event_from_row).collect())
}

/// One write transaction on the writer connection.
struct Tx<'c> {
    conn: &'c mut SqliteConnection,
    retain_events: u64,
    /// The id of the event this transaction appended.
    appended: Option<u64>,
}

impl Tx<'_> {
    async fn exec(&mut self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&mut *self.conn).await?;
        Ok(())
    }

    async fn list_exists(&mut self, id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lists WHERE id = ?)")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?)
    }
}

#[async_trait::async_trait]
impl WriteTx for Tx<'_> {
    async fn list(&mut self, id: &str) -> Result<Option<ListRow>> {
        let row: Option<(String, String, i64, Option<String>)> =
            sqlx::query_as("SELECT id, title, created_at, owner FROM lists WHERE id = ?")
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
            sqlx::query_scalar("SELECT COUNT(*) FROM lists WHERE ?1 IS NULL OR owner = ?1")
                .bind(owner)
                .fetch_one(&mut *self.conn)
                .await?;
        Ok(n as u64)
    }

    async fn insert_list(&mut self, list: &List, owner: Option<&str>) -> Result<()> {
        sqlx::query("INSERT INTO lists (id, title, created_at, owner) VALUES (?, ?, ?, ?)")
            .bind(&list.id)
            .bind(&list.title)
            .bind(list.created_at)
            .bind(owner)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn delete_list(&mut self, id: &str, event_id: u64) -> Result<bool> {
        sqlx::query(
            "INSERT OR REPLACE INTO tombstones (id, list_id, event_id) \
             SELECT id, list_id, ? FROM todos WHERE list_id = ?",
        )
        .bind(event_id as i64)
        .bind(id)
        .execute(&mut *self.conn)
        .await?;
        sqlx::query("DELETE FROM todos WHERE list_id = ?")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        // Members go with the list (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM lists WHERE id = ?")
            .bind(id)
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn member_role(&mut self, list: &str, user: &str) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE list_id = ? AND user_id = ?")
                .bind(list)
                .bind(user)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(role.as_deref().and_then(parse_role))
    }

    async fn set_member(&mut self, list: &str, user: &str, role: Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO members (list_id, user_id, role) VALUES (?, ?, ?) \
             ON CONFLICT (list_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(list)
        .bind(user)
        .bind(role.as_str())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn remove_member(&mut self, list: &str, user: &str) -> Result<bool> {
        let removed = sqlx::query("DELETE FROM members WHERE list_id = ? AND user_id = ?")
            .bind(list)
            .bind(user)
            .execute(&mut *self.conn)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn count_members(&mut self, list: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE list_id = ?")
            .bind(list)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(n as u64)
    }

    async fn open_grant(&mut self, list: &str, user: &str, from: u64) -> Result<()> {
        sqlx::query("INSERT INTO grants (list_id, user_id, from_event) VALUES (?, ?, ?)")
            .bind(list)
            .bind(user)
            .bind(from as i64)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn close_grants(&mut self, list: &str, user: Option<&str>, at: u64) -> Result<()> {
        sqlx::query(
            "UPDATE grants SET until_event = ?1 \
             WHERE list_id = ?2 AND until_event IS NULL AND (?3 IS NULL OR user_id = ?3)",
        )
        .bind(at as i64)
        .bind(list)
        .bind(user)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn user_inbox(&mut self, user: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT inbox FROM users WHERE id = ?")
            .bind(user)
            .fetch_optional(&mut *self.conn)
            .await?)
    }

    async fn set_user_inbox(&mut self, user: &str, inbox: &str) -> Result<()> {
        sqlx::query("INSERT INTO users (id, inbox) VALUES (?, ?)")
            .bind(user)
            .bind(inbox)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn claim_list_id(&mut self, base: &str) -> Result<String> {
        // The counter remembers every id derived from `base`, so the next free one is one
        // query away; ids chosen by clients (`base-3` made by hand) are stepped over.
        loop {
            let n: i64 = sqlx::query_scalar(
                "INSERT INTO slugs (base, taken) VALUES (?, 1) \
                 ON CONFLICT (base) DO UPDATE SET taken = taken + 1 RETURNING taken",
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
            sqlx::query_as(&format!("SELECT {TODO_COLUMNS} FROM todos WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(row.map(todo_from_row))
    }

    async fn is_tombstoned(&mut self, id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tombstones WHERE id = ?)")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?)
    }

    async fn count_todos(&mut self, list: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM todos WHERE list_id = ?")
            .bind(list)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(n as u64)
    }

    async fn insert_todo(&mut self, todo: &Todo) -> Result<()> {
        sqlx::query(&format!("INSERT INTO todos ({TODO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"))
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
            "UPDATE todos SET title = ?, done = ?, list_id = ?, updated_at = ? WHERE id = ?",
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
        let list_id: Option<String> =
            sqlx::query_scalar("DELETE FROM todos WHERE id = ? RETURNING list_id")
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        if let Some(list_id) = &list_id {
            sqlx::query(
                "INSERT OR REPLACE INTO tombstones (id, list_id, event_id) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(list_id)
            .bind(event_id as i64)
            .execute(&mut *self.conn)
            .await?;
        }
        Ok(list_id)
    }

    async fn next_created_at(&mut self, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE meta SET last_created_at = MAX(last_created_at + 1, ?) RETURNING last_created_at",
        )
        .bind(now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn next_event_id(&mut self) -> Result<u64> {
        // AUTOINCREMENT's counter: never reused once committed, even after pruning.
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) + 1",
        )
        .fetch_one(&mut *self.conn)
        .await?;
        Ok(next as u64)
    }

    async fn append(&mut self, id: u64, recorded: &Recorded, data: &str) -> Result<()> {
        let event = &recorded.event;
        sqlx::query(
            "INSERT INTO events (id, kind, list_id, moved_from, global, audience, data) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id as i64)
        .bind(event.name())
        .bind(event.list_id())
        .bind(event.moved_from())
        .bind(recorded.global)
        .bind(recorded.audience.as_deref())
        .bind(data)
        .execute(&mut *self.conn)
        .await?;
        if id > self.retain_events && id % prune_slack(self.retain_events) == 0 {
            let floor = (id - self.retain_events) as i64;
            sqlx::query("DELETE FROM events WHERE id <= ?")
                .bind(floor)
                .execute(&mut *self.conn)
                .await?;
            sqlx::query("DELETE FROM tombstones WHERE event_id <= ?")
                .bind(floor)
                .execute(&mut *self.conn)
                .await?;
            // Intervals closed before the floor cannot matter to any resume point.
            sqlx::query("DELETE FROM grants WHERE until_event <= ?")
                .bind(floor)
                .execute(&mut *self.conn)
                .await?;
            sqlx::query("UPDATE meta SET log_floor = MAX(log_floor, ?)")
                .bind(floor)
                .execute(&mut *self.conn)
                .await?;
        }
        self.appended = Some(id);
        Ok(())
    }
}
