//! Scale-out fan-out (issue 10): the streams split evenly over two tidings processes on one
//! PostgreSQL database, events published through the first, so half of every event's
//! deliveries come through the second process's tailer (`LISTEN/NOTIFY`, then a read of the
//! log). Beside it, the same streams and rates on one process on SQLite (what every other
//! scenario runs) and on one process on PostgreSQL, which separates the cost of the backend
//! from the cost of crossing processes.

use std::io;

use serde::{Deserialize, Serialize};

use super::{window, Bench, WindowResult};
use crate::deployment::Topology;
use crate::fleet::Fleet;
use crate::publisher::Schedule;

/// One set-up at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterRun {
    /// Processes and backend.
    pub topology: Option<Topology>,
    /// Repetition number.
    pub rep: usize,
    /// Streams asked for, in all.
    pub streams: usize,
    /// Streams opened.
    pub connected: u64,
    /// Streams that failed to open.
    pub connect_failed: u64,
    /// First connect error.
    pub connect_error: Option<String>,
    /// Connect → `connected`, p99, ms.
    pub connect_p99_ms: f64,
    /// One window per rate.
    pub windows: Vec<WindowResult>,
}

/// Set-ups, sizes and windows.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// The set-ups compared, in table order.
    pub topologies: Vec<Topology>,
    /// Streams in all.
    pub sizes: Vec<usize>,
    /// `(events per second, seconds)` per window.
    pub windows: Vec<(f64, f64)>,
}

/// Fan out to `streams` streams spread over the processes of `topology`.
pub async fn fanout(
    bench: &Bench,
    topology: Topology,
    streams: usize,
    windows: &[(f64, f64)],
) -> io::Result<ClusterRun> {
    let server = bench.start_tidings(topology, None).await?;
    let result = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), streams, 0)).await?;
        let connect = fleet.connect().await?;
        let mut run = ClusterRun {
            topology: Some(topology),
            streams,
            connected: connect.ok,
            connect_failed: connect.failed,
            connect_error: connect.first_error.clone(),
            connect_p99_ms: connect.latency.quantile_ms(0.99),
            ..ClusterRun::default()
        };
        for &(rate, secs) in windows {
            let count = (rate * secs).round().max(1.0) as u64;
            let schedule = Schedule { rate, count, ..Schedule::default() };
            run.windows.push(window(bench, &server, &mut fleet, schedule, false).await?.result);
        }
        fleet.shutdown().await;
        Ok(run)
    }
    .await;
    server.stop().await;
    result
}
