//! The messages between the coordinator and its worker processes (JSON lines on the
//! workers' stdin and stdout), and how the workers' reports add up.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::stats::Latencies;

/// What one worker process holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The server processes under test: stream `i` of this worker opens on
    /// `servers[i % servers.len()]` (several processes on one database split the streams).
    pub servers: Vec<SocketAddr>,
    /// Where the first connection of every stream resumes from (`Last-Event-ID`), if
    /// anywhere: streams that resume from an old id replay the log before going live.
    pub resume_from: Option<u64>,
    /// The list every stream follows.
    pub list: String,
    /// Streams to open.
    pub clients: usize,
    /// How many of them (the first ones) stop reading after `connected` until
    /// [`Command::ResumeSlow`].
    pub slow: usize,
    /// Loopback source addresses, used in turn.
    pub sources: Vec<Ipv4Addr>,
    /// Connection attempts in flight at once (a new stream waits for a slot).
    pub connect_concurrency: usize,
    /// Receive buffer of a slow client's socket, in bytes.
    pub slow_recv_buffer: u32,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
}

/// A coordinator's command to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open every stream; reply [`Reply::Connected`] once each is open or has failed.
    Connect,
    /// Start a new measurement window (forget the delivery statistics so far).
    Reset,
    /// Reply [`Reply::Window`] once every live stream (slow ones too if `include_slow`) has
    /// received `last_id`, or when `deadline_ms` has passed.
    Await {
        /// The last event id published.
        last_id: u64,
        /// Whether slow streams must reach it too.
        include_slow: bool,
        /// Give up after this many milliseconds.
        deadline_ms: u64,
    },
    /// Slow streams start reading again.
    ResumeSlow,
    /// Reconnect storm: every stream drops its connection at once and reconnects with
    /// `Last-Event-ID`; reply [`Reply::Storm`] once each has received an event published
    /// after its own reconnection, or when `deadline_ms` has passed.
    Storm {
        /// Give up after this many milliseconds.
        deadline_ms: u64,
    },
    /// Close everything and exit.
    Quit,
}

/// A worker's answer to one [`Command`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// After [`Command::Connect`].
    Connected(ConnectReport),
    /// After [`Command::Reset`] and [`Command::ResumeSlow`].
    Ok,
    /// After [`Command::Await`].
    Window(WindowReport),
    /// After [`Command::Storm`].
    Storm(StormReport),
}

/// How opening the streams went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    /// Streams open.
    pub ok: u64,
    /// Streams that could not be opened.
    pub failed: u64,
    /// Connect → `connected` message received.
    pub latency: Latencies,
    /// The first failure, for the log.
    pub first_error: Option<String>,
}

impl ConnectReport {
    /// Add another worker's report.
    pub fn merge(&mut self, other: ConnectReport) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// Delivery statistics of one group of streams (healthy or slow) over one window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupReport {
    /// Streams in the group.
    pub clients: u64,
    /// Streams that received the awaited id.
    pub reached: u64,
    /// Benchmark events delivered.
    pub deliveries: u64,
    /// Bytes of `data` in those events (the JSON the server logged).
    pub data_bytes: u64,
    /// Events skipped: an id arrived more than one past the previous one.
    pub lost: u64,
    /// Events that arrived at or below an id already received (duplicate or reordered).
    pub out_of_order: u64,
    /// `resync` messages (the server could not resume).
    pub resyncs: u64,
    /// Streams that ended and could not be reopened.
    pub dead: u64,
    /// Per delivery: intended publish time → received.
    pub latency: Latencies,
}

impl GroupReport {
    /// Add another worker's report of the same group.
    pub fn merge(&mut self, other: &GroupReport) {
        self.clients += other.clients;
        self.reached += other.reached;
        self.deliveries += other.deliveries;
        self.data_bytes += other.data_bytes;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.resyncs += other.resyncs;
        self.dead += other.dead;
        self.latency.merge(&other.latency);
    }
}

/// One measurement window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowReport {
    /// Streams that keep reading.
    pub healthy: GroupReport,
    /// Streams that stopped reading for a while.
    pub slow: GroupReport,
    /// Per event id, the largest latency among healthy streams in nanoseconds: the
    /// publish → last subscriber time of that event.
    pub completion: Vec<(u64, u64)>,
    /// Whether the deadline passed before every stream reached the awaited id.
    pub timed_out: bool,
}

impl WindowReport {
    /// Add another worker's report of the same window.
    pub fn merge(&mut self, other: WindowReport) {
        self.healthy.merge(&other.healthy);
        self.slow.merge(&other.slow);
        let mut by_id: HashMap<u64, u64> = self.completion.drain(..).collect();
        for (id, nanos) in other.completion {
            let slot = by_id.entry(id).or_default();
            *slot = (*slot).max(nanos);
        }
        self.completion = by_id.into_iter().collect();
        self.completion.sort_unstable();
        self.timed_out |= other.timed_out;
    }

    /// Fan-out completion (publish → last healthy subscriber) over the window's events.
    pub fn completion_latencies(&self) -> Latencies {
        let mut h = Latencies::default();
        for &(_, nanos) in &self.completion {
            h.record_nanos(nanos);
        }
        h
    }
}

/// How a reconnect storm went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormReport {
    /// Streams that took part.
    pub clients: u64,
    /// Streams open again.
    pub reconnected: u64,
    /// Streams that received an event published after their reconnection.
    pub caught_up: u64,
    /// Drop → `connected` on the new connection.
    pub reconnect: Latencies,
    /// Drop → caught up.
    pub caught: Latencies,
    /// Whether the deadline passed first.
    pub timed_out: bool,
    /// Reconnection attempts that failed and were retried.
    pub retries: u64,
    /// The first reconnection failure, for the log.
    pub first_error: Option<String>,
}

impl StormReport {
    /// Add another worker's report.
    pub fn merge(&mut self, other: StormReport) {
        self.clients += other.clients;
        self.reconnected += other.reconnected;
        self.caught_up += other.caught_up;
        self.reconnect.merge(&other.reconnect);
        self.caught.merge(&other.caught);
        self.timed_out |= other.timed_out;
        self.retries += other.retries;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}
