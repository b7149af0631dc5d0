//! The scenarios of the benchmark, each one bounded run against one freshly started server.
//!
//! | function | scenario |
//! | --- | --- |
//! | [`capacity_and_fanout`] | 1 (idle capacity) and 2 (fan-out latency) on the same streams |
//! | [`ceiling`] | 3, throughput ceiling |
//! | [`slow_consumers`] | 4, 1 % of clients stop reading |
//! | [`storm`] | 5, reconnect storm with `Last-Event-ID` |
//! | [`write_syscalls`] | `strace -c`: write syscalls per delivery |
//! | [`storage`] | `POST`s per second the storage sustains: SQLite, PostgreSQL, one or two processes |
//! | [`cluster`] | fan-out over two tidings processes on one PostgreSQL, beside one on SQLite |
//! | [`resume`] | streams that resume from an old id and never read (issue 9, item 4) |

pub mod cluster;
pub mod fairness;
pub mod presence;
pub mod resume;
pub mod storage;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::control::WindowReport;
use crate::deployment::{Deployment, Topology};
use crate::fleet::{Fleet, FleetPlan};
use crate::http::{self, Conn};
use crate::postgres::Postgres;
use crate::publisher::{self, PublishReport, Schedule};
use crate::server::{machine_cpu, Kind, Options, Programs};

/// The list every benchmark stream follows.
pub const LIST: &str = "bench";

/// How the generator runs, whatever the scenario.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Where the servers are.
    pub programs: Programs,
    /// `taskset -c` CPU list for servers, if pinned.
    pub server_cpus: Option<String>,
    /// Streams per worker process.
    pub per_worker: usize,
    /// Connection attempts in flight per worker.
    pub connect_concurrency: usize,
    /// How long to wait for every stream to receive the last event of a window.
    pub await_deadline: Duration,
    /// The PostgreSQL cluster `bench.sh` started, if any.
    pub postgres: Option<Arc<Postgres>>,
}

/// Create list `id` through `server` (an existing one is fine).
pub async fn create_list(server: SocketAddr, id: &str) -> io::Result<()> {
    let body = format!(r#"{{"id":"{id}","title":"{id}"}}"#);
    let (status, answer) =
        Conn::open(server).await?.request("POST", "/api/lists", Some(&body)).await?;
    if status != 201 && status != 200 {
        let answer = String::from_utf8_lossy(&answer).into_owned();
        return Err(io::Error::other(format!("creating list {id}: {status} {answer}")));
    }
    Ok(())
}

impl Bench {
    fn options(&self, broadcast_capacity: Option<usize>) -> Options {
        Options { broadcast_capacity, cpus: self.server_cpus.clone(), ..Options::default() }
    }

    /// Start `kind` alone (tidings on SQLite) with the benchmark list.
    async fn start(&self, kind: Kind, broadcast_capacity: Option<usize>) -> io::Result<Deployment> {
        let deployment =
            Deployment::single(kind, &self.programs, &self.options(broadcast_capacity)).await?;
        with_list(deployment).await
    }

    /// Start tidings as `topology` with the benchmark list.
    async fn start_tidings(
        &self,
        topology: Topology,
        broadcast_capacity: Option<usize>,
    ) -> io::Result<Deployment> {
        let options = self.options(broadcast_capacity);
        let deployment =
            Deployment::tidings(topology, &self.programs, &options, self.postgres.as_ref()).await?;
        with_list(deployment).await
    }

    fn fleet(&self, servers: Vec<SocketAddr>, streams: usize, slow: usize) -> FleetPlan {
        FleetPlan {
            servers,
            resume_from: None,
            list: LIST.into(),
            streams,
            slow,
            per_worker: self.per_worker,
            connect_concurrency: self.connect_concurrency,
            slow_recv_buffer: 4096,
        }
    }
}

async fn with_list(deployment: Deployment) -> io::Result<Deployment> {
    match create_list(deployment.addr, LIST).await {
        Ok(()) => Ok(deployment),
        Err(e) => {
            deployment.stop().await;
            Err(e)
        }
    }
}

/// One part of the server side (a process, or the PostgreSQL cluster) over a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuPart {
    /// Which part.
    pub name: String,
    /// Its CPU time per delivery (per `POST` in the storage rows), µs.
    pub us_each: f64,
    /// Its CPU over the window, % of one core.
    pub pct: f64,
}

