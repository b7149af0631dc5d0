//! Fair reads (issue 22, item 6): one client asks for large snapshots, many at once and back to
//! back; another reads a small list now and then. Without per-client read shares the first
//! holds every connection of the reader pool and the second's small read waits behind its
//! queue; with them (`TIDINGS_MAX_READS_PER_CLIENT`, 1 by default) the second's read finds a
//! connection free.
//!
//! The two clients are two loopback addresses of a server without access control, so the
//! server tells them apart by address, as it would tell two users apart.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{create_list, Bench};
use crate::http::Conn;
use crate::server::{Kind, Options, Server};
use crate::stats::Latencies;

/// Todos in the large list: the server's default snapshot limit.
const BIG_TODOS: usize = 10_000;
/// Bytes of each of its titles (the longest a title may be): about 6.5 MB of JSON in all.
const TITLE_BYTES: usize = 500;
/// The flooding client's concurrent readers.
const FLOOD_READERS: usize = 32;
/// Pause between two small reads.
const SMALL_EVERY: Duration = Duration::from_millis(20);

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FairReads {
    /// `TIDINGS_MAX_READS_PER_CLIENT` of the run.
    pub reads_per_client: usize,
    /// Large snapshots (10 000 todos, ~6.5 MB) served per second to the flooding client.
    pub big_per_sec: f64,
    /// The other client's small reads.
    pub small_reads: u64,
    /// Their latency, p50 / p99 / max, ms.
    pub small_p50_ms: f64,
    /// p99, ms.
    pub small_p99_ms: f64,
    /// Slowest, ms.
    pub small_max_ms: f64,
}

/// One run of `secs` seconds (after a warm-up) with `reads_per_client` shares.
pub async fn fair_reads(
    bench: &Bench,
    reads_per_client: usize,
    secs: u64,
) -> io::Result<FairReads> {
    let options = Options {
        cpus: bench.server_cpus.clone(),
        env: vec![("TIDINGS_MAX_READS_PER_CLIENT".into(), reads_per_client.to_string())],
        ..Options::default()
    };
    let server = Server::start(Kind::Tidings, &bench.programs, &options).await?;
    let outcome = measure(server.addr, reads_per_client, secs).await;
    server.stop().await;
    outcome
}

async fn measure(addr: SocketAddr, reads_per_client: usize, secs: u64) -> io::Result<FairReads> {
    fill(addr).await?;
    let flooder: IpAddr = [127, 0, 0, 1].into();
    let other: IpAddr = [127, 0, 0, 2].into();
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..FLOOD_READERS {
        let (stop, counting, served) = (stop.clone(), counting.clone(), served.clone());
        readers.push(tokio::spawn(async move {
            let mut conn = Conn::open_from(addr, flooder).await?;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = conn.request("GET", "/api/lists/big/todos", None).await?;
                if status != 200 || body.len() < BIG_TODOS * TITLE_BYTES {
                    return Err(io::Error::other(format!("a large snapshot: {status}")));
                }
                if counting.load(Ordering::Relaxed) {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
            io::Result::Ok(())
        }));
    }
    // Warm-up: every flooding reader has a request in flight.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = Conn::open_from(addr, other).await?;
    let mut small = Latencies::default();
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let sent = Instant::now();
        let (status, _) = conn.request("GET", "/api/lists/small/todos", None).await?;
        if status != 200 {
            return Err(io::Error::other(format!("a small snapshot: {status}")));
        }
        small.record_nanos(sent.elapsed().as_nanos() as u64);
        tokio::time::sleep(SMALL_EVERY).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let big = served.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.map_err(io::Error::other)??;
    }
    Ok(FairReads {
        reads_per_client,
        big_per_sec: big as f64 / elapsed,
        small_reads: small.count(),
        small_p50_ms: small.quantile_ms(0.5),
        small_p99_ms: small.quantile_ms(0.99),
        small_max_ms: small.max_ms(),
    })
}

/// The large list (10 000 todos of 500-byte titles) and a small one (5 todos).
async fn fill(addr: SocketAddr) -> io::Result<()> {
    create_list(addr, "big").await?;
    create_list(addr, "small").await?;
    let title = "x".repeat(TITLE_BYTES);
    let mut writers = Vec::new();
    for w in 0..8 {
        let title = title.clone();
        writers.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let body = format!(r#"{{"title":"{title}"}}"#);
            for _ in (w..BIG_TODOS).step_by(8) {
                let (status, _) = conn.request("POST", "/api/lists/big/todos", Some(&body)).await?;
                if status != 201 {
                    return Err(io::Error::other(format!("filling: {status}")));
                }
            }
            io::Result::Ok(())
        }));
    }
    for writer in writers {
        writer.await.map_err(io::Error::other)??;
    }
    let mut conn = Conn::open(addr).await?;
    for i in 0..5 {
        let body = format!(r#"{{"title":"small {i}"}}"#);
        conn.request("POST", "/api/lists/small/todos", Some(&body)).await?;
    }
    Ok(())
}
