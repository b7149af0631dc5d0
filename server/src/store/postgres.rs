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

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::sql::{Dialect, Sql};
use super::writer::Writer;
use super::{HeadSignal, HeadSignalInner, Result, Shown, StoreConfig, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The notification channel a commit signals.
const CHANNEL: &str = "tidings_events";

/// How long a database-size reading is trusted before it is taken again.
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long the first connection at start may take before the server gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL's own state beside the pools.
#[derive(Debug)]
pub(super) struct Extra {
    /// For the `LISTEN` connection.
    options: PgConnectOptions,
    size_limit: Option<SizeLimit>,
}

impl Dialect for Postgres {
    type Extra = Extra;

    // The advisory lock every writer takes first: an arbitrary constant, "tidings" in ASCII
    // (0x0074_6964_696e_6773).
    const BEGIN_WRITE: &'static [&'static str] =
        &["BEGIN", "SELECT pg_advisory_xact_lock(32766977284925299)"];
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const HEAD: &'static str = "SELECT last_event_id, log_floor, origin FROM meta";
    // Under the advisory lock: nobody else can take this id.
    const NEXT_EVENT_ID: &'static str = "SELECT last_event_id + 1 FROM meta";
    // One round trip: the row, the head, and the notification (delivered at commit).
    const APPEND: &'static str = "WITH logged AS ( \
           INSERT INTO events (id, kind, list_id, moved_from, global, audience, data, made_at) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)), \
         moved AS (UPDATE meta SET last_event_id = $1) \
         SELECT pg_notify('tidings_events', CAST($1 AS TEXT))";

    fn strings(n: u8) -> String {
        format!("SELECT jsonb_array_elements_text(CAST(${n} AS JSONB)) AS value")
    }

    fn before_write<'a>(extra: &'a Extra, conn: &'a mut PgConnection) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match &extra.size_limit {
                Some(limit) => limit.check(conn).await,
                None => Ok(()),
            }
        })
    }

    fn committed(_: &Extra, _: Option<u64>) {
        // The commit delivered the NOTIFY `APPEND` queued.
    }

    fn discards_broken_connections(_: &Extra) -> bool {
        true
    }

    fn head_signal(extra: &Extra) -> HeadSignal {
        HeadSignal {
            inner: HeadSignalInner::Postgres(Box::new(Listener::new(extra.options.clone()))),
        }
    }
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

impl SizeLimit {
    /// Refuse writes while the database is past `max_database_bytes`.
    async fn check(&self, conn: &mut PgConnection) -> Result<()> {
        let now = self.since.elapsed().as_millis() as i64;
        let read_at = self.read_at.load(Ordering::Relaxed);
        if read_at < 0 || now - read_at > SIZE_CHECK_EVERY.as_millis() as i64 {
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut *conn)
                .await?;
            self.last_size.store(size as u64, Ordering::Relaxed);
            self.read_at.store(now, Ordering::Relaxed);
        }
        if self.last_size.load(Ordering::Relaxed) >= self.bytes {
            return Err(StoreError::Full);
        }
        Ok(())
    }
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

pub(super) async fn open(
    url: &str,
    config: &StoreConfig,
    writer_thread: &Writer,
) -> Result<(Sql<Postgres>, String)> {
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
    let first = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&role("start")))
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "no answer from PostgreSQL at {target} within {CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {target}: {e}"))
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
            let epoch = Sql::seed(&writer).await?;
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
    let extra = Extra { options: role("listener"), size_limit };
    let backend = Sql { writer, readers, monitor, retention: config.retention(), extra };
    Ok((backend, epoch))
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