/// One publishing window, summarised.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowResult {
    /// Intended events per second.
    pub rate: f64,
    /// Events the server assigned ids to during the window.
    pub events: u64,
    /// Healthy streams.
    pub streams: u64,
    /// Benchmark events delivered to healthy streams.
    pub deliveries: u64,
    /// Healthy deliveries missing (gaps, or never arrived by the deadline).
    pub lost: u64,
    /// Healthy deliveries duplicated or out of order.
    pub out_of_order: u64,
    /// `resync` messages and streams that died.
    pub broken: u64,
    /// Per delivery latency, ms.
    pub p50_ms: f64,
    /// Per delivery latency, ms.
    pub p99_ms: f64,
    /// Per delivery latency, ms.
    pub max_ms: f64,
    /// Publish → last healthy subscriber, p99 over the window's events, ms.
    pub completion_p99_ms: f64,
    /// Publish → last healthy subscriber, worst event, ms.
    pub completion_max_ms: f64,
    /// Deliveries per second over the window (first intended publish → last delivery).
    pub deliveries_per_sec: f64,
    /// Server CPU time per delivery over the window, µs.
    pub cpu_us_per_delivery: f64,
    /// Server CPU over the window, % of one core (100 % = its one pinned core is saturated).
    pub server_cpu_pct: f64,
    /// Generator CPU (workers and coordinator) over the window, % of one core.
    pub generator_cpu_pct: f64,
    /// Failed `POST`s.
    pub publish_failed: u64,
    /// Largest delay of a `POST` behind its schedule, ms.
    pub publish_behind_ms: f64,
    /// `POST` response time p99, ms.
    pub post_p99_ms: f64,
    /// Whether some stream had not received the last event at the deadline.
    pub timed_out: bool,
    /// The server side part by part (with one process: that process).
    pub cpu_parts: Vec<CpuPart>,
    /// CPU used by processes outside the benchmark (other users of the machine) over the
    /// window, % of one core: machine busy time (user + nice + system) minus the server
    /// side's and the generator's. Approximate (interrupt time is charged unevenly).
    pub other_cpu_pct: f64,
    /// CPU stolen by the hypervisor over the window, % of one core.
    pub steal_pct: f64,
}

impl WindowResult {
    /// No loss, no duplicate, nothing broken, every event published.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.out_of_order == 0
            && self.broken == 0
            && self.publish_failed == 0
            && !self.timed_out
    }
}

struct Window {
    result: WindowResult,
    report: WindowReport,
}

/// Publish `schedule` and wait until every stream has it; measure on the way.
async fn window(
    bench: &Bench,
    server: &Deployment,
    fleet: &mut Fleet,
    schedule: Schedule,
    include_slow: bool,
) -> io::Result<Window> {
    fleet.reset().await?;
    let (_, head_before) = http::health(server.addr).await?;
    let parts_before = server.cpu_parts();
    let generator_before = fleet.cpu();
    let machine_before = machine_cpu();
    let started = Instant::now();
    let rate = schedule.rate;
    let publish =
        publisher::publish(server.addr, LIST, schedule, Arc::new(AtomicBool::new(false))).await;
    let (_, head) = http::health(server.addr).await?;
    let report = fleet.await_id(head, include_slow, bench.await_deadline).await?;
    let wall = started.elapsed();
    let parts: Vec<(String, Duration)> = server
        .cpu_parts()
        .into_iter()
        .zip(parts_before)
        .map(|((name, after), (_, before))| (name, after.saturating_sub(before)))
        .collect();
    let cpu: Duration = parts.iter().map(|(_, d)| *d).sum();
    let generator = fleet.cpu().saturating_sub(generator_before);
    let machine_after = machine_cpu();
    let mut result = summarise(rate, head - head_before, &publish, &report, cpu, wall);
    let pct = |d: Duration| d.as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-3);
    result.generator_cpu_pct = pct(generator);
    let deliveries = result.deliveries.max(1) as f64;
    result.cpu_parts = parts
        .iter()
        .map(|(name, d)| CpuPart {
            name: name.clone(),
            us_each: d.as_secs_f64() * 1e6 / deliveries,
            pct: pct(*d),
        })
        .collect();
    let busy = machine_after.0.saturating_sub(machine_before.0);
    result.other_cpu_pct = pct(busy.saturating_sub(cpu + generator));
    result.steal_pct = pct(machine_after.1.saturating_sub(machine_before.1));
    Ok(Window { result, report })
}

