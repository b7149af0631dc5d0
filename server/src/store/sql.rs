//! The SQL of both backends, written once over [`sqlx::Database`]: every read and the driver of
//! a write transaction here, every statement inside one in [`super::tx`].
//!
//! Placeholders are `$1`, `$2`, … in both dialects (sqlx's SQLite driver reads `$N` as `?N`),
//! and the statements keep to what SQLite and PostgreSQL both parse: `CAST(… AS TEXT)` rather
//! than `::text`, `CASE` rather than `MAX(a, b)` / `GREATEST`, `ON CONFLICT … DO UPDATE`
//! rather than `INSERT OR REPLACE`, a list of strings bound as one JSON array. What truly
//! differs is a [`Dialect`]: how a write transaction begins (PostgreSQL takes the log's
//! advisory lock), how the next event id is found and the head moved, the snapshot a read
//! runs in, and the few hooks around a write (PostgreSQL's size check, SQLite's head signal).

use std::fmt;

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Pool};
use tidings_protocol::{List, ListsSnapshot, Member, Todo, TodosSnapshot, DEFAULT_LIST_ID};

use super::tx::Tx;
use super::{
    event_from_row, grants_from_rows, now_ms, parse_role, todo_from_row, Backend, EventRow, Grants,
    HeadSignal, LogHead, LoggedEvent, Page, PresenceCount, Result, Retention, StoreError, TodoRow,
    UserEvents, Work, TODO_COLUMNS,
};

/// What differs between SQLite and PostgreSQL; everything else is [`Sql`].
pub(super) trait Dialect: Database {
    /// The backend's own state beside its pools.
    type Extra: Send + Sync + fmt::Debug;

    /// The statements that open a write transaction, in order.
    const BEGIN_WRITE: &'static [&'static str];
    /// Opens a read-only transaction whose statements all see one committed state.
    const BEGIN_SNAPSHOT: &'static str;
    /// `(last_event_id, log_floor)`: where the log stands.
    const HEAD: &'static str;
    /// The id the next event gets, inside a write transaction.
    const NEXT_EVENT_ID: &'static str;
    /// Inserts an event row `(id, kind, list_id, moved_from, global, audience, data)` as
    /// `$1`…`$7`, and moves whatever else marks the head.
    const APPEND: &'static str;

    /// A subquery with one column, `value`: the strings of the JSON array bound at `$n`.
    fn strings(n: u8) -> String;

    /// Checks before a write transaction begins (PostgreSQL's database size).
    fn before_write<'a>(
        extra: &'a Self::Extra,
        conn: &'a mut Self::Connection,
    ) -> BoxFuture<'a, Result<()>>;

    /// After a commit; `appended` is the newest event id it logged, if any.
    fn committed(extra: &Self::Extra, appended: Option<u64>);

    /// Whether a connection whose transaction state is unknown is closed (an in-memory
    /// SQLite database lives in its one connection, so that one is kept).
    fn discards_broken_connections(extra: &Self::Extra) -> bool;

    /// A signal that fires when the head may have moved.
    fn head_signal(extra: &Self::Extra) -> HeadSignal;
}

/// A backend: the pools of one database and the dialect's state.
pub(super) struct Sql<DB: Dialect> {
    /// One connection: writes run one at a time. Opened on the writer thread.
    pub writer: Pool<DB>,
    /// Snapshots and replays.
    pub readers: Pool<DB>,
    /// One connection for the tailer and the health check: they answer even while snapshot
    /// reads hold every reader.
    pub monitor: Pool<DB>,
    /// What the log keeps.
    pub retention: Retention,
    /// The dialect's own state.
    pub extra: DB::Extra,
}

impl<DB: Dialect> fmt::Debug for Sql<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql")
            .field("database", &DB::NAME)
            .field("retention", &self.retention)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

/// A JSON array of strings: how a list of strings is bound (see [`Dialect::strings`]).
pub(super) fn json_array(items: &[String]) -> String {
    // Serializing strings cannot fail.
    serde_json::to_string(items).unwrap_or_default()
}

/// Whether the user bound at `$n` (anyone when it is NULL) may read the list `list` names:
/// index lookups for one list, where [`readable`] lists every list a user may read.
fn may_read(list: &str, n: u8) -> String {
    format!(
        "EXISTS (SELECT 1 FROM lists l WHERE l.id = {list} AND (CAST(${n} AS TEXT) IS NULL \
           OR l.owner = ${n} \
           OR EXISTS (SELECT 1 FROM members m WHERE m.list_id = l.id AND m.user_id = ${n})))"
    )
}

/// The lists the user bound at `$n` may read (every list when it is NULL).
fn readable(n: u8) -> String {
    format!(
        "SELECT id FROM lists WHERE CAST(${n} AS TEXT) IS NULL OR owner = ${n} \
         UNION SELECT list_id FROM members WHERE user_id = ${n}"
    )
}

