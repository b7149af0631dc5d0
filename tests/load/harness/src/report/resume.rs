//! Section 4b: streams that resume from an old id and never read (issue 9, item 4).

use std::fmt::Write as _;

use super::{fmt, med, sum, SETTINGS_NOTE};
use crate::scenarios::resume::ResumeRun;
use crate::suite::Results;

/// Issue 9's bound on what one such stream may hold.
const TARGET_KIB: f64 = 64.0;

/// Lost and duplicated deliveries of the readers and of the stalled streams.
pub(super) fn lost(results: &Results) -> u64 {
    results
        .resume
        .iter()
        .map(|r| {
            r.control.lost
                + r.control.out_of_order
                + r.with_stalled.lost
                + r.with_stalled.out_of_order
                + r.stalled_lost
                + r.stalled_out_of_order
        })
        .sum()
}

/// The target row of the summary table.
pub(super) fn target(row: &mut impl FnMut(&str, String, Option<bool>), results: &Results) {
    let runs: Vec<&ResumeRun> = results.resume.iter().collect();
    let per = med(&runs, |r| r.rss_per_stalled_kib);
    let stalled = runs.first().map_or(0, |r| r.stalled);
    row(
        &format!("≤ {TARGET_KIB} KiB RSS per stream resuming from id 1 that never reads (issue 9)"),
        format!("{} KiB with {stalled} such streams", fmt(per, 1)),
        per.map(|p| p <= TARGET_KIB),
    );
}

/// Section 4b.
pub(super) fn section(md: &mut String, results: &Results) {
    let Some(first) = results.resume.first() else { return };
    let runs: Vec<&ResumeRun> = results.resume.iter().collect();
    let _ = writeln!(
        md,
        "## 4b. Streams that resume from an old id and never read (issue 9, item 4)\n"
    );
    let _ = writeln!(
        md,
        "tidings on SQLite; the log holds {} events with non-ASCII titles of 500 characters \
         ({} bytes of `data` per event, measured by one stream that read them all). {} normal \
         readers are connected; then {} streams connect with `Last-Event-ID: 1` and never read \
         (4 KiB receive buffer), in two halves. Each one's replay fills its socket's kernel \
         buffers and then waits on a write; the server's RSS is read once it has settled (under \
         2 % of a core and RSS flat within 1 MiB over one second) after each half. Per stalled \
         stream = (RSS settled − RSS before they connected) / streams, as issue 9 measured it \
         (~1.2 MB before its fix; the bound is {TARGET_KIB} KiB); *second half* = the growth \
         from the first half to all of them / streams of the second half, without what the \
         first paid once (the reader connections' SQLite page caches filling with the log); \
         *idle stream* = what each normal reader added when it connected, for comparison: a \
         stalled stream holds that plus its stalled replay. The readers' window ({} events/s, short titles) is published \
         once before the stalled streams connect and once while they are stalled. Then they \
         read again and must receive the whole log, in order, exactly once. Kernel TCP memory is \
         machine-wide (`/proc/net/sockstat`), for where the stalled bytes wait: in the kernel, \
         not in the server{}. Where a stalled stream's bytes go (heap profile): \
         [`tests/load/profiling.md`](tests/load/profiling.md). {SETTINGS_NOTE}.\n",
        first.log_events,
        fmt(med(&runs, |r| r.data_bytes_per_event), 0),
        first.readers,
        first.stalled,
        first.control.rate,
        if first.tcp_pressure_kib > 0 {
            format!(
                " (past {} MiB, the kernel's `tcp_mem` pressure threshold here, it stops \
                 growing socket buffers)",
                first.tcp_pressure_kib / 1024
            )
        } else {
            String::new()
        },
    );
    let _ = writeln!(
        md,
        "| stalled streams | RSS KiB before → settled (peak) | per stalled stream | second half | idle stream | ≤ {TARGET_KIB} KiB | settled after | kernel TCP MiB before → settled | readers p99 ms, before → stalled | readers lost / dup | stalled: lost / dup | caught up | in | RSS KiB after they closed | others % |"
    );
    let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let per = med(&runs, |r| r.rss_per_stalled_kib);
    let _ = writeln!(
        md,
        "| {} of {} | {} → {} ({}) | {} KiB | {} KiB | {} KiB | {} | {} s{} | {} → {} | {} → {} | {} / {} | {} / {} | {} of {} | {} s | {} | {} |",
        fmt(med(&runs, |r| r.stalled_connected as f64), 0),
        first.stalled,
        fmt(med(&runs, |r| r.rss_before_kib as f64), 0),
        fmt(med(&runs, |r| r.rss_stalled_kib as f64), 0),
        fmt(med(&runs, |r| r.rss_peak_kib as f64), 0),
        fmt(per, 1),
        fmt(med(&runs, |r| r.rss_marginal_kib), 1),
        fmt(med(&runs, |r| r.rss_per_reader_kib), 1),
        match per {
            Some(p) if p <= TARGET_KIB => "yes",
            Some(_) => "**no**",
            None => "–",
        },
        fmt(med(&runs, |r| r.settle_secs), 1),
        if runs.iter().all(|r| r.settled) { "" } else { " (**not settled**: read at the limit)" },
        fmt(med(&runs, |r| r.kernel_tcp_before_kib as f64 / 1024.0), 0),
        fmt(med(&runs, |r| r.kernel_tcp_stalled_kib as f64 / 1024.0), 0),
        fmt(med(&runs, |r| r.control.p99_ms), 1),
        fmt(med(&runs, |r| r.with_stalled.p99_ms), 1),
        sum(&runs, |r| r.control.lost + r.with_stalled.lost),
        sum(&runs, |r| r.control.out_of_order + r.with_stalled.out_of_order),
        sum(&runs, |r| r.stalled_lost),
        sum(&runs, |r| r.stalled_out_of_order),
        fmt(med(&runs, |r| r.caught_up as f64), 0),
        fmt(med(&runs, |r| r.stalled_connected as f64), 0),
        fmt(med(&runs, |r| r.catch_up_secs), 1),
        fmt(med(&runs, |r| r.rss_released_kib as f64), 0),
        fmt(med(&runs, |r| r.with_stalled.other_cpu_pct.max(r.control.other_cpu_pct)), 0),
    );
    let broken = sum(&runs, |r| r.stalled_broken);
    let _ = writeln!(
        md,
        "\n{} `resync`s or dead streams among the stalled ones; each stalled stream received \
         {} events once reading again.\n",
        broken,
        fmt(med(&runs, |r| r.stalled_deliveries as f64 / r.stalled_connected.max(1) as f64), 0),
    );
}