fn summarise(
    rate: f64,
    events: u64,
    publish: &PublishReport,
    report: &WindowReport,
    cpu: Duration,
    wall: Duration,
) -> WindowResult {
    let h = &report.healthy;
    let expected = events * (h.clients - h.dead);
    let in_order = h.deliveries.saturating_sub(h.out_of_order);
    let completion = report.completion_latencies();
    WindowResult {
        rate,
        events,
        streams: h.clients,
        deliveries: h.deliveries,
        lost: h.lost.max(expected.saturating_sub(in_order)),
        out_of_order: h.out_of_order,
        broken: h.resyncs + h.dead,
        p50_ms: h.latency.quantile_ms(0.50),
        p99_ms: h.latency.quantile_ms(0.99),
        max_ms: h.latency.max_ms(),
        completion_p99_ms: completion.quantile_ms(0.99),
        completion_max_ms: completion.max_ms(),
        deliveries_per_sec: h.deliveries as f64 / wall.as_secs_f64().max(1e-3),
        cpu_us_per_delivery: if h.deliveries == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / h.deliveries as f64
        },
        server_cpu_pct: cpu.as_secs_f64() * 100.0 / wall.as_secs_f64().max(1e-3),
        generator_cpu_pct: 0.0,
        publish_failed: publish.failed,
        publish_behind_ms: publish.max_behind_ms,
        post_p99_ms: publish.response.quantile_ms(0.99),
        timed_out: report.timed_out,
        ..WindowResult::default()
    }
}

/// Scenarios 1 and 2 on one set of streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FanoutRun {
    /// Server.
    pub kind: Option<Kind>,
    /// Repetition number.
    pub rep: usize,
    /// Streams asked for.
    pub streams: usize,
    /// Streams opened.
    pub connected: u64,
    /// Streams that failed to open.
    pub connect_failed: u64,
    /// First connect error.
    pub connect_error: Option<String>,
    /// Connect → `connected` received, p99, ms.
    pub connect_p99_ms: f64,
    /// Connect → `connected` received, max, ms.
    pub connect_max_ms: f64,
    /// Server RSS before any stream, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every stream open and idle, KiB.
    pub rss_idle_kib: u64,
    /// (idle − before) / streams, KiB.
    pub rss_per_stream_kib: f64,
    /// Server CPU while idle with every stream open, % of one core.
    pub idle_cpu_pct: f64,
    /// The fan-out windows, one per rate.
    pub windows: Vec<WindowResult>,
}

/// Rates and lengths of the fan-out windows.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    /// Seconds of idle measurement.
    pub idle: Duration,
    /// `(events per second, seconds)` per window.
    pub windows: Vec<(f64, f64)>,
}

/// Scenario 1 (idle capacity) and scenario 2 (fan-out latency) with `streams` streams.
pub async fn capacity_and_fanout(
    bench: &Bench,
    kind: Kind,
    streams: usize,
    plan: &FanoutPlan,
) -> io::Result<FanoutRun> {
    let server = bench.start(kind, None).await?;
    let result = async {
        let rss_before = server.rss_kib();
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), streams, 0)).await?;
        let connect = fleet.connect().await?;
        // A measurement window, not a synchronisation: idle CPU is CPU over time.
        let cpu_before = server.cpu();
        tokio::time::sleep(plan.idle).await;
        let idle_cpu = server.cpu().saturating_sub(cpu_before);
        let rss_idle = server.rss_kib();
        let mut run = FanoutRun {
            kind: Some(kind),
            streams,
            connected: connect.ok,
            connect_failed: connect.failed,
            connect_error: connect.first_error.clone(),
            connect_p99_ms: connect.latency.quantile_ms(0.99),
            connect_max_ms: connect.latency.max_ms(),
            rss_before_kib: rss_before,
            rss_idle_kib: rss_idle,
            rss_per_stream_kib: rss_idle.saturating_sub(rss_before) as f64
                / connect.ok.max(1) as f64,
            idle_cpu_pct: idle_cpu.as_secs_f64() * 100.0 / plan.idle.as_secs_f64(),
            ..FanoutRun::default()
        };
        for &(rate, secs) in &plan.windows {
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

/// Scenario 3: the highest event rate the server delivers cleanly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CeilingRun {
    /// Server.
    pub kind: Option<Kind>,
    /// Repetition number.
    pub rep: usize,
    /// Streams.
    pub streams: usize,
    /// Streams opened.
    pub connected: u64,
    /// Every step, in order; the last failed (or the step limit was reached).
    pub steps: Vec<WindowResult>,
    /// The best clean step with completion p99 ≤ 1 s.
    pub best: Option<WindowResult>,
    /// Why the search stopped.
    pub stopped: String,
}

