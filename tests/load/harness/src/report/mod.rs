//! `BENCHMARKS.md` and the SVG chart, from a results file: medians over repetitions, tidings
//! beside each baseline as ratios from the same run, the targets of issue 5, and findings.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

mod chart;
mod merge;
mod resume;
mod scaleout;

use crate::deployment::Topology;
use crate::scenarios::{CeilingRun, FanoutRun, SlowRun, StormRun, WindowResult};
use crate::server::Kind;
use crate::stats::median;
use crate::suite::Results;

/// Write the report and the chart from the results file at `results`.
///
/// A run that measured everything (or a quick run) rewrites both. A narrowed run
/// (`BENCH_SCENARIOS`, `BENCH_SERVERS`) into an existing report replaces only the sections it
/// measured in full, each marked with the command, commit and time that produced it, and
/// keeps every other section (and the chart, unless it measured the fan-out) as it was.
pub fn write(results: &Path, markdown: &Path, chart: &Path) -> io::Result<()> {
    let results: Results = serde_json::from_slice(&std::fs::read(results)?)?;
    let chart_name = chart
        .strip_prefix(markdown.parent().unwrap_or(Path::new("")))
        .unwrap_or(chart)
        .display()
        .to_string();
    let fresh = render(&results, &chart_name);
    let existing = std::fs::read_to_string(markdown).ok();
    let (text, redraw) = match existing {
        Some(old) if !results.complete() && !results.quick => {
            (merge::merge(&old, &fresh, &results), merge::regenerates(&results, "fanout", true))
        }
        _ => (fresh, true),
    };
    std::fs::write(markdown, text)?;
    if redraw {
        chart::draw_chart(&results, chart).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// How tidings was configured, for the sections that need it said.
const SETTINGS_NOTE: &str = "tidings runs with its defaults (the probe, an SSE comment to \
    every stream every 5 s, included) except `TIDINGS_MAX_STREAMS=19900`, \
    `TIDINGS_MAX_STREAMS_PER_CLIENT=19900` (the generator opens 2 500 streams per loopback \
    address) and `TIDINGS_MAX_TODOS_PER_LIST=1000000` (runs publish thousands of todos into \
    one list)";

/// Median of `f` over the runs, formatted with `decimals`, or `–`.
fn med<T>(runs: &[&T], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(&runs.iter().map(|r| Some(f(r))).collect::<Vec<_>>())
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

fn sum<T>(runs: &[&T], f: impl Fn(&T) -> u64) -> u64 {
    runs.iter().map(|r| f(r)).sum()
}

/// `baseline / tidings` for lower-is-better metrics, as "N.N×".
fn ratio(tidings: Option<f64>, baseline: Option<f64>, higher_is_better: bool) -> String {
    match (tidings, baseline) {
        (Some(t), Some(b)) if t > 0.0 && b > 0.0 => {
            let r = if higher_is_better { t / b } else { b / t };
            format!("{r:.2}×")
        }
        _ => "–".into(),
    }
}

fn fanout_runs(results: &Results, kind: Kind, streams: usize) -> Vec<&FanoutRun> {
    results.fanout.iter().filter(|r| r.kind == Some(kind) && r.streams == streams).collect()
}

fn windows<'a>(runs: &[&'a FanoutRun], index: usize) -> Vec<&'a WindowResult> {
    runs.iter().filter_map(|r| r.windows.get(index)).collect()
}

fn sizes<T>(runs: &[T], size: impl Fn(&T) -> usize) -> Vec<usize> {
    let mut s: Vec<usize> = runs.iter().map(size).collect();
    s.sort_unstable();
    s.dedup();
    s
}

fn baselines(results: &Results) -> Vec<Kind> {
    results.servers.iter().copied().filter(|&k| k != Kind::Tidings).collect()
}

