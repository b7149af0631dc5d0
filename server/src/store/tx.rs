//! The statements of a write transaction ([`WriteTx`]), written once for both backends (see
//! [`super::sql`] for the dialect rules they keep to).

use sqlx::Database;
use tidings_protocol::{List, Role, Todo};

use super::sql::with_sql_bounds;
use super::{
    now_ms, now_secs, parse_role, prune_slack, todo_from_row, Idempotency, ListRow, PresenceCount,
    Recorded, Remembered, Result, Retention, StoreError, TodoRow, Work, WriteTx,
    IDEMPOTENCY_KEPT_MS, TODO_COLUMNS,
};

/// One write transaction on the writer connection.
pub(super) struct Tx<'c, DB: Database> {
    conn: &'c mut DB::Connection,
    retention: Retention,
    /// The id of the newest event this transaction appended.
    appended: Option<u64>,
}

impl<'c, DB: Database> Tx<'c, DB> {
    pub(super) fn new(conn: &'c mut DB::Connection, retention: Retention) -> Self {
        Tx { conn, retention, appended: None }
    }

    /// The newest event id appended so far.
    pub(super) fn appended(&self) -> Option<u64> {
        self.appended
    }
}

with_sql_bounds! {
impl<DB> [Tx<'_, DB>] {
    pub(super) async fn exec(&mut self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&mut *self.conn).await?;
        Ok(())
    }

    /// Run `work` in a savepoint of its own: `Ok(Err(e))` when it failed and was rolled back
    /// alone; `Err` when the transaction itself is lost (the database is full or gone, or
    /// the rollback failed), which fails the whole group.
    pub(super) async fn in_savepoint(&mut self, work: Work) -> Result<Result<()>> {
        let appended = self.appended;
        self.exec("SAVEPOINT write").await?;
        match work(self).await {
            Ok(()) => {
                self.exec("RELEASE SAVEPOINT write").await?;
                Ok(Ok(()))
            }
            Err(e) if matches!(e, StoreError::Full | StoreError::Unavailable(_)) => Err(e),
            Err(e) => {
                self.exec("ROLLBACK TO SAVEPOINT write").await?;
                self.exec("RELEASE SAVEPOINT write").await?;
                self.appended = appended;
                Ok(Err(e))
            }
        }
    }

    async fn list_exists(&mut self, id: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM lists WHERE id = $1)")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?)
    }

    /// Forget what no resume point can need any more: events at or below `floor`, the
    /// tombstones they made, read intervals closed by then, and idempotency keys past both
    /// their event and [`IDEMPOTENCY_KEPT_MS`].
    async fn prune(&mut self, floor: i64) -> Result<()> {
        for statement in [
            "DELETE FROM events WHERE id <= $1",
            "DELETE FROM tombstones WHERE event_id <= $1",
            "DELETE FROM grants WHERE until_event <= $1",
            "UPDATE meta SET log_floor = CASE WHEN log_floor > $1 THEN log_floor ELSE $1 END",
        ] {
            sqlx::query(statement).bind(floor).execute(&mut *self.conn).await?;
        }
        // Keys outlive neither 24 h nor their event, whichever is later.
        sqlx::query(
            "DELETE FROM idempotency WHERE made_at < $2 AND (event_id IS NULL OR event_id <= $1)",
        )
        .bind(floor)
        .bind(now_ms() - IDEMPOTENCY_KEPT_MS)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}
}