impl CeilingRun {
    /// Whether even the last step tried was clean: the real ceiling lies above it.
    pub fn unbounded(&self) -> bool {
        self.best.is_some()
            && self.best.as_ref().map(|b| b.rate) == self.steps.last().map(|s| s.rate)
    }
}

/// How to search for the ceiling.
#[derive(Debug, Clone)]
pub struct CeilingPlan {
    /// Deliveries per second of the first step (the rate is this / streams).
    pub first_deliveries_per_sec: f64,
    /// Rate factor between steps.
    pub factor: f64,
    /// Seconds per step.
    pub step_secs: f64,
    /// Most steps.
    pub max_steps: usize,
    /// Completion p99 limit, ms.
    pub limit_ms: f64,
}

/// Scenario 3 with `streams` streams.
pub async fn ceiling(
    bench: &Bench,
    kind: Kind,
    streams: usize,
    plan: &CeilingPlan,
) -> io::Result<CeilingRun> {
    let server = bench.start(kind, None).await?;
    let result = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), streams, 0)).await?;
        let connect = fleet.connect().await?;
        let mut run = CeilingRun {
            kind: Some(kind),
            streams,
            connected: connect.ok,
            stopped: format!("reached the step limit ({})", plan.max_steps),
            ..CeilingRun::default()
        };
        let mut rate = plan.first_deliveries_per_sec / connect.ok.max(1) as f64;
        for _ in 0..plan.max_steps {
            let count = (rate * plan.step_secs).round().max(5.0) as u64;
            let step = window(bench, &server, &mut fleet, Schedule { rate, count, ..Schedule::default() }, false)
                .await?
                .result;
            let within = step.completion_p99_ms <= plan.limit_ms;
            let clean = step.clean();
            run.steps.push(step.clone());
            if !(within && clean) {
                run.stopped = if clean {
                    format!("at {rate:.1} events/s completion p99 was {:.0} ms", step.completion_p99_ms)
                } else {
                    format!(
                        "at {rate:.1} events/s: lost {}, out of order {}, broken {}, publish failures {}{}",
                        step.lost,
                        step.out_of_order,
                        step.broken,
                        step.publish_failed,
                        if step.timed_out { ", deadline passed" } else { "" }
                    )
                };
                break;
            }
            run.best = Some(step);
            rate *= plan.factor;
        }
        fleet.shutdown().await;
        Ok(run)
    }
    .await;
    server.stop().await;
    result
}

/// Scenario 4: the same load with and without 1 % of clients that stop reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlowRun {
    /// Server.
    pub kind: Option<Kind>,
    /// Repetition number.
    pub rep: usize,
    /// Streams.
    pub streams: usize,
    /// Slow streams among them.
    pub slow: usize,
    /// Broadcast buffer given to the servers that have one.
    pub broadcast_capacity: usize,
    /// Seconds of the run with stalled clients.
    pub secs: f64,
    /// Without slow clients.
    pub control: WindowResult,
    /// Healthy streams with slow clients present.
    pub with_slow: WindowResult,
    /// Healthy per-delivery p99 change, % (with slow vs control).
    pub p99_change_pct: f64,
    /// Server RSS at the end of the control window, KiB.
    pub control_rss_kib: u64,
    /// Server RSS with slow clients still stalled, KiB.
    pub stalled_rss_kib: u64,
    /// Slow streams that, once reading again, received the last event.
    pub slow_caught_up: u64,
    /// Deliveries the slow streams missed.
    pub slow_lost: u64,
    /// Deliveries the slow streams got twice or out of order.
    pub slow_out_of_order: u64,
}

