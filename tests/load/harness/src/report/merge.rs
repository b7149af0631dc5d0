//! A narrowed run (`BENCH_SCENARIOS`, `BENCH_SERVERS`) merged into an existing report: the
//! sections it measured in full are replaced, each marked with the command, commit and time
//! that produced it; every other section stays as the earlier run wrote it.

use crate::server::Kind;
use crate::suite::Results;

/// The scenarios a section is made from; `None`: all of them (the summary sections).
struct Owner {
    heading: &'static str,
    scenarios: Option<&'static [&'static str]>,
    /// Whether it compares tidings with the baselines (then a run without them keeps it).
    all_servers: bool,
}

/// Every section, in report order, by the start of its heading.
const OWNERS: &[Owner] = &[
    Owner { heading: "Targets", scenarios: None, all_servers: true },
    Owner { heading: "1. Idle capacity", scenarios: Some(&["fanout"]), all_servers: true },
    Owner { heading: "2. Fan-out latency", scenarios: Some(&["fanout"]), all_servers: true },
    Owner {
        heading: "3. Throughput ceiling",
        scenarios: Some(&["ceiling", "writes"]),
        all_servers: true,
    },
    Owner { heading: "4. Slow consumers", scenarios: Some(&["slow"]), all_servers: true },
    Owner { heading: "4b. ", scenarios: Some(&["resume"]), all_servers: false },
    Owner { heading: "5. Reconnect storm", scenarios: Some(&["storm"]), all_servers: true },
    Owner { heading: "Write syscalls", scenarios: Some(&["syscalls"]), all_servers: true },
    Owner { heading: "6. Scale-out", scenarios: Some(&["cluster"]), all_servers: false },
    Owner { heading: "7. Storage", scenarios: Some(&["writes"]), all_servers: false },
    Owner { heading: "Findings", scenarios: None, all_servers: true },
    Owner { heading: "Runs that failed", scenarios: Some(&[]), all_servers: false },
    Owner { heading: "Baselines", scenarios: None, all_servers: true },
];

/// The line under the preamble that says some sections come from later runs.
const NOTE: &str = "> Some sections below were measured later by narrowed runs \
    (`BENCH_SCENARIOS=…`); each of those says so under its heading, with its own command, \
    commit, time and machine load. The table above describes the run that wrote the rest.";

/// Whether `results` measured `scenario` in full (against every server, if `all_servers`).
pub(super) fn regenerates(results: &Results, scenario: &str, all_servers: bool) -> bool {
    results.complete()
        || (results.scenarios.iter().any(|s| s == scenario)
            && (!all_servers || has_every_server(results)))
}

fn has_every_server(results: &Results) -> bool {
    [Kind::Tidings, Kind::Node, Kind::Axum].iter().all(|k| results.servers.contains(k))
}

fn owns(owner: &Owner, results: &Results) -> bool {
    match owner.scenarios {
        None => results.complete(),
        Some(scenarios) => {
            scenarios.iter().all(|s| regenerates(results, s, owner.all_servers))
                && (!owner.all_servers || has_every_server(results))
        }
    }
}