/// `impl<DB> [Head] { … }` with the bounds every generic body of the store needs: this
/// database's connection runs queries, binds and decodes the types tidings stores. Rust does
/// not carry such bounds from a trait to its users, so they are said once, here.
macro_rules! with_sql_bounds {
    ($(#[$attr:meta])* impl<$db:ident> [$($head:tt)*] { $($body:tt)* }) => {
        $(#[$attr])*
        impl<$db> $($head)*
        where
            $db: $crate::store::sql::Dialect,
            for<'c> &'c mut <$db as sqlx::Database>::Connection:
                sqlx::Executor<'c, Database = $db>,
            for<'q> <$db as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, $db>,
            for<'q> i64: sqlx::Encode<'q, $db> + sqlx::Decode<'q, $db> + sqlx::Type<$db>,
            for<'q> bool: sqlx::Encode<'q, $db> + sqlx::Decode<'q, $db> + sqlx::Type<$db>,
            for<'q> String: sqlx::Encode<'q, $db> + sqlx::Decode<'q, $db> + sqlx::Type<$db>,
            for<'q> &'q str: sqlx::Encode<'q, $db> + sqlx::Type<$db>,
            for<'q> Option<String>: sqlx::Encode<'q, $db>,
            for<'q> Option<&'q str>: sqlx::Encode<'q, $db>,
            for<'q> Option<i64>: sqlx::Encode<'q, $db>,
            usize: sqlx::ColumnIndex<<$db as sqlx::Database>::Row>,
        {
            $($body)*
        }
    };
}
pub(super) use with_sql_bounds;

with_sql_bounds! {
impl<DB> [Sql<DB>] {
    /// After the migrations: make sure the default list exists; the log's epoch.
    pub(super) async fn seed(writer: &Pool<DB>) -> Result<String> {
        let mut conn = writer.acquire().await?;
        sqlx::query(
            "INSERT INTO lists (id, title, created_at) VALUES ($1, 'Inbox', $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEFAULT_LIST_ID)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        Ok(sqlx::query_scalar("SELECT epoch FROM meta").fetch_one(&mut *conn).await?)
    }

    async fn reader(&self) -> Result<PoolConnection<DB>> {
        Ok(self.readers.acquire().await?)
    }

    async fn head_on(conn: &mut DB::Connection) -> Result<LogHead> {
        let (last, floor, origin): (i64, i64, i64) =
            sqlx::query_as(DB::HEAD).fetch_one(conn).await?;
        Ok(LogHead { last_event_id: last as u64, floor: floor as u64, origin: origin as u64 })
    }

    async fn first_unreadable_on(
        conn: &mut DB::Connection,
        lists: &[String],
        user: Option<&str>,
    ) -> Result<Option<String>> {
        // Checked list by list: a stream or snapshot that names a few lists costs a few index
        // lookups, not a set of every list (every stream that opened on a server with 5 000
        // lists built one: BENCHMARKS.md, "Presence").
        Ok(sqlx::query_scalar(&format!(
            "SELECT value FROM ({}) AS asked WHERE NOT {} LIMIT 1",
            DB::strings(1),
            may_read("asked.value", 2)
        ))
        .bind(json_array(lists))
        .bind(user)
        .fetch_optional(conn)
        .await?)
    }

    async fn events_after_on(
        conn: &mut DB::Connection,
        after: u64,
        lists: Option<&[String]>,
        user_events: UserEvents<'_>,
        page: Page,
    ) -> Result<Vec<LoggedEvent>> {
        let (everyone, user) = match user_events {
            UserEvents::All => (true, None),
            UserEvents::Of(user) => (false, user),
        };
        // The running sum of data bytes cuts the page: a replay never holds more than about
        // `page.bytes`, however long the titles.
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT id, kind, list_id, moved_from, global, audience, data FROM ( \
               SELECT *, SUM(octet_length(data)) OVER (ORDER BY id) AS upto FROM ( \
                 SELECT id, kind, list_id, moved_from, global, audience, data FROM events \
                 WHERE id > $1 AND ($5 OR audience IS NULL OR audience = $6) \
                   AND (CAST($2 AS TEXT) IS NULL OR global OR audience = $6 \
                     OR list_id IN ({lists}) OR moved_from IN ({lists})) \
                 ORDER BY id LIMIT $3) AS page) AS sized \
             WHERE upto - octet_length(data) < $4 ORDER BY id",
            lists = DB::strings(2)
        ))
        .bind(after as i64)
        .bind(lists.map(json_array))
        .bind(i64::from(page.events))
        .bind(i64::from(page.bytes))
        .bind(everyone)
        .bind(user)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(event_from_row).collect())
    }
}
}

