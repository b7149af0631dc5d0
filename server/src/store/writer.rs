//! The writer thread: write transactions run one at a time on a runtime of their own.
//!
//! Every query is a round trip (to SQLite's connection thread, or to PostgreSQL), and a change
//! takes several. On the server's runtime each return would queue behind the thousands of
//! stream tasks the previous change woke, so under fan-out load a `POST` waited for many
//! fan-out rounds. On the writer thread a change costs the request one wake-up instead.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, Mutex};

use super::{Backend, Result, StoreError, Work};

/// A thread running a single-threaded runtime for write transactions; it ends when this is
/// dropped (with the last `Store` clone).
#[derive(Debug)]
pub(crate) struct Writer {
    handle: Handle,
    /// One write transaction at a time: SQLite has one writer anyway, and PostgreSQL writers
    /// serialise on the log's advisory lock, so waiting here costs nothing and holds no
    /// connection while waiting.
    lock: Arc<Mutex<()>>,
    /// How long a write waits for its turn: while the database does not answer, writes must
    /// fail after a bounded time, not queue up one connection timeout after another.
    patience: Duration,
    _stop: oneshot::Sender<()>,
}

impl Writer {
    /// Start the thread.
    pub(crate) fn start(patience: Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("tidings-writer".into()).spawn(move || {
            // Ends when the sender is dropped; the runtime is then dropped on its own thread.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Writer { handle, lock: Arc::new(Mutex::new(())), patience, _stop: stop })
    }

    /// Run `work` in a write transaction of `backend`, on the writer thread, after every
    /// earlier write has finished.
    pub(crate) async fn run(&self, backend: Arc<dyn Backend>, work: Work) -> Result<()> {
        let (lock, patience) = (self.lock.clone(), self.patience);
        self.spawn(async move {
            let Ok(_turn) = tokio::time::timeout(patience, lock.lock()).await else {
                return Err(StoreError::Unavailable(format!(
                    "no turn to write within {patience:?}: earlier writes are waiting for the \
                     database"
                )));
            };
            backend.write(work).await
        })
        .await
    }

    /// Run `future` on the writer thread and wait for its result (also used to open the
    /// writer's connections there, so their I/O belongs to this runtime).
    pub(crate) async fn spawn<T, F>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|e| StoreError::Internal(format!("writer task: {e}")))?
    }
}
