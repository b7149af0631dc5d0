//! The storage bound: `POST`s per second with no streams open, clients sending back to back.
//! tidings on SQLite and on PostgreSQL, through one process and through two on the same
//! database, so the rows show what PostgreSQL and the cross-process advisory lock cost in
//! writes per second; the baselines (no durable log) for scale.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{create_list, Bench, CpuPart, LIST};
use crate::deployment::Topology;
use crate::payload::Fill;
use crate::publisher::{self, ClosedLoop};
use crate::server::{machine_cpu, Kind};

/// Lists the tidings rows write to in turn: a create counts its list's todos (the per-list
/// limit), so one list growing by thousands would measure that count rather than storage.
const LISTS: usize = 16;

/// One row: closed-loop write capacity of one server set-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteCapacity {
    /// Server.
    pub kind: Option<Kind>,
    /// tidings' processes and backend (`None` for a baseline).
    pub topology: Option<Topology>,
    /// Repetition number.
    pub rep: usize,
    /// Concurrent clients (spread evenly over the processes).
    pub connections: usize,
    /// `POST`s per second.
    pub per_sec: f64,
    /// Response time p50, ms.
    pub p50_ms: f64,
    /// Response time p99, ms.
    pub p99_ms: f64,
    /// Server-side CPU time per `POST` (every part together), µs.
    pub cpu_us_per_post: f64,
    /// Part by part.
    pub cpu_parts: Vec<CpuPart>,
    /// Failed requests (a client stops at its first).
    pub failed: u64,
    /// The first failure.
    pub error: Option<String>,
    /// CPU of processes outside the benchmark, % of one core.
    pub other_cpu_pct: f64,
    /// CPU stolen by the hypervisor, % of one core.
    pub steal_pct: f64,
}

/// Which rows, and how long each.
#[derive(Debug, Clone)]
pub struct StoragePlan {
    /// tidings rows: set-up and concurrent clients.
    pub tidings: Vec<(Topology, usize)>,
    /// Concurrent clients of the baseline rows.
    pub baseline_clients: usize,
    /// Seconds per row.
    pub duration: Duration,
}

/// Measure `POST`s per second of `kind` (tidings as `topology`) with `clients` clients.
pub async fn write_capacity(
    bench: &Bench,
    kind: Kind,
    topology: Option<Topology>,
    clients: usize,
    duration: Duration,
) -> io::Result<WriteCapacity> {
    let (server, lists) = match (kind, topology) {
        (Kind::Tidings, Some(topology)) => {
            let server = bench.start_tidings(topology, None).await?;
            let lists: Vec<String> = (0..LISTS).map(|i| format!("w{i}")).collect();
            for list in &lists {
                if let Err(e) = create_list(server.addr, list).await {
                    server.stop().await;
                    return Err(e);
                }
            }
            (server, lists)
        }
        _ => (bench.start(kind, None).await?, vec![LIST.to_owned()]),
    };
    let parts_before = server.cpu_parts();
    // The clients are tasks of this process: it is the generator.
    let me = || crate::server::cpu_time(std::process::id()).unwrap_or_default();
    let generator_before = me();
    let machine_before = machine_cpu();
    let started = Instant::now();
    let load = ClosedLoop {
        servers: server.addrs(),
        lists,
        clients,
        duration: Some(duration),
        count: None,
        pad: 0,
        fill: Fill::Ascii,
    };
    let report = publisher::closed_loop(load).await;
    let wall = started.elapsed();
    let generator = me().saturating_sub(generator_before);
    let machine_after = machine_cpu();
    let parts: Vec<(String, Duration)> = server
        .cpu_parts()
        .into_iter()
        .zip(parts_before)
        .map(|((name, after), (_, before))| (name, after.saturating_sub(before)))
        .collect();
    server.stop().await;
    let cpu: Duration = parts.iter().map(|(_, d)| *d).sum();
    let posts = report.ok.max(1) as f64;
    let pct = |d: Duration| d.as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-3);
    Ok(WriteCapacity {
        kind: Some(kind),
        topology,
        rep: 0,
        connections: clients,
        per_sec: report.per_sec(),
        p50_ms: report.latencies.quantile_ms(0.5),
        p99_ms: report.latencies.quantile_ms(0.99),
        cpu_us_per_post: cpu.as_secs_f64() * 1e6 / posts,
        cpu_parts: parts
            .iter()
            .map(|(name, d)| CpuPart {
                name: name.clone(),
                us_each: d.as_secs_f64() * 1e6 / posts,
                pct: pct(*d),
            })
            .collect(),
        failed: report.failed,
        error: report.first_error,
        other_cpu_pct: pct(machine_after
            .0
            .saturating_sub(machine_before.0)
            .saturating_sub(cpu + generator)),
        steal_pct: pct(machine_after.1.saturating_sub(machine_before.1)),
    })
}
