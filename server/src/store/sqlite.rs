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

use futures_util::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;
use tokio::sync::watch;

use super::sql::{Dialect, Sql};
use super::writer::Writer;
use super::{Backend, HeadSignal, HeadSignalInner, Result, StoreConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite's page size for new databases; `max_database_bytes` is counted in these.
const PAGE_BYTES: u64 = 4096;

/// SQLite's own state beside the pools.
#[derive(Debug)]
pub(super) struct Extra {
    /// An in-memory database lives in its one connection (shared by every pool), which is
    /// therefore never replaced.
    in_memory: bool,
    /// The newest committed event id, sent after each commit.
    head: watch::Sender<u64>,
}

impl Dialect for Sqlite {
    type Extra = Extra;

    const BEGIN_WRITE: &'static [&'static str] = &["BEGIN IMMEDIATE"];
    // One writer at a time and WAL: a deferred read transaction sees one committed state.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
    const HEAD: &'static str =
        "SELECT COALESCE((SELECT MAX(id) FROM events), log_floor), log_floor, origin FROM meta";
    // AUTOINCREMENT's counter: never reused once committed, even after pruning.
    const NEXT_EVENT_ID: &'static str =
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) + 1";
    const APPEND: &'static str =
        "INSERT INTO events (id, kind, list_id, moved_from, global, audience, data, made_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

    fn strings(n: u8) -> String {
        format!("SELECT value FROM json_each(${n})")
    }

    fn before_write<'a>(_: &'a Extra, _: &'a mut SqliteConnection) -> BoxFuture<'a, Result<()>> {
        // `max_page_count` makes SQLite itself refuse pages past the limit (SQLITE_FULL).
        Box::pin(async { Ok(()) })
    }

    fn committed(extra: &Extra, appended: Option<u64>) {
        if let Some(id) = appended {
            extra.head.send_replace(id);
        }
    }

    fn discards_broken_connections(extra: &Extra) -> bool {
        !extra.in_memory
    }

    fn head_signal(extra: &Extra) -> HeadSignal {
        HeadSignal { inner: HeadSignalInner::Local(extra.head.subscribe()) }
    }
}

/// Open and migrate `url`; the backend and the log's epoch.
pub(super) async fn open(
    url: &str,
    config: &StoreConfig,
    writer_thread: &Writer,
) -> Result<(Sql<Sqlite>, String)> {
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
            let epoch = Sql::seed(&writer).await?;
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
    let extra = Extra { in_memory, head: watch::channel(0).0 };
    let backend = Sql { writer, readers, monitor, retention: config.retention(), extra };
    let head = backend.head().await?;
    backend.extra.head.send_replace(head.last_event_id);
    Ok((backend, epoch))
}