/// Rate and size of the slow-consumer runs.
#[derive(Debug, Clone)]
pub struct SlowPlan {
    /// Streams.
    pub streams: usize,
    /// Events per second.
    pub rate: f64,
    /// Seconds of the run with stalled clients: long enough to fill a stalled socket's
    /// kernel send buffer (up to 4 MiB on this kernel's loopback) and then the broadcast
    /// buffer.
    pub secs: f64,
    /// Seconds of the control run (same rate, no stalled clients).
    pub control_secs: f64,
    /// Title padding, to make events larger.
    pub pad: usize,
    /// Broadcast buffer given to tidings and axum, small enough that stalled streams fall
    /// behind it within the run.
    pub broadcast_capacity: usize,
}

/// Scenario 4.
pub async fn slow_consumers(bench: &Bench, kind: Kind, plan: &SlowPlan) -> io::Result<SlowRun> {
    let slow = (plan.streams / 100).max(1);
    let count = (plan.rate * plan.secs).round() as u64;
    let schedule = Schedule { rate: plan.rate, count, pad: plan.pad, ..Schedule::default() };
    let control_count = (plan.rate * plan.control_secs).round() as u64;
    let control_schedule = Schedule { count: control_count, ..schedule.clone() };
    let mut run = SlowRun {
        kind: Some(kind),
        streams: plan.streams,
        slow,
        broadcast_capacity: plan.broadcast_capacity,
        secs: plan.secs,
        ..SlowRun::default()
    };

    let server = bench.start(kind, Some(plan.broadcast_capacity)).await?;
    let control = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), plan.streams, 0)).await?;
        fleet.connect().await?;
        let w = window(bench, &server, &mut fleet, control_schedule, false).await?;
        let rss = server.rss_kib();
        fleet.shutdown().await;
        Ok::<_, io::Error>((w.result, rss))
    }
    .await;
    server.stop().await;
    (run.control, run.control_rss_kib) = control?;

    let server = bench.start(kind, Some(plan.broadcast_capacity)).await?;
    let stalled = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), plan.streams, slow)).await?;
        fleet.connect().await?;
        let w = window(bench, &server, &mut fleet, schedule, false).await?;
        let rss = server.rss_kib();
        let (_, head) = http::health(server.addr).await?;
        fleet.resume_slow().await?;
        let after = fleet.await_id(head, true, bench.await_deadline).await?;
        fleet.shutdown().await;
        Ok::<_, io::Error>((w, rss, after))
    }
    .await;
    server.stop().await;
    let (w, rss, after) = stalled?;
    run.with_slow = w.result;
    run.stalled_rss_kib = rss;
    run.p99_change_pct = if run.control.p99_ms > 0.0 {
        (run.with_slow.p99_ms - run.control.p99_ms) * 100.0 / run.control.p99_ms
    } else {
        0.0
    };
    // The slow streams over both phases: what they got while stalled plus after resuming.
    let mut slow_total = w.report.slow.clone();
    slow_total.merge(&after.slow);
    let expected = run.with_slow.events * (slow as u64 - after.slow.dead);
    let in_order = slow_total.deliveries.saturating_sub(slow_total.out_of_order);
    run.slow_caught_up = after.slow.reached;
    run.slow_lost = slow_total.lost.max(expected.saturating_sub(in_order));
    run.slow_out_of_order = slow_total.out_of_order;
    Ok(run)
}

/// Scenario 5.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormRun {
    /// Server.
    pub kind: Option<Kind>,
    /// Repetition number.
    pub rep: usize,
    /// Streams.
    pub streams: usize,
    /// Events per second kept up through the storm.
    pub rate: f64,
    /// Streams open before the storm.
    pub connected: u64,
    /// Streams open again after it.
    pub reconnected: u64,
    /// Streams that caught up.
    pub caught_up: u64,
    /// Drop → `connected` again, p99, ms.
    pub reconnect_p99_ms: f64,
    /// Drop → caught up, p99, ms.
    pub caught_p99_ms: f64,
    /// Drop → the last stream caught up, ms.
    pub all_caught_ms: f64,
    /// Events published from the start of publishing to its end.
    pub events: u64,
    /// Deliveries missing over the whole run.
    pub lost: u64,
    /// Deliveries duplicated or out of order over the whole run.
    pub out_of_order: u64,
    /// `resync` messages and dead streams.
    pub broken: u64,
    /// Whether the storm's deadline passed.
    pub timed_out: bool,
    /// Reconnection attempts refused or failed, then retried.
    pub retries: u64,
    /// The first reconnection error.
    pub error: Option<String>,
}

