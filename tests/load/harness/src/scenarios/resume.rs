//! Streams that resume from an old id and never read (issue 9, item 4): the memory the
//! server holds for each, and whether the server's other readers notice them.
//!
//! The log is filled first with long, non-ASCII titles. Then normal readers connect and a
//! control window is published; then the stalled streams connect with `Last-Event-ID: 1`
//! and never read (4 KiB receive buffer), in two halves. Each one's replay fills its socket's
//! kernel buffers and then waits on a write; the server's RSS is read once it has stopped
//! working on them (its CPU idle, its RSS flat), after each half. The same window is published again with them
//! stalled, then they read again and must receive the whole log, in order, once.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{window, Bench, WindowResult, LIST};
use crate::deployment::Deployment;
use crate::fleet::{Fleet, FleetPlan};
use crate::http;
use crate::payload::Fill;
use crate::publisher::{self, ClosedLoop, Schedule};
use crate::server::{kernel_tcp_kib, Kind};

/// Sizes and timing.
#[derive(Debug, Clone)]
pub struct ResumePlan {
    /// Streams that resume from id 1 and never read.
    pub stalled: usize,
    /// Normal readers on the same server.
    pub readers: usize,
    /// Events in the log before the stalled streams connect.
    pub log_events: u64,
    /// Title length of those events, in characters (wide: about 3.1 bytes each).
    pub pad: usize,
    /// Rate of the control and stalled windows (short titles).
    pub rate: f64,
    /// Seconds of each window.
    pub secs: f64,
    /// Longest wait for the server to settle with the streams stalled.
    pub settle_limit: Duration,
    /// Longest wait for the stalled streams to catch up once they read.
    pub catch_up_limit: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResumeRun {
    /// Repetition number.
    pub rep: usize,
    /// Stalled streams asked for.
    pub stalled: usize,
    /// Stalled streams opened.
    pub stalled_connected: u64,
    /// Stalled streams that failed to open, and the first error.
    pub stalled_failed: u64,
    /// The first error opening one.
    pub stalled_error: Option<String>,
    /// Normal readers.
    pub readers: usize,
    /// Events in the log when the stalled streams connected.
    pub log_events: u64,
    /// Average `data` bytes of a log event (measured by a stream that read the whole log).
    pub data_bytes_per_event: f64,
    /// What one reader added to the server's RSS when it connected (an idle stream), KiB.
    pub rss_per_reader_kib: f64,
    /// Server RSS with the readers open, before the stalled streams, KiB.
    pub rss_before_kib: u64,
    /// Server RSS once settled with the streams stalled, KiB.
    pub rss_stalled_kib: u64,
    /// Highest RSS seen while they connected and replayed, KiB.
    pub rss_peak_kib: u64,
    /// (stalled − before) / stalled streams, KiB.
    pub rss_per_stalled_kib: f64,
    /// Server RSS once settled with the first half stalled, KiB.
    pub rss_half_kib: u64,
    /// Stalled streams of the first half.
    pub half_connected: u64,
    /// (stalled − first half) / streams of the second half: what one more such stream
    /// costs, without what the first ones paid once, KiB.
    pub rss_marginal_kib: f64,
    /// Server RSS after the stalled streams caught up and closed, KiB.
    pub rss_released_kib: u64,
    /// Seconds from their connection until the server settled.
    pub settle_secs: f64,
    /// Whether it settled within the limit (if not, RSS was read at the limit).
    pub settled: bool,
    /// The kernel's TCP memory pressure threshold (`net.ipv4.tcp_mem`, second value), KiB.
    pub tcp_pressure_kib: u64,
    /// Kernel TCP buffer memory (machine-wide) before the stalled streams, KiB.
    pub kernel_tcp_before_kib: u64,
    /// The same with them stalled, KiB.
    pub kernel_tcp_stalled_kib: u64,
    /// Readers' window before the stalled streams.
    pub control: WindowResult,
    /// Readers' window with the streams stalled.
    pub with_stalled: WindowResult,
    /// Stalled streams that, once reading, received the last event.
    pub caught_up: u64,
    /// Seconds from "read again" until all had.
    pub catch_up_secs: f64,
    /// Events the stalled streams received in all.
    pub stalled_deliveries: u64,
    /// Events they missed.
    pub stalled_lost: u64,
    /// Events they got twice or out of order.
    pub stalled_out_of_order: u64,
    /// `resync`s and dead streams among them.
    pub stalled_broken: u64,
}

/// Wait until the server has settled: over the last second it used under 2 % of a core and
/// its RSS moved by under 1 MiB. A measurement of a state, not a wait for an event: nothing
/// tells when the last replay blocked on its socket. Keeps the highest RSS seen in `peak`;
/// `false` if `limit` passed first.
async fn settle(server: &Deployment, limit: Duration, peak: &mut u64) -> bool {
    let started = Instant::now();
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    loop {
        let (cpu, rss) = (server.cpu(), server.rss_kib());
        *peak = (*peak).max(rss);
        samples.push((cpu, rss));
        if let Some(&(cpu_then, rss_then)) = samples.len().checked_sub(5).map(|i| &samples[i]) {
            if cpu.saturating_sub(cpu_then) < Duration::from_millis(20)
                && rss.abs_diff(rss_then) < 1024
            {
                return true;
            }
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Run the scenario once on tidings (SQLite).
pub async fn stalled_resumes(bench: &Bench, plan: &ResumePlan) -> io::Result<ResumeRun> {
    let server = bench.start(Kind::Tidings, None).await?;
    let result = async {
        let fill = publisher::closed_loop(ClosedLoop {
            servers: server.addrs(),
            lists: vec![LIST.to_owned()],
            clients: 4,
            duration: None,
            count: Some(plan.log_events),
            pad: plan.pad,
            fill: Fill::Wide,
        })
        .await;
        if fill.failed > 0 {
            return Err(io::Error::other(format!(
                "filling the log: {}",
                fill.first_error.unwrap_or_default()
            )));
        }
        let (_, log_head) = http::health(server.addr).await?;
        let mut run = ResumeRun {
            stalled: plan.stalled,
            readers: plan.readers,
            log_events: fill.ok,
            ..ResumeRun::default()
        };

        // One stream reads the whole log: the size of what the stalled ones will hold back.
        let mut sample =
            Fleet::launch(&FleetPlan { resume_from: Some(1), ..bench.fleet(server.addrs(), 1, 0) })
                .await?;
        sample.connect().await?;
        let whole = sample.await_id(log_head, false, plan.catch_up_limit).await?;
        sample.shutdown().await;
        run.data_bytes_per_event =
            whole.healthy.data_bytes as f64 / whole.healthy.deliveries.max(1) as f64;

        let rss_empty = server.rss_kib();
        let mut readers = Fleet::launch(&bench.fleet(server.addrs(), plan.readers, 0)).await?;
        let connected = readers.connect().await?.ok;
        run.rss_per_reader_kib =
            server.rss_kib().saturating_sub(rss_empty) as f64 / connected.max(1) as f64;
        let schedule = Schedule {
            rate: plan.rate,
            count: (plan.rate * plan.secs).round().max(1.0) as u64,
            ..Schedule::default()
        };
        run.control = window(bench, &server, &mut readers, schedule.clone(), false).await?.result;
        run.rss_before_kib = server.rss_kib();
        run.kernel_tcp_before_kib = kernel_tcp_kib();
        run.tcp_pressure_kib = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            .map_or(0, |pages| pages * 4);

        // In two halves: the first also pays what is paid once (SQLite's page cache of each
        // reader connection filling with the log, the allocator's arenas), so the second
        // half's growth is the cost of one more such stream.
        let halves = [plan.stalled / 2, plan.stalled - plan.stalled / 2];
        let mut fleets = Vec::new();
        let connecting = Instant::now();
        run.rss_peak_kib = server.rss_kib();
        for (half, &streams) in halves.iter().enumerate() {
            let mut fleet = Fleet::launch(&FleetPlan {
                resume_from: Some(1),
                ..bench.fleet(server.addrs(), streams, streams)
            })
            .await?;
            let connect = fleet.connect().await?;
            run.stalled_connected += connect.ok;
            run.stalled_failed += connect.failed;
            run.stalled_error = run.stalled_error.take().or(connect.first_error);
            fleets.push(fleet);
            let settled = settle(&server, plan.settle_limit, &mut run.rss_peak_kib).await;
            run.settled = settled && (half == 0 || run.settled);
            if half == 0 {
                run.rss_half_kib = server.rss_kib();
                run.half_connected = connect.ok;
            }
        }
        run.settle_secs = connecting.elapsed().as_secs_f64();
        run.rss_stalled_kib = server.rss_kib();
        run.kernel_tcp_stalled_kib = kernel_tcp_kib();
        run.rss_per_stalled_kib = run.rss_stalled_kib.saturating_sub(run.rss_before_kib) as f64
            / run.stalled_connected.max(1) as f64;
        run.rss_marginal_kib = run.rss_stalled_kib.saturating_sub(run.rss_half_kib) as f64
            / (run.stalled_connected - run.half_connected).max(1) as f64;

        run.with_stalled = window(bench, &server, &mut readers, schedule, false).await?.result;

        let (_, head) = http::health(server.addr).await?;
        let resumed = Instant::now();
        for fleet in &mut fleets {
            fleet.resume_slow().await?;
        }
        let mut caught = crate::control::GroupReport::default();
        for fleet in &mut fleets {
            caught.merge(&fleet.await_id(head, true, plan.catch_up_limit).await?.slow);
        }
        run.catch_up_secs = resumed.elapsed().as_secs_f64();
        let s = &caught;
        // Every benchmark event of the log after id 1: the fill and both windows.
        let events = run.log_events + run.control.events + run.with_stalled.events;
        let expected = events * (s.clients - s.dead);
        let in_order = s.deliveries.saturating_sub(s.out_of_order);
        run.caught_up = s.reached;
        run.stalled_deliveries = s.deliveries;
        run.stalled_lost = s.lost.max(expected.saturating_sub(in_order));
        run.stalled_out_of_order = s.out_of_order;
        run.stalled_broken = s.resyncs + s.dead;
        for fleet in fleets {
            fleet.shutdown().await;
        }

        // Wait until the server has let go of them (its own count), then read RSS again.
        let deadline = Instant::now() + Duration::from_secs(20);
        while http::health(server.addr).await?.0 > plan.readers as u64 && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        run.rss_released_kib = server.rss_kib();
        readers.shutdown().await;
        Ok(run)
    }
    .await;
    server.stop().await;
    result
}
