//! The whole benchmark: which scenarios, sizes and repetitions (full or quick), run in one
//! go against every server, saved as JSON after each step so a partial run still reports.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::deployment::{Backend, Topology};
use crate::postgres::PostgresInfo;
use crate::scenarios::cluster::{self, ClusterPlan, ClusterRun};
use crate::scenarios::resume::{self, ResumePlan, ResumeRun};
use crate::scenarios::storage::{self, StoragePlan, WriteCapacity};
use crate::scenarios::{
    self, Bench, CeilingPlan, CeilingRun, FanoutPlan, FanoutRun, SlowPlan, SlowRun, StormPlan,
    StormRun, SyscallRun,
};
use crate::server::{load_average, Kind};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The quick smoke-check version.
    pub quick: bool,
    /// Repetitions of each measured scenario (results are medians).
    pub reps: usize,
    /// Servers, tidings first.
    pub servers: Vec<Kind>,
    /// Scenarios to run: `fanout` (1 and 2), `ceiling`, `slow`, `resume`, `storm`, `syscalls`,
    /// `writes`, `cluster`.
    pub scenarios: Vec<String>,
    /// Stream counts of scenarios 1 and 2.
    pub sizes: Vec<usize>,
    /// Scenario 1 and 2 windows.
    pub fanout: FanoutPlan,
    /// Stream counts of scenario 3.
    pub ceiling_sizes: Vec<usize>,
    /// Scenario 3 search.
    pub ceiling: CeilingPlan,
    /// Scenario 4.
    pub slow: SlowPlan,
    /// Scenario 5.
    pub storm: StormPlan,
    /// Streams and events of the `strace -c` run.
    pub syscalls: (usize, u64),
    /// Write capacity rows.
    pub writes: StoragePlan,
    /// Scale-out fan-out.
    pub cluster: ClusterPlan,
    /// Stalled resuming streams (issue 9, item 4).
    pub resume: ResumePlan,
}

/// One tidings process on PostgreSQL.
const PG_ONE: Topology = Topology { backend: Backend::Postgres, processes: 1 };
/// Two tidings processes on one PostgreSQL database.
const PG_TWO: Topology = Topology { backend: Backend::Postgres, processes: 2 };

fn storage_rows() -> Vec<(Topology, usize)> {
    vec![
        (Topology::SQLITE, 1),
        (Topology::SQLITE, 8),
        (PG_ONE, 1),
        (PG_ONE, 8),
        (PG_TWO, 2),
        (PG_TWO, 8),
    ]
}

fn env_list<T: std::str::FromStr>(name: &str) -> Option<Vec<T>> {
    let value = std::env::var(name).ok()?;
    value.split(',').map(|v| v.trim().parse().ok()).collect()
}

impl Plan {
    /// The plan chosen by the environment: `BENCH_QUICK=1` for the quick version,
    /// `BENCH_REPS`, `BENCH_SERVERS` (`tidings,node,axum`), `BENCH_SCENARIOS` and
    /// `BENCH_SIZES` (and `BENCH_CEILING_SIZES` for the throughput ceiling) to narrow a run.
    pub fn from_env() -> Plan {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let mut plan = if quick { Plan::quick() } else { Plan::full() };
        if let Some(reps) = std::env::var("BENCH_REPS").ok().and_then(|r| r.parse().ok()) {
            plan.reps = reps;
        }
        if let Some(names) = env_list::<String>("BENCH_SERVERS") {
            plan.servers = names
                .iter()
                .filter_map(|n| match n.as_str() {
                    "tidings" => Some(Kind::Tidings),
                    "node" => Some(Kind::Node),
                    "axum" => Some(Kind::Axum),
                    _ => None,
                })
                .collect();
        }
        if let Some(scenarios) = env_list("BENCH_SCENARIOS") {
            plan.scenarios = scenarios;
        }
        if let Some(sizes) = env_list("BENCH_SIZES") {
            plan.sizes = sizes;
        }
        if let Some(sizes) = env_list("BENCH_CEILING_SIZES") {
            plan.ceiling_sizes = sizes;
        }
        plan
    }

    /// Every scenario, in the order a full run measures them.
    pub fn all_scenarios() -> Vec<String> {
        ["fanout", "ceiling", "slow", "resume", "storm", "syscalls", "writes", "cluster"]
            .map(str::to_owned)
            .to_vec()
    }