with_sql_bounds! {
#[async_trait::async_trait]
impl<DB> [WriteTx for Tx<'_, DB>] {
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
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM lists WHERE CAST($1 AS TEXT) IS NULL OR owner = $1",
        )
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
        sqlx::query(
            "INSERT INTO tombstones (id, list_id, event_id) \
             SELECT id, list_id, $2 FROM todos WHERE list_id = $1 \
             ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id",
        )
        .bind(id)
        .bind(event_id as i64)
        .execute(&mut *self.conn)
        .await?;
        sqlx::query("DELETE FROM todos WHERE list_id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        // Members go with the list (ON DELETE CASCADE).
        let deleted: Option<String> =
            sqlx::query_scalar("DELETE FROM lists WHERE id = $1 RETURNING id")
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        Ok(deleted.is_some())
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
        let removed: Option<String> = sqlx::query_scalar(
            "DELETE FROM members WHERE list_id = $1 AND user_id = $2 RETURNING user_id",
        )
        .bind(list)
        .bind(user)
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(removed.is_some())
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
            "UPDATE grants SET until_event = $1 WHERE list_id = $2 AND until_event IS NULL \
             AND (CAST($3 AS TEXT) IS NULL OR user_id = $3)",
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
        // The counter remembers every id derived from `base`, so the next free one is one
        // query away; ids chosen by clients (`base-3` made by hand) are stepped over.
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

    async fn done_todos(&mut self, list: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM todos WHERE list_id = $1 AND done ORDER BY position, id",
        )
        .bind(list)
        .fetch_all(&mut *self.conn)
        .await?)
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

    async fn list_tail(&mut self, list: &str) -> Result<(u64, Option<String>)> {
        let (n, last): (i64, Option<String>) =
            sqlx::query_as("SELECT COUNT(*), MAX(position) FROM todos WHERE list_id = $1")
                .bind(list)
                .fetch_one(&mut *self.conn)
                .await?;
        Ok((n as u64, last))
    }

    async fn todo_after(
        &mut self,
        list: &str,
        after: Option<(&str, &str)>,
        except: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        let (position, id) = after.unzip();
        Ok(sqlx::query_as(
            "SELECT position, id FROM todos WHERE list_id = $1 \
             AND (CAST($4 AS TEXT) IS NULL OR id <> $4) \
             AND (CAST($2 AS TEXT) IS NULL OR position > $2 OR (position = $2 AND id > $3)) \
             ORDER BY position, id LIMIT 1",
        )
        .bind(list)
        .bind(position)
        .bind(id)
        .bind(except)
        .fetch_optional(&mut *self.conn)
        .await?)
    }

    async fn list_todos(&mut self, list: &str) -> Result<Vec<Todo>> {
        let rows: Vec<TodoRow> = sqlx::query_as(&format!(
            "SELECT {TODO_COLUMNS} FROM todos WHERE list_id = $1 ORDER BY position, id"
        ))
        .bind(list)
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(rows.into_iter().map(todo_from_row).collect())
    }

    async fn insert_ticket(
        &mut self,
        ticket: &str,
        user: &str,
        token_expires_at: u64,
        expires_at: u64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM stream_tickets WHERE expires_at < $1")
            .bind(now_secs() as i64)
            .execute(&mut *self.conn)
            .await?;
        sqlx::query(
            "INSERT INTO stream_tickets (ticket, user_id, token_expires_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(ticket)
        .bind(user)
        .bind(token_expires_at as i64)
        .bind(expires_at as i64)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn take_ticket(&mut self, ticket: &str, now: u64) -> Result<Option<(String, u64)>> {
        let taken: Option<(String, i64, i64)> = sqlx::query_as(
            "DELETE FROM stream_tickets WHERE ticket = $1 \
             RETURNING user_id, token_expires_at, expires_at",
        )
        .bind(ticket)
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(taken
            .filter(|(_, _, expires_at)| *expires_at >= now as i64)
            .map(|(user, token_expires_at, _)| (user, token_expires_at as u64)))
    }

    async fn publish_presence(
        &mut self,
        process: &str,
        counts: &[PresenceCount],
        now: i64,
        forget_before: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO presence_processes (process, seen_at) VALUES ($1, $2) \
             ON CONFLICT (process) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(process)
        .bind(now)
        .execute(&mut *self.conn)
        .await?;
        for count in counts {
            let query = if count.streams == 0 {
                sqlx::query(
                    "DELETE FROM presence WHERE process = $1 AND list_id = $2 AND user_id = $3",
                )
            } else {
                sqlx::query(
                    "INSERT INTO presence (process, list_id, user_id, streams) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (process, list_id, user_id) \
                     DO UPDATE SET streams = excluded.streams",
                )
            };
            let query = query.bind(process).bind(&count.list).bind(&count.user);
            let query = match count.streams {
                0 => query,
                n => query.bind(n as i64),
            };
            query.execute(&mut *self.conn).await?;
        }
        for statement in [
            "DELETE FROM presence WHERE process IN \
               (SELECT process FROM presence_processes WHERE seen_at < $1)",
            "DELETE FROM presence_processes WHERE seen_at < $1",
        ] {
            sqlx::query(statement).bind(forget_before).execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn forget_presence(&mut self, process: &str) -> Result<()> {
        for statement in [
            "DELETE FROM presence WHERE process = $1",
            "DELETE FROM presence_processes WHERE process = $1",
        ] {
            sqlx::query(statement).bind(process).execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn rename_list(&mut self, id: &str, title: &str) -> Result<()> {
        sqlx::query("UPDATE lists SET title = $1 WHERE id = $2")
            .bind(title)
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn insert_todo(&mut self, todo: &Todo) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO todos ({TODO_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&todo.id)
        .bind(&todo.list_id)
        .bind(&todo.title)
        .bind(todo.done)
        .bind(todo.created_at)
        .bind(todo.updated_at)
        .bind(&todo.position)
        .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn update_todo(&mut self, todo: &Todo) -> Result<()> {
        sqlx::query(
            "UPDATE todos SET title = $1, done = $2, list_id = $3, updated_at = $4, position = $5 \
             WHERE id = $6",
        )
        .bind(&todo.title)
        .bind(todo.done)
        .bind(&todo.list_id)
        .bind(todo.updated_at)
        .bind(&todo.position)
        .bind(&todo.id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn delete_todo(&mut self, id: &str, event_id: u64) -> Result<Option<String>> {
        let list_id: Option<String> =
            sqlx::query_scalar("DELETE FROM todos WHERE id = $1 RETURNING list_id")
                .bind(id)
                .fetch_optional(&mut *self.conn)
                .await?;
        if let Some(list_id) = &list_id {
            sqlx::query(
                "INSERT INTO tombstones (id, list_id, event_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id",
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
            "UPDATE meta SET last_created_at = \
               CASE WHEN last_created_at + 1 > $1 THEN last_created_at + 1 ELSE $1 END \
             RETURNING last_created_at",
        )
        .bind(now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn next_event_id(&mut self) -> Result<u64> {
        let next: i64 = sqlx::query_scalar(DB::NEXT_EVENT_ID).fetch_one(&mut *self.conn).await?;
        Ok(next as u64)
    }

    fn last_appended(&self) -> Option<u64> {
        self.appended
    }

    async fn remembered(&mut self, user: &str, key: &str) -> Result<Option<Remembered>> {
        let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT request, outcome, event_id FROM idempotency \
             WHERE user_id = $1 AND idem_key = $2",
        )
        .bind(user)
        .bind(key)
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(row.map(|(request, outcome, event_id)| Remembered {
            request,
            outcome,
            event_id: event_id.map(|id| id as u64),
        }))
    }

    async fn remember(
        &mut self,
        user: &str,
        key: &Idempotency,
        outcome: &Remembered,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO idempotency (user_id, idem_key, request, outcome, event_id, made_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user)
        .bind(&key.key)
        .bind(&outcome.request)
        .bind(&outcome.outcome)
        .bind(outcome.event_id.map(|id| id as i64))
        .bind(now_ms())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn append(&mut self, id: u64, recorded: &Recorded, data: &str) -> Result<()> {
        let event = &recorded.event;
        sqlx::query(DB::APPEND)
            .bind(id as i64)
            .bind(event.name())
            .bind(event.list_id())
            .bind(event.moved_from())
            .bind(recorded.global)
            .bind(recorded.for_user.as_deref())
            .bind(data)
            .bind(now_ms())
            .execute(&mut *self.conn)
            .await?;
        let kept = self.retention.events;
        if id > kept && id % prune_slack(kept) == 0 {
            // The newest `kept` events, and every event of the last `secs` seconds: the
            // oldest of those by time bounds the floor (an index scan of one row).
            let cutoff = now_ms() - (self.retention.secs as i64).saturating_mul(1000);
            let recent: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM events WHERE made_at >= $1 ORDER BY made_at, id LIMIT 1",
            )
            .bind(cutoff)
            .fetch_optional(&mut *self.conn)
            .await?;
            let floor = (id - kept) as i64;
            let floor = recent.map_or(floor, |oldest| floor.min(oldest - 1));
            if floor > 0 {
                self.prune(floor).await?;
            }
        }
        self.appended = Some(id);
        Ok(())
    }
}
}