/// `(preamble, [(heading line, body)])`, split at `## ` headings.
fn split(text: &str) -> (String, Vec<(String, String)>) {
    let mut preamble = String::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(heading) = line.strip_prefix("## ") {
            sections.push((heading.trim_end().to_owned(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
        } else {
            preamble.push_str(line);
        }
    }
    (preamble, sections)
}

fn provenance(results: &Results) -> String {
    format!(
        "*Narrowed run: `{}`, commit {}, started {}, {} repetition(s), {:.0} s; load average \
         (1 min) {:.2} at its start and {:.2} at its end, on 2 cores shared with other work.*\n\n",
        results.command,
        results.commit,
        results.started,
        results.reps,
        results.elapsed_secs,
        results.load_average.0,
        results.load_average.1,
    )
}

/// `old` with the sections of `fresh` that `results` measured in full.
pub(super) fn merge(old: &str, fresh: &str, results: &Results) -> String {
    let (old_preamble, old_sections) = split(old);
    let (_, new_sections) = split(fresh);
    let find = |sections: &[(String, String)], owner: &Owner| {
        sections.iter().find(|(h, _)| h.starts_with(owner.heading)).cloned()
    };
    let mut out = old_preamble.trim_end().to_owned();
    if !out.contains(NOTE) {
        out.push_str("\n\n");
        out.push_str(NOTE);
    }
    out.push_str("\n\n");
    for owner in OWNERS {
        let fresh = find(&new_sections, owner).filter(|_| owns(owner, results));
        let section = match fresh {
            Some((heading, body)) => {
                Some((heading, format!("\n{}{}", provenance(results), body.trim_start())))
            }
            None => find(&old_sections, owner),
        };
        if let Some((heading, body)) = section {
            out.push_str(&format!("## {heading}\n{body}"));
        }
    }
    // Sections of the old report this version does not know: kept, at the end.
    for (heading, body) in &old_sections {
        if !OWNERS.iter().any(|o| heading.starts_with(o.heading)) {
            out.push_str(&format!("## {heading}\n{body}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrowed(scenarios: &[&str], servers: &[Kind]) -> Results {
        Results {
            scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
            servers: servers.to_vec(),
            command: "BENCH_SCENARIOS=cluster tests/load/bench.sh".into(),
            ..Results::default()
        }
    }

    const OLD: &str = "# Benchmarks\n\nintro\n\n## Targets (issue 5)\n\nold targets\n\n\
        ## 2. Fan-out latency\n\nold fan-out\n\n## 6. Scale-out: x\n\nold scale-out\n\n\
        ## Findings\n\nold findings\n";
    const NEW: &str =
        "# Benchmarks\n\nnew intro\n\n## Targets (issues 5, 9 and 10)\n\nnew targets\n\n\
        ## 4b. Stalled\n\nnew stalled\n\n## 6. Scale-out: x\n\nnew scale-out\n\n\
        ## 7. Storage: y\n\nnew storage\n\n## Findings\n\nnew findings\n";

    #[test]
    fn a_narrowed_run_replaces_only_what_it_measured() {
        let results = narrowed(&["cluster"], &[Kind::Tidings]);
        let merged = merge(OLD, NEW, &results);
        assert!(merged.starts_with("# Benchmarks\n\nintro\n\n> Some sections"), "{merged}");
        assert!(merged.contains("old targets") && !merged.contains("new targets"));
        assert!(merged.contains("old fan-out") && merged.contains("old findings"));
        assert!(merged.contains("new scale-out") && !merged.contains("old scale-out"));
        // Measured by a scenario that did not run: neither old nor new.
        assert!(!merged.contains("new storage") && !merged.contains("new stalled"));
        assert!(merged.contains("*Narrowed run: `BENCH_SCENARIOS=cluster tests/load/bench.sh`"));
        // In report order, and merging again changes nothing but the replaced section.
        let order = ["## Targets", "## 2. Fan-out", "## 6. Scale-out", "## Findings"];
        let at: Vec<usize> = order.iter().map(|h| merged.find(h).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{merged}");
        assert_eq!(merge(&merged, NEW, &results), merged);
    }

    #[test]
    fn a_section_compared_with_baselines_needs_every_server() {
        let tidings_only = narrowed(&["fanout", "writes"], &[Kind::Tidings]);
        let merged = merge(OLD, NEW, &tidings_only);
        assert!(merged.contains("old fan-out"), "{merged}");
        assert!(merged.contains("new storage"), "{merged}");
        let all = narrowed(&["fanout"], &[Kind::Tidings, Kind::Node, Kind::Axum]);
        let fresh =
            NEW.replace("## 7. Storage", "## 2. Fan-out latency\n\nnew fan-out\n\n## 7. Storage");
        assert!(merge(OLD, &fresh, &all).contains("new fan-out"));
    }
}
