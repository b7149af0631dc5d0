//! The servers under test: start one on a fresh loopback port (pinned to its CPUs), wait
//! until it answers, read its memory and CPU time from `/proc`, and stop it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::http;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// tidings (Rocket), the server this harness exists for.
    Tidings,
    /// Baseline: a Node.js `node:http` server in the tutorial style.
    Node,
    /// Baseline: axum with `tokio::sync::broadcast`.
    Axum,
}

impl Kind {
    /// Short name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tidings => "tidings",
            Kind::Node => "node (baseline)",
            Kind::Axum => "axum (baseline)",
        }
    }

    /// Whether the server keeps an event log it can resume from (`Last-Event-ID`).
    pub fn resumes(self) -> bool {
        self == Kind::Tidings
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `target/release/tidings-server`.
    pub tidings: PathBuf,
    /// `target/release/tidings-baseline-axum`.
    pub axum: PathBuf,
    /// `tests/load/baselines/node/server.mjs`.
    pub node_script: PathBuf,
    /// A scratch directory for databases.
    pub scratch: PathBuf,
}

/// How to run a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// In-memory broadcast buffer (tidings and axum), if not the default.
    pub broadcast_capacity: Option<usize>,
    /// CPU list for `taskset -c`, if pinned.
    pub cpus: Option<String>,
    /// tidings' database (`postgres://…`); `None`: a fresh SQLite file in the scratch
    /// directory.
    pub database_url: Option<String>,
    /// More `TIDINGS_*` settings for tidings.
    pub env: Vec<(String, String)>,
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running server.
pub struct Server {
    /// Which one.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    child: Child,
    scratch: Option<PathBuf>,
}

impl Server {
    /// Start `kind` on a fresh port and wait until `/health` answers.
    pub async fn start(kind: Kind, programs: &Programs, options: &Options) -> io::Result<Server> {
        // A fresh port per start, so nothing left of an earlier run (TIME_WAIT) is in the way.
        let port = 20_000 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 10_000;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = match &options.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus);
                c
            }
            None => Command::new("env"),
        };
        let mut scratch = None;
        match kind {
            Kind::Tidings => {
                let url = match &options.database_url {
                    Some(url) => url.clone(),
                    None => {
                        let dir =
                            programs.scratch.join(format!("tidings-{port}-{}", std::process::id()));
                        std::fs::create_dir_all(&dir)?;
                        let url = format!("sqlite://{}/bench.db", dir.display());
                        scratch = Some(dir);
                        url
                    }
                };
                command
                    .arg(&programs.tidings)
                    .env("ROCKET_ADDRESS", "127.0.0.1")
                    .env("ROCKET_PORT", port.to_string())
                    .env("ROCKET_LOG_LEVEL", "off")
                    .env("TIDINGS_DATABASE_URL", url)
                    // One process can hold about 19 900 streams under the 20 000-file limit.
                    .env("TIDINGS_MAX_STREAMS", "19900")
                    // The generator opens 2 500 streams from each of its loopback source
                    // addresses, far past the default per-client cap of 64.
                    .env("TIDINGS_MAX_STREAMS_PER_CLIENT", "19900")
                    // Fan-out and ceiling runs publish thousands of todos into the one list
                    // every stream follows (the default cap is 5 000 per list).
                    .env("TIDINGS_MAX_TODOS_PER_LIST", "1000000")
                    // The load clients all write from loopback: one address, one budget.
                    .env("TIDINGS_WRITE_RATE", "0");
                // Everything else stays at its default, the probe (an SSE comment to every
                // stream every 5 s) included.
                if let Some(capacity) = options.broadcast_capacity {
                    command.env("TIDINGS_BROADCAST_CAPACITY", capacity.to_string());
                }
                command.envs(options.env.iter().map(|(k, v)| (k, v)));
            }
            Kind::Axum => {
                command.arg(&programs.axum).env("PORT", port.to_string());
                if let Some(capacity) = options.broadcast_capacity {
                    command.env("BROADCAST_CAPACITY", capacity.to_string());
                }
            }
            Kind::Node => {
                command.arg("node").arg(&programs.node_script).env("PORT", port.to_string());
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| io::Error::other("server exited at once"))?;
        let mut server = Server { kind, addr, pid, child, scratch };
        // Nothing to await but the port itself: ask until it answers (bounded).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http::health(addr).await.is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(io::Error::other(format!("{} exited: {status}", kind.name())));
            }
            if Instant::now() > deadline {
                server.stop().await;
                return Err(io::Error::other(format!("{} did not start", kind.name())));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Resident memory (`VmRSS` of `/proc/<pid>/status`), KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid).unwrap_or(0)
    }

    /// User + system CPU time consumed so far (all threads).
    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid).unwrap_or_default()
    }

    /// Kill the server and remove its scratch files.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `VmRSS` of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// CPU time of process `pid`: the sum of its threads' run time from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds), or utime + stime from `/proc/<pid>/stat`
/// (10 ms ticks, too coarse for short windows) where that is unavailable.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        let nanos: u64 = tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
            .sum();
        if nanos > 0 {
            return Ok(Duration::from_nanos(nanos));
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// CPU time of process `pid` and of all its children, living and exited: the run time of
/// its own threads and of every live child's, plus the `cutime` + `cstime` of children it
/// has already reaped (PostgreSQL's postmaster and its backends, for one).
pub fn tree_cpu_time(pid: u32) -> io::Result<Duration> {
    let own = cpu_time(pid)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 and 17 of stat(5), counted after the command name from field 3.
    let reaped: u64 =
        fields.get(13..15).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    let reaped = Duration::from_secs_f64(reaped as f64 / clock_ticks() as f64);
    let children: Duration =
        children_of(pid).into_iter().map(|c| tree_cpu_time(c).unwrap_or_default()).sum();
    Ok(own + reaped + children)
}

/// Process ids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().is_some_and(|stat| {
                let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
                after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
            })
        })
        .collect()
}

/// Busy and stolen CPU time of the whole machine so far, from `/proc/stat`: busy is user +
/// nice + system (interrupt time left out: it cannot be told apart per process), stolen is
/// what the hypervisor gave to other machines.
pub fn machine_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|rest| rest.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).copied().unwrap_or(0);
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / clock_ticks() as f64);
    (secs(ticks(0) + ticks(1) + ticks(2)), secs(ticks(7)))
}

/// Memory the kernel holds in TCP socket buffers, machine-wide (`TCP: … mem N` of
/// `/proc/net/sockstat`, in pages), KiB.
pub fn kernel_tcp_kib() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = sockstat
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .and_then(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.windows(2).find(|w| w[0] == "mem").and_then(|w| w[1].parse().ok())
        })
        .unwrap_or(0);
    pages * 4
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap_or_else(|_| ".".into())
}