/// The whole markdown document.
pub fn render(results: &Results, chart: &str) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{}` from its own measurements; do not edit by hand (the harness and how it \
         measures: [`tests/load/README.md`](tests/load/README.md)).\n",
        results.command
    );
    let _ = writeln!(
        md,
        "**These figures come from a 2-core virtual machine** that the server and the load \
         generator share (see *placement*), so they carry noise; every figure is the median of \
         {} repetition(s), and every ratio compares runs of the same invocation. \
         Run the command below to reproduce them.{}\n",
        results.reps,
        if results.quick {
            " **This is a quick smoke run (`BENCH_QUICK=1`): small sizes, one repetition; not \
             the benchmark.**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "| machine | |\n| --- | --- |");
    let _ = writeln!(md, "| CPUs (`nproc`) | {} |", m.nproc);
    let _ = writeln!(md, "| CPU model | {} |", m.cpu);
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let _ = writeln!(md, "| memory | {:.0} GiB |", m.memory_gib);
    let _ = writeln!(md, "| open files (soft / hard) | {} |", m.open_files);
    let _ = writeln!(md, "| placement | {} |", results.pinning);
    let _ = writeln!(md, "| command | `{}` |", results.command);
    let _ = writeln!(md, "| started | {} |", results.started);
    let _ = writeln!(md, "| commit | {} |", results.commit);
    let _ = writeln!(md, "| wall time | {:.0} s |\n", results.elapsed_secs);

    targets(&mut md, results);
    capacity(&mut md, results);
    fanout(&mut md, results, chart);
    ceiling(&mut md, results);
    slow(&mut md, results);
    resume::section(&mut md, results);
    storm(&mut md, results);
    syscalls(&mut md, results);
    scaleout::cluster(&mut md, results);
    scaleout::storage(&mut md, results);
    findings(&mut md, results);
    if !results.failures.is_empty() {
        let _ = writeln!(md, "## Runs that failed\n");
        for f in &results.failures {
            let _ = writeln!(md, "- {f}");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Baselines\n");
    let _ = writeln!(
        md,
        "Both baselines live under `tests/load/baselines/`, are driven by the same generator in \
         the same run, and are deliberately what people write from tutorials, kept minimal but \
         fair (same wire shape, same `connected` first message, same 15 s heartbeat, same \
         broadcast capacity as tidings where they have one):\n\n\
         - **node**: `node:http`, a `Set` of response objects, `JSON.stringify` per client per \
         event, one `setInterval` heartbeat.\n\
         - **axum**: axum 0.8 `Sse` + `tokio::sync::broadcast`, an `Event` built per client, \
         `KeepAlive` every 15 s.\n\n\
         Neither has a durable event log: `Last-Event-ID` is ignored (scenario 5 is marked \
         *not supported* for them), a POST costs no fsync (tidings commits each change to \
         SQLite with `synchronous=FULL` before publishing it), and a client that falls behind \
         is either buffered without limit (node) or silently skips events (axum).\n"
    );
    md
}

fn targets(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## Targets (issues 5, 9 and 10)\n");
    let _ = writeln!(md, "| target | measured (tidings) | met |\n| --- | --- | --- |");
    let mut row = |target: &str, measured: String, met: Option<bool>| {
        let mark = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(md, "| {target} | {measured} | {mark} |");
    };
    let top = sizes(&results.fanout, |r| r.streams).into_iter().max().unwrap_or(0);
    let runs = fanout_runs(results, Kind::Tidings, top);
    let connected = med(&runs, |r| r.connected as f64);
    let failed = sum(&runs, |r| r.connect_failed);
    row(
        &format!("{top} concurrent streams in one process, zero errors"),
        format!("{} connected (median), {failed} failed", fmt(connected, 0)),
        (!runs.is_empty() && top >= 19_000).then_some(failed == 0),
    );
    let connect = med(&runs, |r| r.connect_p99_ms);
    row(
        "connect p99 ≤ 50 ms",
        format!("{} ms at {top}", fmt(connect, 1)),
        connect.map(|c| c <= 50.0),
    );
    let rss = med(&runs, |r| r.rss_per_stream_kib);
    row(
        "≤ 16 KiB RSS per idle stream",
        format!("{} KiB at {top}", fmt(rss, 1)),
        rss.map(|r| r <= 16.0),
    );
    let ceiling: Vec<&CeilingRun> =
        results.ceiling.iter().filter(|r| r.kind == Some(Kind::Tidings)).collect();
    for streams in sizes(&ceiling, |r| r.streams) {
        let runs: Vec<&CeilingRun> =
            ceiling.iter().copied().filter(|r| r.streams == streams).collect();
        let cpu = med(&runs, |r| r.best.as_ref().map_or(f64::NAN, |b| b.cpu_us_per_delivery))
            .filter(|v| v.is_finite());
        row(
            &format!("≤ 12 µs server CPU per delivery (ceiling, {streams} streams)"),
            format!("{} µs", fmt(cpu, 1)),
            cpu.map(|c| c <= 12.0),
        );
    }
    let writes = results.syscalls.iter().find(|s| s.kind == Some(Kind::Tidings));
    row(
        "one write per event per client (`strace -c`)",
        writes.map_or("–".into(), |s| {
            format!("{:.2} write calls per delivery", s.writes_per_delivery)
        }),
        writes.map(|s| s.writes_per_delivery < 1.1),
    );
    for (streams, limit) in [(1_000, 25.0), (10_000, 200.0), (19_000, 400.0)] {
        let runs = fanout_runs(results, Kind::Tidings, streams);
        for (i, rate) in [(0usize, "1"), (1, "10")] {
            let w = windows(&runs, i);
            let p99 = med(&w, |w| w.completion_p99_ms);
            row(
                &format!(
                    "fan-out completion p99 ≤ {limit} ms at {streams} streams, {rate} event/s"
                ),
                format!("{} ms", fmt(p99, 1)),
                p99.map(|p| p <= limit),
            );
        }
    }
    let lost: u64 = results
        .fanout
        .iter()
        .filter(|r| r.kind == Some(Kind::Tidings))
        .flat_map(|r| &r.windows)
        .map(|w| w.lost + w.out_of_order)
        .sum::<u64>()
        + results
            .ceiling
            .iter()
            .filter(|r| r.kind == Some(Kind::Tidings))
            .filter_map(|r| r.best.as_ref())
            .map(|w| w.lost + w.out_of_order)
            .sum::<u64>()
        + results
            .slow
            .iter()
            .filter(|r| r.kind == Some(Kind::Tidings))
            .map(|r| {
                r.with_slow.lost + r.with_slow.out_of_order + r.slow_lost + r.slow_out_of_order
            })
            .sum::<u64>()
        + results
            .storm
            .iter()
            .filter(|r| r.kind == Some(Kind::Tidings))
            .map(|r| r.lost + r.out_of_order)
            .sum::<u64>()
        + scaleout::lost(results)
        + resume::lost(results);
    row(
        "zero lost or duplicated events in every scenario",
        format!("{lost} lost or duplicated deliveries over all tidings runs"),
        Some(lost == 0),
    );
    resume::target(&mut row, results);
    let behind = behind_baselines(results);
    row(
        "ahead of both baselines on every row",
        if behind.is_empty() {
            "ahead on every compared figure".into()
        } else {
            format!("behind on {}: {}", behind.len(), behind.join("; "))
        },
        (!results.fanout.is_empty()).then_some(behind.is_empty()),
    );
    let node = results.ceiling.iter().filter(|r| r.kind == Some(Kind::Node)).collect::<Vec<_>>();
    for streams in sizes(&results.ceiling, |r| r.streams) {
        let best = |runs: &[&CeilingRun]| {
            let runs: Vec<&CeilingRun> =
                runs.iter().copied().filter(|r| r.streams == streams).collect();
            med(&runs, |r| r.best.as_ref().map_or(0.0, |b| b.deliveries_per_sec))
        };
        let (t, n) = (best(&ceiling), best(&node));
        row(
            &format!("≥ 3× the node baseline's deliveries/s ({streams} streams)"),
            format!("{} vs {} deliveries/s ({})", fmt(t, 0), fmt(n, 0), ratio(t, n, true)),
            t.zip(n).map(|(t, n)| t >= 3.0 * n),
        );
    }
    md.push('\n');
}

/// The compared figures (the ratio tables) where tidings is behind a baseline.
fn behind_baselines(results: &Results) -> Vec<String> {
    let mut behind = Vec::new();
    let mut check = |what: String, t: Option<f64>, b: Option<f64>, higher_is_better: bool| {
        if let (Some(t), Some(b)) = (t, b) {
            if (higher_is_better && t < b) || (!higher_is_better && t > b) {
                behind.push(format!("{what} ({t:.1} vs {b:.1})"));
            }
        }
    };
    for streams in sizes(&results.fanout, |r| r.streams) {
        let t = fanout_runs(results, Kind::Tidings, streams);
        for kind in baselines(results) {
            let b = fanout_runs(results, kind, streams);
            let name = kind.name().split(' ').next().unwrap_or_default();
            check(
                format!("connect p99 at {streams} vs {name}"),
                med(&t, |r| r.connect_p99_ms),
                med(&b, |r| r.connect_p99_ms),
                false,
            );
            check(
                format!("KiB/stream at {streams} vs {name}"),
                med(&t, |r| r.rss_per_stream_kib),
                med(&b, |r| r.rss_per_stream_kib),
                false,
            );
            for i in 0..t.first().map_or(0, |r| r.windows.len()) {
                let (tw, bw) = (windows(&t, i), windows(&b, i));
                let rate = tw.first().map_or(0.0, |w| w.rate);
                check(
                    format!("completion p99 ms at {streams}, {rate}/s vs {name}"),
                    med(&tw, |w| w.completion_p99_ms),
                    med(&bw, |w| w.completion_p99_ms),
                    false,
                );
            }
        }
    }
    for streams in sizes(&results.ceiling, |r| r.streams) {
        let pick = |kind: Kind| -> Vec<&CeilingRun> {
            results
                .ceiling
                .iter()
                .filter(|r| r.kind == Some(kind) && r.streams == streams)
                .collect()
        };
        let t = pick(Kind::Tidings);
        // When every step tidings was given stayed clean, its ceiling was not found: a lower
        // figure than a baseline's then says nothing about which is ahead.
        if !t.is_empty() && t.iter().all(|r| r.unbounded()) {
            continue;
        }
        for kind in baselines(results) {
            let b = pick(kind);
            let name = kind.name().split(' ').next().unwrap_or_default();
            check(
                format!("deliveries/s at {streams} vs {name}"),
                med(&t, |r| r.best.as_ref().map_or(0.0, |w| w.deliveries_per_sec)),
                med(&b, |r| r.best.as_ref().map_or(0.0, |w| w.deliveries_per_sec)),
                true,
            );
        }
    }
    behind
}

fn capacity(md: &mut String, results: &Results) {
    if results.fanout.is_empty() {
        return;
    }
    let _ = writeln!(md, "## 1. Idle capacity\n");
    let _ = writeln!(
        md,
        "Streams opened with at most {} connection attempts in flight per generator process; \
         connect = TCP connect → `connected` message parsed. RSS per stream = (RSS with every \
         stream open and idle − RSS before) / streams, from `/proc/<pid>/status`. Idle CPU is \
         the server's utime+stime over the idle window, in % of one core.\n",
        64
    );
    let _ = writeln!(md, "| streams | server | connected | failed | connect p99 ms | connect max ms | RSS KiB/stream | idle CPU % |");
    let _ = writeln!(md, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for streams in sizes(&results.fanout, |r| r.streams) {
        for &kind in &results.servers {
            let runs = fanout_runs(results, kind, streams);
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {streams} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                fmt(med(&runs, |r| r.connected as f64), 0),
                sum(&runs, |r| r.connect_failed),
                fmt(med(&runs, |r| r.connect_p99_ms), 1),
                fmt(med(&runs, |r| r.connect_max_ms), 1),
                fmt(med(&runs, |r| r.rss_per_stream_kib), 1),
                fmt(med(&runs, |r| r.idle_cpu_pct), 2),
            );
        }
    }
    let _ = writeln!(md, "\nRatios (baseline ÷ tidings: above 1× means tidings is better):\n");
    let _ = writeln!(
        md,
        "| streams | vs | connect p99 | RSS per stream |\n| ---: | --- | ---: | ---: |"
    );
    for streams in sizes(&results.fanout, |r| r.streams) {
        let t = fanout_runs(results, Kind::Tidings, streams);
        for kind in baselines(results) {
            let b = fanout_runs(results, kind, streams);
            let _ = writeln!(
                md,
                "| {streams} | {} | {} | {} |",
                kind.name(),
                ratio(med(&t, |r| r.connect_p99_ms), med(&b, |r| r.connect_p99_ms), false),
                ratio(med(&t, |r| r.rss_per_stream_kib), med(&b, |r| r.rss_per_stream_kib), false),
            );
        }
    }
    md.push('\n');
}

fn fanout(md: &mut String, results: &Results, chart: &str) {
    if results.fanout.is_empty() {
        return;
    }
    let _ = writeln!(md, "## 2. Fan-out latency\n");
    let _ = writeln!(
        md,
        "Events published through `POST /api/lists/bench/todos` on a fixed schedule; latency is \
         measured from the *intended* publish time carried in the event to its arrival (same \
         clock), so a publisher or server that falls behind shows up as latency. Completion = \
         publish → last subscriber of that event; its p99 is over the window's events. CPU per \
         delivery includes the POST handling. Lost / dup counts every missing, duplicated or \
         reordered delivery (checked by id on every stream). CPU % is of one core: the server \
         has one (pinned), so near 100 % it is saturated; the generator's figure says whether \
         it, rather than the server, was the limit.\n"
    );
    let _ = writeln!(md, "![fan-out completion p99 against stream count]({chart})\n");
    let _ = writeln!(
        md,
        "| streams | events/s | server | p50 ms | p99 ms | max ms | completion p99 ms | lost / dup | CPU µs/delivery | CPU % server / generator |"
    );
    let _ = writeln!(md, "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let rates = results.fanout.first().map_or(0, |r| r.windows.len());
    for streams in sizes(&results.fanout, |r| r.streams) {
        for i in 0..rates {
            for &kind in &results.servers {
                let runs = fanout_runs(results, kind, streams);
                let w = windows(&runs, i);
                if w.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {streams} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} / {} |",
                    w[0].rate,
                    kind.name(),
                    fmt(med(&w, |w| w.p50_ms), 1),
                    fmt(med(&w, |w| w.p99_ms), 1),
                    fmt(med(&w, |w| w.max_ms), 1),
                    fmt(med(&w, |w| w.completion_p99_ms), 1),
                    sum(&w, |w| w.lost),
                    sum(&w, |w| w.out_of_order),
                    fmt(med(&w, |w| w.cpu_us_per_delivery), 1),
                    fmt(med(&w, |w| w.server_cpu_pct), 0),
                    fmt(med(&w, |w| w.generator_cpu_pct), 0),
                );
            }
        }
    }
    let _ = writeln!(md, "\nRatios (baseline ÷ tidings):\n");
    let _ = writeln!(md, "| streams | events/s | vs | delivery p99 | completion p99 |\n| ---: | ---: | --- | ---: | ---: |");
    for streams in sizes(&results.fanout, |r| r.streams) {
        let t = fanout_runs(results, Kind::Tidings, streams);
        for i in 0..rates {
            let tw = windows(&t, i);
            for kind in baselines(results) {
                let b = fanout_runs(results, kind, streams);
                let bw = windows(&b, i);
                let _ = writeln!(
                    md,
                    "| {streams} | {} | {} | {} | {} |",
                    tw.first().map_or(0.0, |w| w.rate),
                    kind.name(),
                    ratio(med(&tw, |w| w.p99_ms), med(&bw, |w| w.p99_ms), false),
                    ratio(
                        med(&tw, |w| w.completion_p99_ms),
                        med(&bw, |w| w.completion_p99_ms),
                        false
                    ),
                );
            }
        }
    }
    md.push('\n');
}

fn ceiling(md: &mut String, results: &Results) {
    if results.ceiling.is_empty() {
        return;
    }
    let _ = writeln!(md, "## 3. Throughput ceiling\n");
    let _ = writeln!(
        md,
        "The event rate rises step by step (×1.5, a few seconds each) until completion p99 \
         exceeds 1 s or anything is lost; the figures are those of the last clean step. A search \
         that reached the step limit did not find the server's ceiling, only that it is higher \
         (the generator, on its one core, nears its own limit there). \
         CPU per delivery is the server's CPU time over that step (POST handling included) \
         divided by its deliveries.\n"
    );
    let _ = writeln!(
        md,
        "| streams | server | events/s | deliveries/s | completion p99 ms | CPU µs/delivery | CPU % server / generator | why the search stopped (last repetition) |"
    );
    let _ = writeln!(md, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let pick = |kind: Kind, streams: usize| -> Vec<&CeilingRun> {
        results.ceiling.iter().filter(|r| r.kind == Some(kind) && r.streams == streams).collect()
    };
    let best = |runs: &[&CeilingRun], f: fn(&WindowResult) -> f64| {
        med(runs, |r| r.best.as_ref().map_or(0.0, f))
    };
    for streams in sizes(&results.ceiling, |r| r.streams) {
        for &kind in &results.servers {
            let runs = pick(kind, streams);
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {streams} | {} | {} | {} | {} | {} | {} / {} | {} |",
                kind.name(),
                fmt(best(&runs, |w| w.rate), 1),
                fmt(best(&runs, |w| w.deliveries_per_sec), 0),
                fmt(best(&runs, |w| w.completion_p99_ms), 0),
                fmt(best(&runs, |w| w.cpu_us_per_delivery), 1),
                fmt(best(&runs, |w| w.server_cpu_pct), 0),
                fmt(best(&runs, |w| w.generator_cpu_pct), 0),
                runs.last().map_or("", |r| r.stopped.as_str()),
            );
        }
    }
    let _ = writeln!(md, "\nRatios (deliveries/s: tidings ÷ baseline; CPU: baseline ÷ tidings):\n");
    let _ = writeln!(
        md,
        "| streams | vs | deliveries/s | CPU per delivery |\n| ---: | --- | ---: | ---: |"
    );
    for streams in sizes(&results.ceiling, |r| r.streams) {
        let t = pick(Kind::Tidings, streams);
        for kind in baselines(results) {
            let b = pick(kind, streams);
            let _ = writeln!(
                md,
                "| {streams} | {} | {} | {} |",
                kind.name(),
                ratio(best(&t, |w| w.deliveries_per_sec), best(&b, |w| w.deliveries_per_sec), true),
                ratio(
                    best(&t, |w| w.cpu_us_per_delivery),
                    best(&b, |w| w.cpu_us_per_delivery),
                    false
                ),
            );
        }
    }
    let sqlite = scaleout::writes(results, Kind::Tidings, Some(Topology::SQLITE), 8);
    if let Some(per_sec) = med(&sqlite, |w| w.per_sec) {
        let _ = writeln!(
            md,
            "\nStorage bound: tidings sustains {per_sec:.0} `POST`s/s (8 clients back to back, \
             no streams; p50 {} ms, p99 {} ms, {} µs of server CPU each), each a SQLite \
             transaction with `synchronous=FULL`; PostgreSQL and two processes: section 7. {}",
            fmt(med(&sqlite, |w| w.p50_ms), 2),
            fmt(med(&sqlite, |w| w.p99_ms), 2),
            fmt(med(&sqlite, |w| w.cpu_us_per_post), 0),
            baselines(results)
                .into_iter()
                .filter_map(|kind| {
                    let runs = scaleout::writes(results, kind, None, 8);
                    med(&runs, |w| w.per_sec)
                        .map(|per_sec| format!("{}: {per_sec:.0}/s (in memory).", kind.name()))
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    md.push('\n');
}

fn slow(md: &mut String, results: &Results) {
    if results.slow.is_empty() {
        return;
    }
    let first = &results.slow[0];
    let _ = writeln!(md, "## 4. Slow consumers\n");
    let _ = writeln!(
        md,
        "{} streams, of which {} (1 %) stop reading right after `connected` (receive buffer \
         4 KiB) for {} s while ~700-byte events flow at {} events/s; broadcast buffer {} for \
         tidings and axum. The control run is the same load without stalled clients. Then the stalled \
         clients read again and must receive everything. A stalled socket's kernel send buffer \
         grows to 4 MiB on this loopback (seen with `ss -tm`: `tb3939840`), so the server's own \
         buffering starts only after ~6 000 events; the full run is long enough to pass that \
         (a quick run is not).\n",
        first.streams,
        first.slow,
        first.secs,
        first.control.rate,
        first.broadcast_capacity,
    );
    let _ = writeln!(md, "| server | healthy p99 ms, control | with stalled | change | healthy lost / dup | RSS KiB, control → stalled | stalled clients: lost / dup | caught up |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &kind in &results.servers {
        let runs: Vec<&SlowRun> = results.slow.iter().filter(|r| r.kind == Some(kind)).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}% | {} / {} | {} → {} | {} / {} | {} of {} |",
            kind.name(),
            fmt(med(&runs, |r| r.control.p99_ms), 1),
            fmt(med(&runs, |r| r.with_slow.p99_ms), 1),
            fmt(med(&runs, |r| r.p99_change_pct), 1),
            sum(&runs, |r| r.with_slow.lost),
            sum(&runs, |r| r.with_slow.out_of_order),
            fmt(med(&runs, |r| r.control_rss_kib as f64), 0),
            fmt(med(&runs, |r| r.stalled_rss_kib as f64), 0),
            sum(&runs, |r| r.slow_lost),
            sum(&runs, |r| r.slow_out_of_order),
            sum(&runs, |r| r.slow_caught_up),
            sum(&runs, |r| r.slow as u64),
        );
    }
    md.push('\n');
}

fn storm(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## 5. Reconnect storm\n");
    if let Some(first) = results.storm.first() {
        let _ = writeln!(
            md,
            "{} streams drop their connections at once while events keep flowing ({} per \
             second: at 10/s, 10 000 streams alone fill the server's core); each reconnects at \
             once with `Last-Event-ID` (at most 64 attempts in flight per \
             generator process). A stream is caught up when it has received, without gap, an \
             event published after its own reconnection.\n",
            first.streams, first.rate
        );
    }
    let _ = writeln!(md, "| server | reconnected | reconnect p99 ms | caught-up p99 ms | all caught up ms | lost / dup | resync or dead |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &kind in &results.servers {
        if !kind.resumes() {
            let _ = writeln!(
                md,
                "| {} | not supported: no event log, `Last-Event-ID` ignored | | | | | |",
                kind.name()
            );
            continue;
        }
        let runs: Vec<&StormRun> = results.storm.iter().filter(|r| r.kind == Some(kind)).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} of {} | {} | {} | {} | {} / {} | {} |",
            kind.name(),
            fmt(med(&runs, |r| r.reconnected as f64), 0),
            fmt(med(&runs, |r| r.connected as f64), 0),
            fmt(med(&runs, |r| r.reconnect_p99_ms), 0),
            fmt(med(&runs, |r| r.caught_p99_ms), 0),
            fmt(med(&runs, |r| r.all_caught_ms), 0),
            sum(&runs, |r| r.lost),
            sum(&runs, |r| r.out_of_order),
            sum(&runs, |r| r.broken),
        );
    }
    md.push('\n');
}

fn syscalls(md: &mut String, results: &Results) {
    if results.syscalls.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Write syscalls per delivery (`strace -c -f -p <pid>`)\n");
    let _ = writeln!(md, "| server | streams | events | deliveries | write-family calls | per delivery |\n| --- | ---: | ---: | ---: | --- | ---: |");
    for s in &results.syscalls {
        let calls = s.writes.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {calls} | {:.2} |",
            s.kind.map_or("", Kind::name),
            s.streams,
            s.events,
            s.deliveries,
            s.writes_per_delivery
        );
    }
    if let Some(s) = results.syscalls.first() {
        let _ = writeln!(md, "\nCommand: `{}` while the events fan out.\n", s.command);
    }
}

/// Tidings' median of `f` over the fan-out runs at `streams`, window `index`.
fn tidings_window(
    results: &Results,
    streams: usize,
    index: usize,
    f: fn(&WindowResult) -> f64,
) -> Option<f64> {
    let runs = fanout_runs(results, Kind::Tidings, streams);
    med(&windows(&runs, index), f)
}

/// What stands between tidings and the targets, computed from this run's figures.
fn findings(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## Findings\n");
    if let Some(s) = results.syscalls.iter().find(|s| s.kind == Some(Kind::Tidings)) {
        let _ = writeln!(
            md,
            "- **Writes per delivery.** `{}` over {} deliveries counted {} write-family calls, \
             {:.2} per delivery: Rocket does not split an event into several writes (the event \
             is framed once into one shared buffer and written as one chunk; hyper writes chunk \
             header, data and trailer with one `writev`). The extra calls are the POST responses \
             and `write`s to tokio's wake-up eventfd.",
            s.command,
            s.deliveries,
            s.writes.iter().map(|(_, c)| c).sum::<u64>(),
            s.writes_per_delivery
        );
    }
    let top = sizes(&results.fanout, |r| r.streams).into_iter().max();
    if let Some(top) = top {
        let rss = |kind| med(&fanout_runs(results, kind, top), |r| r.rss_per_stream_kib);
        if let (Some(t), Some(a)) = (rss(Kind::Tidings), rss(Kind::Axum)) {
            let _ = writeln!(
                md,
                "- **Memory per idle stream.** tidings holds {t:.1} KiB of RSS per idle stream at \
                 {top} streams, the axum baseline {a:.1} KiB on the same hyper and tokio. The \
                 difference, {:.1} KiB per stream, is mostly how Rocket streams a response body \
                 (see *Where the rest goes*). The 16 KiB target needs about {:.0} KiB less per \
                 stream.",
                t - a,
                (t - 16.0).max(0.0)
            );
        }
        let idle = med(&fanout_runs(results, Kind::Tidings, top), |r| r.idle_cpu_pct);
        let _ = writeln!(
            md,
            "- **Idle cost.** {} % of a core with {top} idle streams: the heartbeat is one timer \
             for the whole server (`Hub::run_heartbeat`), not one per stream.",
            fmt(idle, 2)
        );
    }
    batching(md, results);
    {
        for streams in sizes(&results.fanout, |r| r.streams) {
            let rate = results.fanout.iter().find_map(|r| r.windows.get(1)).map_or(0.0, |w| w.rate);
            let p99 = tidings_window(results, streams, 1, |w| w.completion_p99_ms);
            let Some(cpu) = tidings_window(results, streams, 1, |w| w.cpu_us_per_delivery) else {
                continue;
            };
            let needed = streams as f64 * rate;
            let share = needed * cpu / 1e6;
            if share > 0.8 {
                let _ = writeln!(
                    md,
                    "- **{streams} streams at {rate} events/s** need {needed:.0} deliveries/s; at \
                     {cpu:.1} µs each that is {share:.2} s of CPU per second, close to or more than \
                     the one core the server has here, so events queue and completion p99 reaches {} ms. \
                     Keeping up on one core needs at most about {:.1} µs per delivery (at 80 % \
                     load), or a second core for the server.",
                    fmt(p99, 0),
                    0.8e6 / needed
                );
            }
        }
    }
    let sqlite = scaleout::writes(results, Kind::Tidings, Some(Topology::SQLITE), 8);
    let ceiling_rate = results
        .ceiling
        .iter()
        .filter(|r| r.kind == Some(Kind::Tidings))
        .filter_map(|r| r.best.as_ref().map(|b| b.rate))
        .reduce(f64::max);
    if let (Some(per_sec), Some(_)) = (med(&sqlite, |w| w.per_sec), ceiling_rate) {
        let _ = writeln!(
            md,
            "- **Storage.** {per_sec:.0} writes/s with fsync (`synchronous=FULL`, one writer); \
             the highest clean event rate in scenario 3 was {} events/s, so {}.",
            fmt(ceiling_rate, 1),
            if ceiling_rate.is_some_and(|r| r > 0.5 * per_sec) {
                "fsync bounds scenario 3"
            } else {
                "fan-out, not fsync, bounds scenario 3"
            }
        );
    }
    let _ = writeln!(
        md,
        "- **Where the rest goes.** Heap and CPU profiles (heaptrack, perf) with the commands \
         to repeat them are in [`tests/load/profiling.md`](tests/load/profiling.md): per \
         stream, ~16 KiB of hyper buffers, ~12 KiB of Rocket's body streaming (a second task \
         per response, a 4 KiB copy buffer, a channel to hyper, the kept headers), under 2 KiB \
         of tidings' own state at the time; per delivery, two task wake-ups (Rocket's request task, then \
         hyper's connection task) and a poll of Rocket's `Shutdown` trip-wire. Since those \
         profiles the stream's own state went from 1.6 KiB to 304 bytes (the replay query's \
         future is boxed instead of held inline by every idle stream)."
    );
    let _ = writeln!(
        md,
        "- **Slow consumers on loopback.** A stalled client's socket takes up to 4 MiB of kernel \
         send buffer (`net.ipv4.tcp_wmem` max, autotuned on loopback) before the server sees any \
         back-pressure; that memory is the kernel's, not in the server's RSS. Node buffers past \
         it in its heap without limit; axum's receivers skip what they missed; tidings' lagging \
         streams catch up from the event log.\n"
    );
}

/// Per-delivery CPU at the first and at the last clean ceiling step: whether a server's cost
/// falls under load (it coalesces a client's queued events into one write) or stays flat.
fn batching(md: &mut String, results: &Results) {
    let mut lines = Vec::new();
    for streams in sizes(&results.ceiling, |r| r.streams) {
        let line = |kind: Kind| -> Option<(f64, f64, f64)> {
            let runs: Vec<&CeilingRun> = results
                .ceiling
                .iter()
                .filter(|r| r.kind == Some(kind) && r.streams == streams)
                .collect();
            let first =
                med(&runs, |r| r.steps.first().map_or(f64::NAN, |w| w.cpu_us_per_delivery))?;
            let last = med(&runs, |r| r.best.as_ref().map_or(f64::NAN, |w| w.cpu_us_per_delivery))?;
            let rate = med(&runs, |r| r.best.as_ref().map_or(f64::NAN, |w| w.deliveries_per_sec))?;
            (first.is_finite() && last.is_finite()).then_some((first, last, rate))
        };
        let described: Vec<String> = results
            .servers
            .iter()
            .filter_map(|&k| {
                line(k).map(|(first, last, rate)| {
                    format!(
                        "{} {first:.1} → {last:.1} µs ({rate:.0} deliveries/s)",
                        k.name().split(' ').next().unwrap_or_default()
                    )
                })
            })
            .collect();
        if !described.is_empty() {
            lines.push(format!("at {streams} streams: {}", described.join(", ")));
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "- **CPU per delivery, and batching under load.** Server CPU per delivery from the \
         first ceiling step to the last clean one (POST handling included) — {}. A cost that \
         falls as the rate rises means a client's queued events leave in one write. A tidings \
         stream drains what its broadcast receiver already holds into one buffer \
         (`server/src/stream.rs`, `Batch`; test \
         `a_client_that_is_behind_gets_waiting_events_in_one_write`), as axum's `Sse` body and \
         hyper do together. Until the writer thread, that drain rarely found a second event: a \
         change made about six round trips to SQLite's connection thread, each return queued \
         behind the thousands of stream tasks the previous change had woken, so publishing fell \
         behind its schedule and events reached the streams one at a time (flat cost, and a \
         ceiling equal to node's). With write transactions on a thread of their own \
         (`server/src/store.rs`, `WriterThread`) events are published on time, a saturated server \
         finds several waiting per stream, and its cost per delivery falls as axum's does; \
         before/after figures are in [`tests/load/profiling.md`](tests/load/profiling.md).",
        lines.join("; ")
    );
}
