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
use crate::payload::{self, now_nanos};
use crate::stats::Latencies;

/// A keep-alive connection idle longer than this is replaced before use: servers close idle
/// connections after about 5 s, and a request racing that close would be lost.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// What to publish.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Events per second.
    pub rate: f64,
    /// Events in all (the publisher may be stopped earlier).
    pub count: u64,
    /// Filler characters in each title.
    pub pad: usize,
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
                let body = serde_json::json!({ "title": payload::title(i, at, schedule.pad) });
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

/// Closed-loop write capacity: `connections` clients each `POST` back to back for
/// `duration`. Reports (requests per second, response latencies).
pub async fn write_capacity(
    server: SocketAddr,
    list: &str,
    connections: usize,
    duration: Duration,
) -> (f64, Latencies) {
    let end = Instant::now() + duration;
    let started = Instant::now();
    let path = format!("/api/lists/{list}/todos");
    let mut tasks = Vec::new();
    for c in 0..connections {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Latencies::default();
            let Ok(mut conn) = Conn::open(server).await else { return (0u64, h) };
            let mut done = 0u64;
            while Instant::now() < end {
                let body = serde_json::json!({ "title": format!("w {c} {done}") }).to_string();
                let sent = Instant::now();
                match conn.request("POST", &path, Some(&body)).await {
                    Ok((201 | 200, _)) => {
                        done += 1;
                        h.record_nanos(sent.elapsed().as_nanos() as u64);
                    }
                    _ => break,
                }
            }
            (done, h)
        }));
    }
    let mut total = 0;
    let mut latencies = Latencies::default();
    for task in tasks {
        if let Ok((done, h)) = task.await {
            total += done;
            latencies.merge(&h);
        }
    }
    (total as f64 / started.elapsed().as_secs_f64(), latencies)
}
