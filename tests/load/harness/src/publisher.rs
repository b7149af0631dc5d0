//! Publishing through the real REST API on a fixed schedule.
//!
//! Event `i` is due at `start + i / rate` and carries that *intended* time in its title, so a
//! publisher that falls behind (a slow `POST`, a busy server) shows up as latency instead of
//! silently stretching the schedule: no coordinated omission. Several keep-alive
//! connections take turns so one slow response does not hold back the next event.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::http::Conn;
use crate::payload::{self, now_nanos, Fill};
use crate::stats::Latencies;

/// A keep-alive connection idle longer than this is replaced before use: servers close idle
/// connections after about 5 s, and a request racing that close would be lost.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// What to publish.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Events per second.
    pub rate: f64,
    /// Events in all (the publisher may be stopped earlier).
    pub count: u64,
    /// Filler characters in each title.
    pub pad: usize,
    /// What they are.
    pub fill: Fill,
}

/// What the publisher did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishReport {
    /// Events attempted.
    pub attempted: u64,
    /// `201`/`200` answers.
    pub ok: u64,
    /// Failed requests.
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Request sent → response read.
    pub response: Latencies,
    /// Largest delay of a send behind its intended time, ms.
    pub max_behind_ms: f64,
    /// Seconds from the first intended send to the last response.
    pub elapsed_secs: f64,
}

/// Publish `schedule` to `list` on `server`, until done or `stop` is set.
pub async fn publish(
    server: SocketAddr,
    list: &str,
    schedule: Schedule,
    stop: Arc<AtomicBool>,
) -> PublishReport {
    let period = Duration::from_secs_f64(1.0 / schedule.rate.max(0.001));
    // Enough connections that each is used every half second or more often, up to 32.
    let connections = (schedule.rate / 2.0).ceil().clamp(1.0, 32.0) as usize;
    let lead = Duration::from_millis(20);
    let start = Instant::now() + lead;
    let wall_start = now_nanos() + lead.as_nanos() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let report = Arc::new(Mutex::new(PublishReport::default()));
    let path = format!("/api/lists/{list}/todos");
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (next, report, stop, path, schedule) =
            (next.clone(), report.clone(), stop.clone(), path.clone(), schedule.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<(Conn, Instant)> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= schedule.count || stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = start + period * i as u32;
                tokio::time::sleep_until(due).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let at = wall_start + (period * i as u32).as_nanos() as u64;
                let body = serde_json::json!({ "title": payload::title(i, at, schedule.pad, schedule.fill) });
                let sent = Instant::now();
                let result = async {
                    let fresh = match conn.take() {
                        Some((c, used)) if used.elapsed() < MAX_IDLE => c,
                        _ => Conn::open(server).await?,
                    };
                    let mut c = fresh;
                    let answer = c.request("POST", &path, Some(&body.to_string())).await?;
                    Ok::<_, std::io::Error>((c, answer))
                }
                .await;
                let mut r = report.lock().expect("publisher report lock");
                r.attempted += 1;
                r.max_behind_ms = r.max_behind_ms.max((sent - due).as_secs_f64() * 1000.0);
                match result {
                    Ok((c, (status, _))) if status == 201 || status == 200 => {
                        r.ok += 1;
                        r.response.record_nanos(sent.elapsed().as_nanos() as u64);
                        conn = Some((c, Instant::now()));
                    }
                    Ok((c, (status, body))) => {
                        r.failed += 1;
                        r.first_error.get_or_insert_with(|| {
                            format!("POST answered {status}: {}", String::from_utf8_lossy(&body))
                        });
                        conn = Some((c, Instant::now()));
                    }
                    Err(e) => {
                        r.failed += 1;
                        r.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut report = Arc::try_unwrap(report)
        .map(|m| m.into_inner().expect("publisher report lock"))
        .unwrap_or_else(|shared| shared.lock().expect("publisher report lock").clone());
    report.elapsed_secs = start.elapsed().as_secs_f64();
    report
}

/// A closed-loop load: clients that each `POST` back to back, with no schedule.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Server processes; client `c` talks to `servers[c % servers.len()]`.
    pub servers: Vec<SocketAddr>,
    /// Lists written in turn (request `n` of the whole run goes to `lists[n % lists.len()]`),
    /// so that no list grows large: a create counts its list's todos (the per-list limit).
    pub lists: Vec<String>,
    /// Concurrent clients.
    pub clients: usize,
    /// Stop after this long, if set.
    pub duration: Option<Duration>,
    /// Stop after this many `POST`s in all, if set.
    pub count: Option<u64>,
    /// Title padding.
    pub pad: usize,
    /// What it is.
    pub fill: Fill,
}

/// What a closed-loop load did.
#[derive(Debug, Clone, Default)]
pub struct ClosedLoopReport {
    /// `POST`s answered 201/200.
    pub ok: u64,
    /// Requests that failed (the client stops at its first failure).
    pub failed: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Response times.
    pub latencies: Latencies,
    /// Wall time of the load.
    pub elapsed: Duration,
}

impl ClosedLoopReport {
    /// Successful `POST`s per second.
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Run `load`: every title is a benchmark title (`b <n> <now>`), so events written this way
/// can be replayed and checked by the streams like published ones.
pub async fn closed_loop(load: ClosedLoop) -> ClosedLoopReport {
    let started = Instant::now();
    let end = load.duration.map(|d| started + d);
    let next = Arc::new(AtomicU64::new(0));
    let load = Arc::new(load);
    let mut tasks = Vec::new();
    for c in 0..load.clients {
        let (load, next) = (load.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let server = load.servers[c % load.servers.len()];
            let mut report = ClosedLoopReport::default();
            let mut conn = match Conn::open(server).await {
                Ok(conn) => conn,
                Err(e) => {
                    report.failed += 1;
                    report.first_error = Some(e.to_string());
                    return report;
                }
            };
            loop {
                if end.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if load.count.is_some_and(|count| n >= count) {
                    break;
                }
                let path =
                    format!("/api/lists/{}/todos", load.lists[n as usize % load.lists.len()]);
                let title = payload::title(n, now_nanos(), load.pad, load.fill);
                let body = serde_json::json!({ "title": title }).to_string();
                let sent = Instant::now();
                match conn.request("POST", &path, Some(&body)).await {
                    Ok((201 | 200, _)) => {
                        report.ok += 1;
                        report.latencies.record_nanos(sent.elapsed().as_nanos() as u64);
                    }
                    Ok((status, answer)) => {
                        report.failed += 1;
                        report.first_error = Some(format!(
                            "POST {path} answered {status}: {}",
                            String::from_utf8_lossy(&answer)
                        ));
                        break;
                    }
                    Err(e) => {
                        report.failed += 1;
                        report.first_error = Some(format!("POST {path}: {e}"));
                        break;
                    }
                }
            }
            report
        }));
    }
    let mut total = ClosedLoopReport::default();
    for task in tasks {
        if let Ok(report) = task.await {
            total.ok += report.ok;
            total.failed += report.failed;
            total.first_error = total.first_error.take().or(report.first_error);
            total.latencies.merge(&report.latencies);
        }
    }
    total.elapsed = started.elapsed();
    total
}
