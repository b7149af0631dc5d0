//! Sections 6 and 7: fan-out over two processes on one PostgreSQL, and `POST`s per second on
//! each storage set-up (issue 10).

use std::fmt::Write as _;

use super::{fmt, med, sizes, sum, SETTINGS_NOTE};
use crate::deployment::{Backend, Topology};
use crate::scenarios::cluster::ClusterRun;
use crate::scenarios::storage::WriteCapacity;
use crate::scenarios::WindowResult;
use crate::server::Kind;
use crate::suite::Results;

/// The write-capacity rows of `kind` (tidings as `topology`) with `clients` clients.
pub(super) fn writes(
    results: &Results,
    kind: Kind,
    topology: Option<Topology>,
    clients: usize,
) -> Vec<&WriteCapacity> {
    results
        .writes
        .iter()
        .filter(|w| w.kind == Some(kind) && w.connections == clients)
        .filter(|w| kind != Kind::Tidings || w.topology == topology)
        .collect()
}

fn cluster_runs(results: &Results, topology: Topology, streams: usize) -> Vec<&ClusterRun> {
    results
        .cluster
        .iter()
        .filter(|r| r.topology == Some(topology) && r.streams == streams)
        .collect()
}

fn topologies<T>(items: &[T], topology: impl Fn(&T) -> Option<Topology>) -> Vec<Topology> {
    let mut seen: Vec<Topology> = Vec::new();
    for t in items.iter().filter_map(topology) {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen
}

/// Lost and duplicated deliveries over every scale-out window.
pub(super) fn lost(results: &Results) -> u64 {
    results.cluster.iter().flat_map(|r| &r.windows).map(|w| w.lost + w.out_of_order).sum()
}

/// What the report says about the PostgreSQL cluster, next to every PostgreSQL figure.
fn postgres_note(results: &Results) -> String {
    match &results.postgres {
        Some(info) => format!(
            "{} with {} ({})",
            info.version,
            info.describe(),
            if info.durable() {
                "durable: every commit is flushed to disk before it is acknowledged, as \
                 SQLite's `synchronous=FULL`"
            } else {
                "**not durable**: commits are acknowledged before they reach the disk, so \
                 these figures are not comparable with SQLite's"
            }
        ),
        None => "PostgreSQL (settings not recorded)".into(),
    }
}

/// The server side's CPU, part by part, `a / b / c`.
fn parts(windows: &[&WindowResult], f: fn(&crate::scenarios::CpuPart) -> f64) -> String {
    let Some(first) = windows.first() else { return "–".into() };
    (0..first.cpu_parts.len())
        .map(|i| fmt(med(windows, |w| w.cpu_parts.get(i).map_or(f64::NAN, f)), 1))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn part_names(windows: &[&WindowResult]) -> String {
    windows.first().map_or_else(String::new, |w| {
        w.cpu_parts.iter().map(|p| p.name.clone()).collect::<Vec<_>>().join(" / ")
    })
}

/// Section 6.
pub(super) fn cluster(md: &mut String, results: &Results) {
    if results.cluster.is_empty() {
        return;
    }
    let _ = writeln!(md, "## 6. Scale-out: two processes on one PostgreSQL (issue 10)\n");
    let _ = writeln!(
        md,
        "The streams are split evenly over two tidings processes sharing one PostgreSQL \
         database; events are published through process A, so the deliveries of B's half \
         come through B's tailer (`NOTIFY`, then a read of the log). Beside it the same streams \
         and rates on one process on SQLite (what every other section runs) and on one process \
         on PostgreSQL, which separates the cost of the backend from the cost of crossing \
         processes. Every delivery on every stream of both processes is checked for loss, \
         duplicates and order (ids are global). PostgreSQL: {}. {SETTINGS_NOTE}.\n",
        postgres_note(results)
    );
    let _ = writeln!(
        md,
        "**Placement.** {}. With 2 cores the server side's three processes (both tidings \
         processes and PostgreSQL with all its backends, started under the same `taskset`) \
         cannot be given a core each: they share the server's CPU, as the single process does \
         in the SQLite rows, and the generator has the other one. Each part's CPU is read \
         apart from `/proc` (every thread's `schedstat`; for PostgreSQL the postmaster and all \
         its children, with `cutime`/`cstime` of those that exited). CPU per delivery is the \
         whole server side's CPU over the window (POST handling, the commit, both tailers \
         included) divided by the deliveries; the part columns split it. *Others* is the CPU \
         that processes outside the benchmark used during the window (machine busy time from \
         `/proc/stat` minus the server side's and the generator's): where it is high, other \
         work on the machine disturbed the figures.\n",
        results.pinning
    );
    let _ = writeln!(
        md,
        "| streams | events/s | set-up | completion p99 ms | delivery p99 ms | lost / dup | CPU µs/delivery | by part µs | by part % of a core | generator % | others % |"
    );
    let _ =
        writeln!(md, "| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |");
    let rates = results.cluster.iter().map(|r| r.windows.len()).max().unwrap_or(0);
    let sets = topologies(&results.cluster, |r| r.topology);
    for streams in sizes(&results.cluster, |r| r.streams) {
        for i in 0..rates {
            for &topology in &sets {
                let runs = cluster_runs(results, topology, streams);
                let w: Vec<&WindowResult> = runs.iter().filter_map(|r| r.windows.get(i)).collect();
                if w.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {streams} | {} | {} | {} | {} | {} / {} | {} | {} ({}) | {} | {} | {} |",
                    w[0].rate,
                    topology.name(),
                    fmt(med(&w, |w| w.completion_p99_ms), 1),
                    fmt(med(&w, |w| w.p99_ms), 1),
                    sum(&w, |w| w.lost),
                    sum(&w, |w| w.out_of_order),
                    fmt(med(&w, |w| w.cpu_us_per_delivery), 1),
                    parts(&w, |p| p.us_each),
                    part_names(&w),
                    parts(&w, |p| p.pct),
                    fmt(med(&w, |w| w.generator_cpu_pct), 0),
                    fmt(med(&w, |w| w.other_cpu_pct), 0),
                );
            }
        }
    }
    let failed: u64 = results.cluster.iter().map(|r| r.connect_failed).sum();
    let broken: u64 = results.cluster.iter().flat_map(|r| &r.windows).map(|w| w.broken).sum();
    let _ = writeln!(
        md,
        "\n{} streams failed to connect and {broken} ended or got `resync` over all scale-out \
         runs.\n",
        failed
    );
    let one = Topology::SQLITE;
    let two = Topology { backend: Backend::Postgres, processes: 2 };
    let mut lines = Vec::new();
    for streams in sizes(&results.cluster, |r| r.streams) {
        for i in 0..rates {
            let pick = |t: Topology| -> Vec<&WindowResult> {
                cluster_runs(results, t, streams).iter().filter_map(|r| r.windows.get(i)).collect()
            };
            let (a, b) = (pick(one), pick(two));
            let (Some(ca), Some(cb)) =
                (med(&a, |w| w.cpu_us_per_delivery), med(&b, |w| w.cpu_us_per_delivery))
            else {
                continue;
            };
            let (pa, pb) = (med(&a, |w| w.completion_p99_ms), med(&b, |w| w.completion_p99_ms));
            lines.push(format!(
                "{streams} streams at {}/s: {:.1} → {:.1} µs per delivery ({:.2}×), completion \
                 p99 {} → {} ms",
                a.first().map_or(0.0, |w| w.rate),
                ca,
                cb,
                cb / ca,
                fmt(pa, 1),
                fmt(pb, 1)
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            md,
            "From one process on SQLite to two on PostgreSQL (all server-side CPU counted, on \
             the same one core): {}.\n",
            lines.join("; ")
        );
    }
}

/// Section 7.
pub(super) fn storage(md: &mut String, results: &Results) {
    if results.writes.is_empty() {
        return;
    }
    let _ = writeln!(md, "## 7. Storage: `POST`s per second on SQLite and PostgreSQL (issue 10)\n");
    let _ = writeln!(
        md,
        "Clients `POST` todos back to back with no stream open, spread evenly over the \
         processes; short titles, and the writes go to 16 lists in turn (a create counts the \
         todos of its list, for the per-list limit, so one list growing by thousands would \
         measure that count instead). Every tidings process has one writer connection, fed by \
         its writer thread. SQLite: `synchronous=FULL`. PostgreSQL: {}. On PostgreSQL every \
         write first takes one transaction-scoped advisory lock (so ids follow commit order \
         across processes) and holds it until its commit has returned: through one process \
         the lock is never contended (the writer thread already serialises), through two the \
         two writer connections take turns on it. Same placement as section 6 ({}). CPU per \
         `POST` is the whole server side's, split by part as in section 6.\n",
        postgres_note(results),
        results.pinning
    );
    let _ = writeln!(
        md,
        "| set-up | clients | POST/s | p50 ms | p99 ms | CPU µs/POST | by part µs | failed | others % |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
    let mut rows: Vec<(Kind, Option<Topology>, usize)> = Vec::new();
    for w in &results.writes {
        let Some(kind) = w.kind else { continue };
        let key = (kind, if kind == Kind::Tidings { w.topology } else { None }, w.connections);
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for &(kind, topology, clients) in &rows {
        let runs = writes(results, kind, topology, clients);
        let name = match topology {
            Some(t) if kind == Kind::Tidings => format!("tidings, {}", t.name()),
            _ => format!("{} (in memory)", kind.name()),
        };
        let names = runs.first().map_or_else(String::new, |w| {
            w.cpu_parts.iter().map(|p| p.name.clone()).collect::<Vec<_>>().join(" / ")
        });
        let by_part = runs.first().map_or_else(String::new, |first| {
            (0..first.cpu_parts.len())
                .map(|i| fmt(med(&runs, |w| w.cpu_parts.get(i).map_or(f64::NAN, |p| p.us_each)), 0))
                .collect::<Vec<_>>()
                .join(" / ")
        });
        let _ = writeln!(
            md,
            "| {name} | {clients} | {} | {} | {} | {} | {by_part} ({names}) | {} | {} |",
            fmt(med(&runs, |w| w.per_sec), 0),
            fmt(med(&runs, |w| w.p50_ms), 2),
            fmt(med(&runs, |w| w.p99_ms), 2),
            fmt(med(&runs, |w| w.cpu_us_per_post), 0),
            sum(&runs, |w| w.failed),
            fmt(med(&runs, |w| w.other_cpu_pct), 0),
        );
    }
    let per_sec = |t: Topology, clients: usize| {
        med(&writes(results, Kind::Tidings, Some(t), clients), |w| w.per_sec)
    };
    let pg1 = Topology { backend: Backend::Postgres, processes: 1 };
    let pg2 = Topology { backend: Backend::Postgres, processes: 2 };
    let mut lines = Vec::new();
    if let (Some(s), Some(p)) = (per_sec(Topology::SQLITE, 8), per_sec(pg1, 8)) {
        lines.push(format!(
            "PostgreSQL through one process reaches {:.2}× SQLite's writes/s (8 clients)",
            p / s
        ));
    }
    if let (Some(one), Some(two)) = (per_sec(pg1, 8), per_sec(pg2, 8)) {
        lines.push(format!(
            "the same 8 clients through two processes reach {:.2}× of one process: what two \
             writer connections taking turns on the advisory lock cost (or gain) in writes/s",
            two / one
        ));
    }
    if let (Some(one), Some(two)) = (per_sec(pg1, 1), per_sec(pg2, 2)) {
        lines.push(format!(
            "one client per process: {one:.0}/s with one process, {two:.0}/s with two ({:.2}×)",
            two / one
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(md, "\n{}.\n", lines.join("; "));
    } else {
        md.push('\n');
    }
}
