//! The coordinator's side of the worker processes: spawn them, spread streams and loopback
//! source addresses over them, send each command to all and add up their replies.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};

use crate::control::{Command, ConnectReport, Reply, StormReport, WindowReport, WorkerConfig};

/// Streams per loopback source address: far below the 28 232 ephemeral ports of one
/// source/destination pair, so ports left in TIME_WAIT by earlier runs never run short.
const STREAMS_PER_SOURCE: usize = 2_500;

/// Next source address to hand out: every run gets fresh ones (127.0.1.1, 127.0.1.2, …).
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

fn next_sources(count: usize) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|_| {
            let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % (250 * 250);
            Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8)
        })
        .collect()
}

/// How to spread a load over worker processes.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// The server processes under test; streams are spread over them in turn.
    pub servers: Vec<SocketAddr>,
    /// Where every stream's first connection resumes from, if anywhere.
    pub resume_from: Option<u64>,
    /// The list to follow.
    pub list: String,
    /// Streams in all.
    pub streams: usize,
    /// Of which slow.
    pub slow: usize,
    /// Most streams one worker process holds (each needs a file descriptor).
    pub per_worker: usize,
    /// Connection attempts in flight per worker.
    pub connect_concurrency: usize,
    /// Receive buffer of a slow stream's socket.
    pub slow_recv_buffer: u32,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Running worker processes holding the streams of one run.
pub struct Fleet {
    workers: Vec<Worker>,
}

impl Fleet {
    /// Spawn the workers of `plan` (they connect on [`Fleet::connect`]).
    pub async fn launch(plan: &FleetPlan) -> io::Result<Fleet> {
        let exe = std::env::current_exe()?;
        let count = plan.streams.div_ceil(plan.per_worker.max(1)).max(1);
        let mut workers = Vec::with_capacity(count);
        for w in 0..count {
            let share = |total: usize| total / count + usize::from(w < total % count);
            let clients = share(plan.streams);
            let config = WorkerConfig {
                servers: plan.servers.clone(),
                resume_from: plan.resume_from,
                list: plan.list.clone(),
                clients,
                slow: share(plan.slow),
                sources: next_sources(clients.div_ceil(STREAMS_PER_SOURCE).max(1)),
                connect_concurrency: plan.connect_concurrency,
                slow_recv_buffer: plan.slow_recv_buffer,
                connect_timeout_ms: 15_000,
            };
            let mut child = Process::new(&exe)
                .arg("worker")
                .arg(serde_json::to_string(&config)?)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
            workers.push(Worker { child, stdin, stdout });
        }
        Ok(Fleet { workers })
    }

    /// Send `command` to every worker, then read one reply from each, waiting at most
    /// `limit` (a worker that does not answer by then is broken).
    async fn all(&mut self, command: &Command, limit: Duration) -> io::Result<Vec<Reply>> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        for worker in &mut self.workers {
            worker.stdin.write_all(&line).await?;
            worker.stdin.flush().await?;
        }
        let mut replies = Vec::with_capacity(self.workers.len());
        for worker in &mut self.workers {
            let read = tokio::time::timeout(limit, worker.stdout.next_line()).await;
            let line = match read {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => return Err(io::Error::other("a worker exited")),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("a worker did not answer in time")),
            };
            replies.push(serde_json::from_str(&line).map_err(io::Error::other)?);
        }
        Ok(replies)
    }

    /// CPU time used so far by the generator: every worker process and this coordinator.
    pub fn cpu(&self) -> Duration {
        let workers: Duration = self
            .workers
            .iter()
            .filter_map(|w| w.child.id())
            .map(|pid| crate::server::cpu_time(pid).unwrap_or_default())
            .sum();
        workers + crate::server::cpu_time(std::process::id()).unwrap_or_default()
    }

    /// Open every stream.
    pub async fn connect(&mut self) -> io::Result<ConnectReport> {
        let mut total = ConnectReport::default();
        for reply in self.all(&Command::Connect, Duration::from_secs(300)).await? {
            if let Reply::Connected(report) = reply {
                total.merge(report);
            }
        }
        Ok(total)
    }

    /// Start a new measurement window.
    pub async fn reset(&mut self) -> io::Result<()> {
        self.all(&Command::Reset, Duration::from_secs(30)).await.map(drop)
    }

    /// Slow streams read again.
    pub async fn resume_slow(&mut self) -> io::Result<()> {
        self.all(&Command::ResumeSlow, Duration::from_secs(30)).await.map(drop)
    }

    /// Wait until every stream has `last_id` (or `deadline` passed) and report the window.
    pub async fn await_id(
        &mut self,
        last_id: u64,
        include_slow: bool,
        deadline: Duration,
    ) -> io::Result<WindowReport> {
        let command =
            Command::Await { last_id, include_slow, deadline_ms: deadline.as_millis() as u64 };
        let mut total = WindowReport::default();
        for reply in self.all(&command, deadline + Duration::from_secs(30)).await? {
            if let Reply::Window(report) = reply {
                total.merge(report);
            }
        }
        Ok(total)
    }

    /// Drop every connection at once and let them reconnect; report when all caught up.
    pub async fn storm(&mut self, deadline: Duration) -> io::Result<StormReport> {
        let command = Command::Storm { deadline_ms: deadline.as_millis() as u64 };
        let mut total = StormReport::default();
        for reply in self.all(&command, deadline + Duration::from_secs(30)).await? {
            if let Reply::Storm(report) = reply {
                total.merge(report);
            }
        }
        Ok(total)
    }

    /// Tell every worker to quit and wait for it; kill those that do not exit promptly.
    pub async fn shutdown(mut self) {
        for worker in &mut self.workers {
            let _ = worker.stdin.write_all(b"{\"cmd\":\"quit\"}\n").await;
            let _ = worker.stdin.flush().await;
        }
        for worker in &mut self.workers {
            if tokio::time::timeout(Duration::from_secs(10), worker.child.wait()).await.is_err() {
                let _ = worker.child.kill().await;
            }
        }
    }
}