/// Rate and timing of the storm.
#[derive(Debug, Clone)]
pub struct StormPlan {
    /// Streams.
    pub streams: usize,
    /// Events per second, kept up through the storm.
    pub rate: f64,
    /// Seconds of publishing before the drop.
    pub before: Duration,
    /// Longest the storm may take.
    pub deadline: Duration,
}

/// Scenario 5: every stream drops at once and reconnects with `Last-Event-ID` while events
/// keep flowing.
pub async fn storm(bench: &Bench, kind: Kind, plan: &StormPlan) -> io::Result<StormRun> {
    let server = bench.start(kind, None).await?;
    let result = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), plan.streams, 0)).await?;
        let connect = fleet.connect().await?;
        fleet.reset().await?;
        let (_, head_before) = http::health(server.addr).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let most = (plan.rate * (plan.before + plan.deadline).as_secs_f64()).ceil() as u64;
        let schedule = Schedule { rate: plan.rate, count: most, ..Schedule::default() };
        let publishing =
            tokio::spawn(publisher::publish(server.addr, LIST, schedule, stop.clone()));
        // The storm starts a fixed time into the run: events are flowing by then.
        tokio::time::sleep(plan.before).await;
        let storm = fleet.storm(plan.deadline).await;
        stop.store(true, Ordering::Relaxed);
        let publish = publishing.await.map_err(io::Error::other)?;
        let storm = storm?;
        let (_, head) = http::health(server.addr).await?;
        let report = fleet.await_id(head, false, bench.await_deadline).await?;
        fleet.shutdown().await;
        let w = summarise(
            plan.rate,
            head - head_before,
            &publish,
            &report,
            Duration::ZERO,
            Duration::ZERO,
        );
        Ok(StormRun {
            kind: Some(kind),
            rep: 0,
            streams: plan.streams,
            rate: plan.rate,
            connected: connect.ok,
            reconnected: storm.reconnected,
            caught_up: storm.caught_up,
            reconnect_p99_ms: storm.reconnect.quantile_ms(0.99),
            caught_p99_ms: storm.caught.quantile_ms(0.99),
            all_caught_ms: storm.caught.max_ms(),
            events: w.events,
            lost: w.lost,
            out_of_order: w.out_of_order,
            broken: w.broken,
            timed_out: storm.timed_out || report.timed_out,
            retries: storm.retries,
            error: storm.first_error,
        })
    }
    .await;
    server.stop().await;
    result
}

/// Write syscalls of the server during a fan-out, counted by `strace -c -f`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyscallRun {
    /// Server.
    pub kind: Option<Kind>,
    /// Streams.
    pub streams: usize,
    /// Events published.
    pub events: u64,
    /// Deliveries.
    pub deliveries: u64,
    /// `(syscall, calls)` for the write family (`write`, `writev`, `sendto`, `sendmsg`).
    pub writes: Vec<(String, u64)>,
    /// All write-family calls per delivery.
    pub writes_per_delivery: f64,
    /// The strace command used.
    pub command: String,
}

/// Count the server's write syscalls while `events` events fan out to `streams` streams.
pub async fn write_syscalls(
    bench: &Bench,
    kind: Kind,
    streams: usize,
    events: u64,
    out_dir: &std::path::Path,
) -> io::Result<SyscallRun> {
    let server = bench.start(kind, None).await?;
    let result = async {
        let mut fleet = Fleet::launch(&bench.fleet(server.addrs(), streams, 0)).await?;
        fleet.connect().await?;
        let file: PathBuf =
            out_dir.join(format!("strace-{}.txt", kind.name().split(' ').next().unwrap_or("x")));
        let args = ["-c", "-f", "-p", &server.pid().to_string(), "-o", &file.display().to_string()]
            .map(str::to_owned);
        let mut strace = tokio::process::Command::new("strace")
            .args(&args)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let strace_pid = strace.id().unwrap_or(0);
        // strace says when it has attached; measure only after that.
        let mut lines = BufReader::new(strace.stderr.take().expect("piped")).lines();
        let attached = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("attached") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !attached {
            let _ = strace.kill().await;
            return Err(io::Error::other("strace did not attach (is ptrace allowed?)"));
        }
        let w = window(
            bench,
            &server,
            &mut fleet,
            Schedule { rate: 10.0, count: events, ..Schedule::default() },
            false,
        )
        .await?;
        // SIGINT makes strace detach and write its summary.
        std::process::Command::new("kill").arg("-INT").arg(strace_pid.to_string()).status()?;
        let _ = tokio::time::timeout(Duration::from_secs(20), strace.wait()).await;
        fleet.shutdown().await;
        let summary = std::fs::read_to_string(&file)?;
        let writes = parse_strace_summary(&summary)
            .into_iter()
            .filter(|(name, _)| matches!(name.as_str(), "write" | "writev" | "sendto" | "sendmsg"))
            .collect::<Vec<_>>();
        let total: u64 = writes.iter().map(|(_, n)| n).sum();
        Ok(SyscallRun {
            kind: Some(kind),
            streams,
            events: w.result.events,
            deliveries: w.result.deliveries,
            writes_per_delivery: total as f64 / w.result.deliveries.max(1) as f64,
            writes,
            command: format!("strace {}", args.join(" ")),
        })
    }
    .await;
    server.stop().await;
    result
}

