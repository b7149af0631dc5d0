//! The writer thread: writes are committed in groups, on a runtime of their own.
//!
//! **Group commit.** Writes queue here; the writer takes every write already waiting (up to
//! [`GROUP_WRITES`] and [`GROUP_BYTES`]) and commits them in one transaction: one fsync on
//! SQLite, one turn of the log's advisory lock on PostgreSQL, where one at a time took one
//! each. Each write runs in a savepoint of its own, so a write that fails (a rule of
//! [`super::changes`], a constraint) is rolled back alone and the others commit. A write is
//! answered only after the commit that holds it; a failed commit fails every write in it. A
//! write that comes alone runs without a savepoint: its failure rolls back the transaction,
//! which is the same thing, two statements cheaper.
//!
//! **Why a thread.** Every query is a round trip (to SQLite's connection thread, or to
//! PostgreSQL), and a change takes several. On the server's runtime each return would queue
//! behind the thousands of stream tasks the previous change woke, so under fan-out load a
//! `POST` waited for many fan-out rounds. On the writer thread a group costs each request one
//! wake-up instead.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Result, StoreError, Work};

/// Most writes committed in one transaction: bounds how long a group holds the writer (and,
/// on PostgreSQL, the log's lock) and how much one failed commit fails.
pub(crate) const GROUP_WRITES: usize = 64;

/// Most request bytes (titles and ids) in one group, for the same reason.
pub(crate) const GROUP_BYTES: usize = 256 * 1024;

/// A thread running a single-threaded runtime for write transactions; it ends when this is
/// dropped (with the last `Store` clone).
#[derive(Debug)]
pub(crate) struct Writer {
    handle: Handle,
    /// The queue of writes, once [`Writer::serve`] started its consumer.
    jobs: OnceLock<mpsc::UnboundedSender<Job>>,
    /// How long a write waits for its turn: while the database does not answer, writes must
    /// fail after a bounded time, not queue up one connection timeout after another.
    patience: Duration,
    _stop: oneshot::Sender<()>,
}

/// One queued write.
struct Job {
    work: Work,
    /// What the write carries (titles, ids), for [`GROUP_BYTES`].
    bytes: usize,
    /// [`WAITING`], [`TAKEN`] or [`ABANDONED`]: the writer and the waiting request agree on
    /// who decides the write's fate, so a write whose request gave up never runs, and a
    /// write that runs is always answered.
    state: Arc<AtomicU8>,
    done: oneshot::Sender<Result<()>>,
}

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

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
        Ok(Writer { handle, jobs: OnceLock::new(), patience, _stop: stop })
    }

    /// Start committing the queued writes into `backend`, in groups. Called once, when the
    /// backend is open.
    pub(crate) fn serve(&self, backend: Arc<dyn Backend>) {
        let (tx, rx) = mpsc::unbounded_channel();
        if self.jobs.set(tx).is_ok() {
            self.handle.spawn(commit_groups(backend, rx));
        }
    }

    /// Run `work`, which carries `bytes` of request data, in a write transaction, after every
    /// earlier write; `Ok` once the transaction that holds it committed.
    pub(crate) async fn run(&self, bytes: usize, work: Work) -> Result<()> {
        let Some(jobs) = self.jobs.get() else {
            return Err(StoreError::Internal("the writer is not serving".into()));
        };
        let state = Arc::new(AtomicU8::new(WAITING));
        let (done, answer) = oneshot::channel();
        let job = Job { work, bytes, state: state.clone(), done };
        if jobs.send(job).is_err() {
            return Err(StoreError::Internal("the writer has stopped".into()));
        }
        let mut answer = answer;
        let waited = tokio::time::timeout(self.patience, &mut answer).await;
        let outcome = match waited {
            Ok(outcome) => outcome,
            // Not yet taken: it never will be. Taken: it is running, and its answer comes.
            Err(_) if claim(&state, ABANDONED) => {
                return Err(StoreError::Unavailable(format!(
                    "no turn to write within {:?}: earlier writes are waiting for the database",
                    self.patience
                )))
            }
            Err(_) => answer.await,
        };
        outcome.unwrap_or_else(|_| Err(StoreError::Internal("the write was dropped".into())))
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

/// Move a waiting job to `to`; whether it was still waiting.
fn claim(state: &AtomicU8, to: u8) -> bool {
    state.compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// The writer's loop: wait for a write, take whatever else waits (within the bounds), commit
/// them together, answer each.
async fn commit_groups(backend: Arc<dyn Backend>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut group = Vec::new();
        let mut bytes = 0;
        let mut candidate = Some(first);
        while let Some(job) = candidate.take() {
            if !group.is_empty() && bytes + job.bytes > GROUP_BYTES {
                next = Some(job); // opens the next group
                break;
            }
            if claim(&job.state, TAKEN) {
                bytes += job.bytes;
                group.push(job);
            }
            if group.len() < GROUP_WRITES {
                candidate = rx.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        let (works, answers): (Vec<Work>, Vec<_>) =
            group.into_iter().map(|job| (job.work, job.done)).unzip();
        let writes = works.len();
        match backend.write(works).await {
            Ok(outcomes) => {
                crate::metrics::handles().write_group_writes.record(writes as f64);
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome);
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}