    /// The full benchmark (about 35 minutes on 2 cores: 33 in the run of BENCHMARKS.md).
    pub fn full() -> Plan {
        Plan {
            quick: false,
            reps: 3,
            servers: vec![Kind::Tidings, Kind::Node, Kind::Axum],
            scenarios: Plan::all_scenarios(),
            sizes: vec![1_000, 5_000, 10_000, 19_000],
            fanout: FanoutPlan {
                idle: Duration::from_secs(4),
                windows: vec![(1.0, 10.0), (10.0, 6.0)],
            },
            ceiling_sizes: vec![1_000, 10_000],
            ceiling: CeilingPlan {
                first_deliveries_per_sec: 25_000.0,
                factor: 1.5,
                step_secs: 4.0,
                max_steps: 8,
                limit_ms: 1_000.0,
            },
            // ~490-character titles make ~700 B events: 35 s at 200/s is ~5 MB per stalled stream, past
            // the 4 MiB socket send buffer, so the server's own buffering is what is measured.
            // The control run is as long, so both p99s come from equally long windows.
            slow: SlowPlan {
                streams: 300,
                rate: 200.0,
                secs: 35.0,
                control_secs: 35.0,
                pad: 460,
                broadcast_capacity: 128,
            },
            // 2 events/s: 10 000 streams at 10/s would already fill the server's one core,
            // leaving nothing for the reconnections.
            storm: StormPlan {
                streams: 10_000,
                rate: 2.0,
                before: Duration::from_secs(3),
                deadline: Duration::from_secs(60),
            },
            syscalls: (1_000, 20),
            writes: StoragePlan {
                tidings: storage_rows(),
                baseline_clients: 8,
                duration: Duration::from_secs(3),
            },
            // Sizes that fit the one core the server side has here (three processes share it).
            cluster: ClusterPlan {
                topologies: vec![Topology::SQLITE, PG_ONE, PG_TWO],
                sizes: vec![1_000, 5_000],
                windows: vec![(1.0, 10.0), (10.0, 6.0)],
            },
            // 5 000 events of ~1.6 KB (8 MB of log) replayed to each stalled stream: twice what
            // its socket's kernel buffers absorb, so every one of them waits on a write.
            resume: ResumePlan {
                stalled: 500,
                readers: 200,
                log_events: 5_000,
                pad: 460,
                rate: 20.0,
                secs: 10.0,
                settle_limit: Duration::from_secs(60),
                catch_up_limit: Duration::from_secs(180),
            },
        }
    }