/// `(syscall, calls)` rows of an `strace -c` summary.
pub fn parse_strace_summary(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors], syscall
            if fields.len() < 5 || fields[0].starts_with('%') || fields[0].starts_with('-') {
                return None;
            }
            let name = *fields.last()?;
            let calls = fields[3].parse().ok()?;
            (name != "total").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// Drive a server that is already running (started by hand, under a profiler): open
/// `streams` streams, publish `rate` events/s for `secs` seconds, wait for every delivery,
/// and return the window's summary. Creates the benchmark list if needed.
pub async fn drive(
    server: SocketAddr,
    streams: usize,
    rate: f64,
    secs: f64,
    connect_concurrency: usize,
) -> io::Result<(u64, WindowResult)> {
    let body = format!(r#"{{"id":"{LIST}","title":"{LIST}"}}"#);
    let (status, _) = Conn::open(server).await?.request("POST", "/api/lists", Some(&body)).await?;
    if status != 201 && status != 200 {
        return Err(io::Error::other(format!("creating the list: {status}")));
    }
    let plan = FleetPlan {
        servers: vec![server],
        resume_from: None,
        list: LIST.into(),
        streams,
        slow: 0,
        per_worker: 5_000,
        connect_concurrency,
        slow_recv_buffer: 4096,
    };
    let mut fleet = Fleet::launch(&plan).await?;
    let connect = fleet.connect().await?;
    let (_, head_before) = http::health(server).await?;
    let started = Instant::now();
    let count = (rate * secs).round().max(1.0) as u64;
    let schedule = Schedule { rate, count, ..Schedule::default() };
    let publish =
        publisher::publish(server, LIST, schedule, Arc::new(AtomicBool::new(false))).await;
    let (_, head) = http::health(server).await?;
    let report = fleet.await_id(head, false, Duration::from_secs(60)).await?;
    let wall = started.elapsed();
    fleet.shutdown().await;
    Ok((connect.ok, summarise(rate, head - head_before, &publish, &report, Duration::ZERO, wall)))
}

#[cfg(test)]
mod tests {
    use super::{parse_strace_summary, CeilingRun, WindowResult};

    #[test]
    fn a_ceiling_search_whose_last_step_was_clean_is_unbounded() {
        let step = |rate: f64| WindowResult { rate, ..WindowResult::default() };
        let steps = vec![step(10.0), step(15.0)];
        let capped =
            CeilingRun { steps: steps.clone(), best: Some(step(15.0)), ..Default::default() };
        let found =
            CeilingRun { steps: steps.clone(), best: Some(step(10.0)), ..Default::default() };
        let none_clean = CeilingRun { steps, best: None, ..Default::default() };
        assert!(capped.unbounded());
        assert!(!found.unbounded());
        assert!(!none_clean.unbounded());
    }

    #[test]
    fn reads_strace_tables() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n \
                    60.00    0.006000           6      1000           writev\n \
                    30.00    0.003000           3      1000       500 recvfrom\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.010000           5      2000       500 total\n";
        assert_eq!(
            parse_strace_summary(text),
            vec![("writev".to_owned(), 1000), ("recvfrom".to_owned(), 1000)]
        );
    }
}
