//! `tidings-load`: the load benchmark's one binary.
//!
//! ```text
//! tidings-load suite  RESULTS.json    run the plan (BENCH_* env) and save the results
//! tidings-load report RESULTS.json BENCHMARKS.md CHART.svg
//! tidings-load drive ADDR STREAMS RATE SECS   load a server started by hand (profiling)
//! tidings-load needs-postgres         exit 0 if the plan (BENCH_* env) needs PostgreSQL
//! tidings-load fair-reads SECS SHARES…  one client's large reads against another's small ones
//! tidings-load presence SECS STREAMS CHURN   what presence costs: idle streams counted or not,
//!                                     and CHURN joins a second on one list
//! tidings-load worker CONFIG-JSON     (internal) hold streams for the coordinator
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tidings_load::postgres::Postgres;
use tidings_load::scenarios::{self, Bench};
use tidings_load::server::{repo_root, Programs};
use tidings_load::suite::{self, Machine, Plan, Results};
use tidings_load::{report, worker};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("worker") if args.len() == 2 => {
            serde_json::from_str(&args[1]).map_err(std::io::Error::other).and_then(worker::run)
        }
        Some("suite") if args.len() == 2 => run_suite(PathBuf::from(&args[1])),
        Some("needs-postgres") if args.len() == 1 => {
            return if Plan::from_env().needs_postgres() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        Some("drive") if args.len() == 5 => drive(&args[1..]),
        Some("fair-reads") if args.len() >= 3 => fair_reads(&args[1..]),
        Some("presence") if args.len() == 4 => presence(&args[1..]),
        Some("report") if args.len() == 4 => report::write(
            &PathBuf::from(&args[1]),
            &PathBuf::from(&args[2]),
            &PathBuf::from(&args[3]),
        ),
        _ => {
            eprintln!(
                "usage: tidings-load suite RESULTS.json | report RESULTS.json BENCHMARKS.md CHART.svg \\
                 | drive ADDR STREAMS RATE SECS | fair-reads SECS SHARES... \
                 | presence SECS STREAMS CHURN | needs-postgres"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `fair-reads SECS SHARES…`: one run per `TIDINGS_MAX_READS_PER_CLIENT` value, a Markdown
/// table on stdout.
fn fair_reads(args: &[String]) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::other(format!("bad {what}"));
    let secs = args[0].parse().map_err(|_| bad("seconds"))?;
    let shares: Vec<usize> = args[1..]
        .iter()
        .map(|s| s.parse().map_err(|_| bad("share count")))
        .collect::<Result<_, _>>()?;
    let scratch = std::env::temp_dir().join(format!("tidings-load-{}", std::process::id()));
    let bench = bench(scratch, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!("| reads per client | large snapshots/s | small reads | small p50 | small p99 | small max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for share in shares {
        let r = runtime.block_on(scenarios::fairness::fair_reads(&bench, share, secs))?;
        println!(
            "| {} | {:.1} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.reads_per_client,
            r.big_per_sec,
            r.small_reads,
            r.small_p50_ms,
            r.small_p99_ms,
            r.small_max_ms
        );
    }
    Ok(())
}

/// `presence SECS STREAMS CHURN`: one run, a Markdown table on stdout.
fn presence(args: &[String]) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::other(format!("bad {what}"));
    let secs = args[0].parse().map_err(|_| bad("seconds"))?;
    let streams = args[1].parse().map_err(|_| bad("stream count"))?;
    let churn: f64 = args[2].parse().map_err(|_| bad("churn rate"))?;
    if !(churn > 0.0 && churn <= 1000.0) {
        return Err(bad("churn rate (0 < CHURN <= 1000)"));
    }
    let scratch = std::env::temp_dir().join(format!("tidings-load-{}", std::process::id()));
    let bench = bench(scratch, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let r = runtime.block_on(scenarios::presence::presence_cost(&bench, streams, churn, secs))?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| {} idle streams, {} s each | server CPU | server RSS |", r.streams, r.secs);
    println!("| --- | --- | --- |");
    println!(
        "| following every list (not counted) | {:.1} % | {:.1} MiB |",
        r.unfiltered_cpu_pct,
        mib(r.unfiltered_rss_kib)
    );
    println!(
        "| following every list, {:.0} such streams opened and closed a second | {:.1} % | |",
        r.churn_per_sec, r.unfiltered_churn_cpu_pct
    );
    println!(
        "| each on a list of its own | {:.1} % | {:.1} MiB |",
        r.own_list_cpu_pct,
        mib(r.own_list_rss_kib)
    );
    println!(
        "| all on one list | {:.1} % | {:.1} MiB |",
        r.one_list_cpu_pct,
        mib(r.one_list_rss_kib)
    );
    println!(
        "| all on one list, {:.0} joins and leaves a second | {:.1} % | {:.2} presence messages/s to each |",
        r.churn_per_sec, r.churn_cpu_pct, r.presence_per_sec
    );
    Ok(())
}

/// The programs and pinning of a run (`BENCH_*` and `CARGO_TARGET_DIR`), databases in
/// `scratch`.
fn bench(scratch: PathBuf, postgres: Option<Arc<Postgres>>) -> std::io::Result<Bench> {
    let root = repo_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    std::fs::create_dir_all(&scratch)?;
    let programs = Programs {
        tidings: target.join("release/tidings-server"),
        axum: target.join("release/tidings-baseline-axum"),
        node_script: root.join("tests/load/baselines/node/server.mjs"),
        scratch,
    };
    let pinned = std::env::var("BENCH_PIN").map_or(true, |v| v != "0");
    Ok(Bench {
        programs,
        server_cpus: pinned
            .then(|| std::env::var("BENCH_SERVER_CPUS").unwrap_or_else(|_| "1".into())),
        per_worker: env_or("BENCH_PER_WORKER", 5_000),
        connect_concurrency: env_or("BENCH_CONNECT_CONCURRENCY", 64),
        await_deadline: Duration::from_secs(env_or("BENCH_AWAIT_SECS", 30)),
        postgres,
    })
}

fn run_suite(out: PathBuf) -> std::io::Result<()> {
    let scratch = out.parent().map_or_else(|| PathBuf::from("."), PathBuf::from).join("scratch");
    let bench = bench(scratch, Postgres::from_env()?.map(Arc::new))?;
    let plan = Plan::from_env();
    let results = Results {
        machine: Machine::detect(),
        command: std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "tests/load/bench.sh".into()),
        started: std::env::var("BENCH_STARTED").unwrap_or_default(),
        commit: std::env::var("BENCH_COMMIT").unwrap_or_default(),
        pinning: match &bench.server_cpus {
            Some(cpus) => format!(
                "server pinned to CPU {cpus} (`taskset -c {cpus}`), generator to the other CPU"
            ),
            None => "not pinned: server and generator share both CPUs".into(),
        },
        ..Results::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(suite::run(&plan, &bench, results, &out)).map(drop)
}

fn drive(args: &[String]) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::other(format!("bad {what}"));
    let server = args[0].parse().map_err(|_| bad("address"))?;
    let streams = args[1].parse().map_err(|_| bad("stream count"))?;
    let rate = args[2].parse().map_err(|_| bad("rate"))?;
    let secs = args[3].parse().map_err(|_| bad("seconds"))?;
    let concurrency = env_or("BENCH_CONNECT_CONCURRENCY", 64);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (connected, window) =
        runtime.block_on(scenarios::drive(server, streams, rate, secs, concurrency))?;
    println!("connected {connected}\n{}", serde_json::to_string_pretty(&window)?);
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