    /// A small version of every scenario, for smoke checks (about three minutes).
    pub fn quick() -> Plan {
        Plan {
            quick: true,
            reps: 1,
            servers: vec![Kind::Tidings, Kind::Node, Kind::Axum],
            scenarios: Plan::all_scenarios(),
            sizes: vec![200, 1_000],
            fanout: FanoutPlan {
                idle: Duration::from_secs(1),
                windows: vec![(1.0, 3.0), (10.0, 2.0)],
            },
            ceiling_sizes: vec![500],
            ceiling: CeilingPlan {
                first_deliveries_per_sec: 25_000.0,
                factor: 2.0,
                step_secs: 1.5,
                max_steps: 4,
                limit_ms: 1_000.0,
            },
            // Too short to stall past the kernel's socket buffers: a smoke check only.
            slow: SlowPlan {
                streams: 200,
                rate: 100.0,
                secs: 3.0,
                control_secs: 2.0,
                pad: 460,
                broadcast_capacity: 32,
            },
            storm: StormPlan {
                streams: 500,
                rate: 20.0,
                before: Duration::from_secs(1),
                deadline: Duration::from_secs(20),
            },
            syscalls: (200, 10),
            writes: StoragePlan {
                tidings: storage_rows(),
                baseline_clients: 8,
                duration: Duration::from_secs(1),
            },
            cluster: ClusterPlan {
                topologies: vec![Topology::SQLITE, PG_ONE, PG_TWO],
                sizes: vec![200],
                windows: vec![(1.0, 2.0), (10.0, 2.0)],
            },
            // The same log (so the stalled streams really wait on their sockets), fewer streams.
            resume: ResumePlan {
                stalled: 50,
                readers: 50,
                log_events: 5_000,
                pad: 460,
                rate: 20.0,
                secs: 2.0,
                settle_limit: Duration::from_secs(30),
                catch_up_limit: Duration::from_secs(60),
            },
        }
    }

    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    /// Whether the PostgreSQL cluster is needed (`bench.sh` asks before starting one).
    pub fn needs_postgres(&self) -> bool {
        self.servers.contains(&Kind::Tidings) && (self.runs("writes") || self.runs("cluster"))
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// `uname -r`.
    pub kernel: String,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Open-file limit of this process.
    pub open_files: String,
}

impl Machine {
    /// Read the facts of this machine.
    pub fn detect() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let open_files = read("/proc/self/limits")
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default();
        Machine {
            // All CPUs of the machine, not only those this (pinned) process may use.
            nproc: cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
            cpu,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            open_files,
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    /// Where it ran.
    pub machine: Machine,
    /// The command that produced it.
    pub command: String,
    /// When it started (`date -u`).
    pub started: String,
    /// The commit measured.
    pub commit: String,
    /// Quick or full.
    pub quick: bool,
    /// Repetitions.
    pub reps: usize,
    /// CPU placement of servers and generator.
    pub pinning: String,
    /// Wall time of the run, s.
    pub elapsed_secs: f64,
    /// Servers measured.
    pub servers: Vec<Kind>,
    /// Scenarios 1 and 2.
    pub fanout: Vec<FanoutRun>,
    /// Scenario 3.
    pub ceiling: Vec<CeilingRun>,
    /// Scenario 4.
    pub slow: Vec<SlowRun>,
    /// Scenario 5.
    pub storm: Vec<StormRun>,
    /// `strace -c`.
    pub syscalls: Vec<SyscallRun>,
    /// Write capacity.
    pub writes: Vec<WriteCapacity>,
    /// Scale-out fan-out.
    pub cluster: Vec<ClusterRun>,
    /// Stalled resuming streams.
    pub resume: Vec<ResumeRun>,
    /// The PostgreSQL cluster used, if any.
    pub postgres: Option<PostgresInfo>,
    /// Scenarios this run was asked for.
    pub scenarios: Vec<String>,
    /// 1-minute load average when the run started and when it ended.
    pub load_average: (f64, f64),
    /// Runs that failed outright.
    pub failures: Vec<String>,
}

impl Results {
    /// Whether this run measured every scenario against every server.
    pub fn complete(&self) -> bool {
        let all = Plan::all_scenarios();
        all.iter().all(|s| self.scenarios.contains(s))
            && [Kind::Tidings, Kind::Node, Kind::Axum].iter().all(|k| self.servers.contains(k))
    }
}

fn save(results: &Results, path: &Path) -> io::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(results)?)
}