with_sql_bounds! {
#[async_trait::async_trait]
impl<DB> [Backend for Sql<DB>] {
    async fn write(&self, group: Vec<Work>) -> Result<Vec<Result<()>>> {
        let mut conn = self.writer.acquire().await?;
        let outcome: Result<(Vec<Result<()>>, Option<u64>)> = async {
            DB::before_write(&self.extra, &mut conn).await?;
            let mut tx = Tx::<DB>::new(&mut conn, self.retention);
            for statement in DB::BEGIN_WRITE {
                tx.exec(statement).await?;
            }
            let outcomes = match <[Work; 1]>::try_from(group) {
                // Alone: its failure rolls the transaction back, as its savepoint would.
                Ok([work]) => {
                    work(&mut tx).await?;
                    vec![Ok(())]
                }
                Err(group) => {
                    let mut outcomes = Vec::with_capacity(group.len());
                    for work in group {
                        outcomes.push(tx.in_savepoint(work).await?);
                    }
                    outcomes
                }
            };
            tx.exec("COMMIT").await?;
            Ok((outcomes, tx.appended()))
        }
        .await;
        match outcome {
            Ok((outcomes, appended)) => {
                DB::committed(&self.extra, appended);
                Ok(outcomes)
            }
            Err(e) => {
                let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await.is_ok();
                if (e.poisons_connection() || !rolled_back)
                    && DB::discards_broken_connections(&self.extra)
                {
                    // Its transaction state is unknown: never use it again.
                    let _ = conn.close().await;
                }
                Err(e)
            }
        }
    }

    async fn head(&self) -> Result<LogHead> {
        Self::head_on(&mut *self.reader().await?).await
    }

    async fn lists(&self, user: Option<&str>) -> Result<ListsSnapshot> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(DB::BEGIN_SNAPSHOT).await?;
        let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, title, created_at, \
               CASE WHEN CAST($1 AS TEXT) IS NULL THEN NULL ELSE 'owner' END \
               FROM lists WHERE CAST($1 AS TEXT) IS NULL OR owner = $1 \
             UNION ALL \
             SELECT l.id, l.title, l.created_at, m.role FROM lists l \
               JOIN members m ON m.list_id = l.id WHERE m.user_id = $1 \
             ORDER BY 3, 1",
        )
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        let last_event_id = Self::head_on(&mut tx).await?.last_event_id;
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
        let mut tx = conn.begin_with(DB::BEGIN_SNAPSHOT).await?;
        if let Some(missing) = match lists {
            Some(lists) => Self::first_unreadable_on(&mut tx, lists, user).await?,
            None => None,
        } {
            return Err(StoreError::ListNotFound(missing));
        }
        // `$1`: the lists asked for (NULL: every readable one), `$2`: the user.
        let filter = format!(
            "(CAST($1 AS TEXT) IS NULL OR list_id IN ({})) AND list_id IN ({})",
            DB::strings(1),
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
            "SELECT {TODO_COLUMNS} FROM todos WHERE {filter} ORDER BY position, id"
        ))
        .bind(lists.map(json_array))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        let last_event_id = Self::head_on(&mut tx).await?.last_event_id;
        tx.commit().await?;
        let mut todos: Vec<Todo> = rows.into_iter().map(todo_from_row).collect();
        // Byte order, as clients sort (a database's collation may order list ids otherwise);
        // the query's order makes this a pass over sorted runs.
        todos.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        Ok(TodosSnapshot { todos, last_event_id, epoch: None })
    }

    async fn first_unreadable_list(
        &self,
        lists: &[String],
        user: Option<&str>,
    ) -> Result<Option<String>> {
        Self::first_unreadable_on(&mut *self.reader().await?, lists, user).await
    }

    async fn members(&self, list: &str) -> Result<Option<(Option<String>, Vec<Member>)>> {
        let mut conn = self.reader().await?;
        let mut tx = conn.begin_with(DB::BEGIN_SNAPSHOT).await?;
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
        let mut tx = conn.begin_with(DB::BEGIN_SNAPSHOT).await?;
        let head = Self::head_on(&mut tx).await?;
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
        user: Option<&str>,
        page: Page,
    ) -> Result<Vec<LoggedEvent>> {
        let user_events = UserEvents::Of(user);
        Self::events_after_on(&mut *self.reader().await?, after, lists, user_events, page).await
    }

    async fn head_signal(&self) -> Result<HeadSignal> {
        Ok(DB::head_signal(&self.extra))
    }

    async fn tail(&self, after: u64, page: Page) -> Result<Vec<LoggedEvent>> {
        let mut conn = self.monitor.acquire().await?;
        Self::events_after_on(&mut conn, after, None, UserEvents::All, page).await
    }

    async fn probe_head(&self) -> Result<LogHead> {
        Self::head_on(&mut *self.monitor.acquire().await?).await
    }

    async fn presence(&self, lists: &[String], alive_since: i64) -> Result<Vec<PresenceCount>> {
        // A user's streams count while they may read the list: one unshared with a stream
        // still open is not shown to the list's readers.
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT p.list_id, p.user_id, CAST(SUM(p.streams) AS BIGINT) FROM presence p \
               JOIN presence_processes h ON h.process = p.process \
             WHERE h.seen_at >= $2 AND p.list_id IN ({lists}) \
               AND (p.user_id = '' \
                 OR EXISTS (SELECT 1 FROM lists l WHERE l.id = p.list_id AND l.owner = p.user_id) \
                 OR EXISTS (SELECT 1 FROM members m \
                            WHERE m.list_id = p.list_id AND m.user_id = p.user_id)) \
             GROUP BY p.list_id, p.user_id",
            lists = DB::strings(1)
        ))
        .bind(json_array(lists))
        .bind(alive_since)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(list, user, streams)| PresenceCount { list, user, streams: streams as u64 })
            .collect())
    }
}
}