fn note<T>(results: &mut Results, what: &str, outcome: io::Result<T>) -> Option<T> {
    match outcome {
        Ok(value) => Some(value),
        Err(e) => {
            eprintln!("  FAILED {what}: {e}");
            results.failures.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Run `plan` with `bench`, saving to `out` as it goes.
pub async fn run(
    plan: &Plan,
    bench: &Bench,
    mut results: Results,
    out: &Path,
) -> io::Result<Results> {
    let started = Instant::now();
    results.quick = plan.quick;
    results.reps = plan.reps;
    results.servers = plan.servers.clone();
    results.scenarios = plan.scenarios.clone();
    results.load_average.0 = load_average();
    if plan.needs_postgres() {
        match &bench.postgres {
            Some(postgres) => {
                results.postgres = note(&mut results, "PostgreSQL settings", postgres.info())
            }
            None => eprintln!("no PostgreSQL cluster: its rows will be reported as failed"),
        }
    }
    let scratch: PathBuf = out.parent().unwrap_or(Path::new(".")).to_path_buf();

    if plan.runs("syscalls") {
        for &kind in &plan.servers {
            eprintln!("syscalls: {} ...", kind.name());
            let (streams, events) = plan.syscalls;
            let outcome = scenarios::write_syscalls(bench, kind, streams, events, &scratch).await;
            if let Some(s) = note(&mut results, &format!("syscalls {}", kind.name()), outcome) {
                eprintln!("  {:.2} write calls per delivery {:?}", s.writes_per_delivery, s.writes);
                results.syscalls.push(s);
            }
        }
        save(&results, out)?;
    }
    for rep in 0..plan.reps {
        if plan.runs("writes") {
            writes(plan, bench, &mut results, rep).await;
            save(&results, out)?;
        }
        if plan.runs("cluster") && plan.servers.contains(&Kind::Tidings) {
            for &streams in &plan.cluster.sizes {
                for &topology in &plan.cluster.topologies {
                    eprintln!(
                        "cluster: {streams} streams, {} (rep {}) ...",
                        topology.name(),
                        rep + 1
                    );
                    let outcome =
                        cluster::fanout(bench, topology, streams, &plan.cluster.windows).await;
                    let what = format!("cluster {} {streams} rep {}", topology.name(), rep + 1);
                    if let Some(mut r) = note(&mut results, &what, outcome) {
                        r.rep = rep;
                        eprintln!("  connected {}/{streams}", r.connected);
                        for w in &r.windows {
                            let parts = w
                                .cpu_parts
                                .iter()
                                .map(|p| format!("{} {:.1} µs ({:.0}%)", p.name, p.us_each, p.pct))
                                .collect::<Vec<_>>()
                                .join(", ");
                            eprintln!(
                                "  {}/s: completion p99 {:.1} ms, lost {} ooo {} broken {}, {:.1} µs/delivery [{parts}], generator {:.0}%, others {:.0}%",
                                w.rate, w.completion_p99_ms, w.lost, w.out_of_order, w.broken, w.cpu_us_per_delivery, w.generator_cpu_pct, w.other_cpu_pct
                            );
                        }
                        results.cluster.push(r);
                    }
                    save(&results, out)?;
                }
            }
        }
        if plan.runs("resume") && plan.servers.contains(&Kind::Tidings) {
            eprintln!(
                "resume: {} stalled streams from id 1 (rep {}) ...",
                plan.resume.stalled,
                rep + 1
            );
            let outcome = resume::stalled_resumes(bench, &plan.resume).await;
            if let Some(mut r) = note(&mut results, &format!("resume rep {}", rep + 1), outcome) {
                r.rep = rep;
                eprintln!(
                    "  {:.0} B/event; RSS {} -> {} -> {} KiB (peak {}), {:.1} KiB per stalled stream ({:.1} second half), settled {} after {:.1} s; kernel TCP {} -> {} KiB; readers p99 {:.1} -> {:.1} ms, lost {}/{}; stalled caught up {}/{} in {:.1} s, lost {} ooo {}; RSS after release {} KiB",
                    r.data_bytes_per_event, r.rss_before_kib, r.rss_half_kib, r.rss_stalled_kib, r.rss_peak_kib, r.rss_per_stalled_kib, r.rss_marginal_kib, r.settled, r.settle_secs,
                    r.kernel_tcp_before_kib, r.kernel_tcp_stalled_kib, r.control.p99_ms, r.with_stalled.p99_ms, r.control.lost, r.with_stalled.lost,
                    r.caught_up, r.stalled_connected, r.catch_up_secs, r.stalled_lost, r.stalled_out_of_order, r.rss_released_kib
                );
                results.resume.push(r);
            }
            save(&results, out)?;
        }
        if plan.runs("fanout") {
            for &streams in &plan.sizes {
                // Servers interleaved within a repetition, so drift on the shared machine
                // spreads over all of them.
                for &kind in &plan.servers {
                    eprintln!("fanout: {} streams, {} (rep {}) ...", streams, kind.name(), rep + 1);
                    let outcome =
                        scenarios::capacity_and_fanout(bench, kind, streams, &plan.fanout).await;
                    let what = format!("fanout {} {streams} rep {}", kind.name(), rep + 1);
                    if let Some(mut r) = note(&mut results, &what, outcome) {
                        r.rep = rep;
                        eprintln!(
                            "  connected {}/{} p99 {:.1} ms, {:.1} KiB/stream, idle {:.2}% CPU",
                            r.connected,
                            streams,
                            r.connect_p99_ms,
                            r.rss_per_stream_kib,
                            r.idle_cpu_pct
                        );
                        for w in &r.windows {
                            eprintln!(
                                "  {}/s: p50 {:.1} p99 {:.1} max {:.1} ms, completion p99 {:.1} ms, lost {} ooo {} broken {}, {:.1} µs/delivery, CPU server {:.0}% generator {:.0}%",
                                w.rate, w.p50_ms, w.p99_ms, w.max_ms, w.completion_p99_ms, w.lost, w.out_of_order, w.broken, w.cpu_us_per_delivery, w.server_cpu_pct, w.generator_cpu_pct
                            );
                        }
                        results.fanout.push(r);
                    }
                    save(&results, out)?;
                }
            }
        }
        if plan.runs("ceiling") {
            for &streams in &plan.ceiling_sizes {
                for &kind in &plan.servers {
                    eprintln!(
                        "ceiling: {} streams, {} (rep {}) ...",
                        streams,
                        kind.name(),
                        rep + 1
                    );
                    let outcome = scenarios::ceiling(bench, kind, streams, &plan.ceiling).await;
                    let what = format!("ceiling {} {streams} rep {}", kind.name(), rep + 1);
                    if let Some(mut r) = note(&mut results, &what, outcome) {
                        r.rep = rep;
                        for s in &r.steps {
                            eprintln!(
                                "  {:.1}/s: {:.0} deliveries/s, completion p99 {:.0} ms, {:.1} µs/delivery, lost {} ooo {}, CPU server {:.0}% generator {:.0}%",
                                s.rate, s.deliveries_per_sec, s.completion_p99_ms, s.cpu_us_per_delivery, s.lost, s.out_of_order, s.server_cpu_pct, s.generator_cpu_pct
                            );
                        }
                        eprintln!("  stopped: {}", r.stopped);
                        results.ceiling.push(r);
                    }
                    save(&results, out)?;
                }
            }
        }
        if plan.runs("slow") {
            for &kind in &plan.servers {
                eprintln!("slow: {} (rep {}) ...", kind.name(), rep + 1);
                let outcome = scenarios::slow_consumers(bench, kind, &plan.slow).await;
                let what = format!("slow {} rep {}", kind.name(), rep + 1);
                if let Some(mut r) = note(&mut results, &what, outcome) {
                    r.rep = rep;
                    eprintln!(
                        "  p99 {:.1} -> {:.1} ms ({:+.1}%), RSS {} -> {} KiB, healthy lost {}, slow lost {} ooo {} caught up {}/{}",
                        r.control.p99_ms, r.with_slow.p99_ms, r.p99_change_pct, r.control_rss_kib, r.stalled_rss_kib,
                        r.with_slow.lost, r.slow_lost, r.slow_out_of_order, r.slow_caught_up, r.slow
                    );
                    results.slow.push(r);
                }
                save(&results, out)?;
            }
        }
        if plan.runs("storm") {
            // Only servers with an event log can resume; the others are marked in the report.
            for &kind in plan.servers.iter().filter(|k| k.resumes()) {
                eprintln!("storm: {} (rep {}) ...", kind.name(), rep + 1);
                let outcome = scenarios::storm(bench, kind, &plan.storm).await;
                let what = format!("storm {} rep {}", kind.name(), rep + 1);
                if let Some(mut r) = note(&mut results, &what, outcome) {
                    r.rep = rep;
                    eprintln!(
                        "  {}/{} reconnected, all caught up after {:.0} ms (p99 {:.0}), lost {} ooo {} broken {}, {} retries (first error: {:?})",
                        r.reconnected, r.connected, r.all_caught_ms, r.caught_p99_ms, r.lost, r.out_of_order, r.broken, r.retries, r.error
                    );
                    results.storm.push(r);
                }
                save(&results, out)?;
            }
        }
    }
    results.elapsed_secs = started.elapsed().as_secs_f64();
    results.load_average.1 = load_average();
    save(&results, out)?;
    Ok(results)
}

/// One repetition of the write-capacity rows.
async fn writes(plan: &Plan, bench: &Bench, results: &mut Results, rep: usize) {
    let mut rows: Vec<(Kind, Option<Topology>, usize)> = Vec::new();
    if plan.servers.contains(&Kind::Tidings) {
        rows.extend(plan.writes.tidings.iter().map(|&(t, c)| (Kind::Tidings, Some(t), c)));
    }
    rows.extend(
        plan.servers
            .iter()
            .filter(|&&k| k != Kind::Tidings)
            .map(|&k| (k, None, plan.writes.baseline_clients)),
    );
    for (kind, topology, clients) in rows {
        let name = topology.map_or_else(|| kind.name().to_owned(), Topology::name);
        eprintln!("writes: {name}, {clients} clients (rep {}) ...", rep + 1);
        let outcome =
            storage::write_capacity(bench, kind, topology, clients, plan.writes.duration).await;
        let what = format!("writes {name} {clients} clients rep {}", rep + 1);
        if let Some(mut w) = note(results, &what, outcome) {
            w.rep = rep;
            let parts = w
                .cpu_parts
                .iter()
                .map(|p| format!("{} {:.0} µs", p.name, p.us_each))
                .collect::<Vec<_>>()
                .join(", ");
            eprintln!(
                "  {:.0} POST/s, p50 {:.2} p99 {:.2} ms, {:.0} µs CPU per POST [{parts}], {} failed{}",
                w.per_sec,
                w.p50_ms,
                w.p99_ms,
                w.cpu_us_per_post,
                w.failed,
                w.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            results.writes.push(w);
        }
    }
}
