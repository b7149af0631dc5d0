//! What presence costs (issue 20, item 3): the server's CPU and memory with idle streams that
//! are counted on lists, against the same number that are not, and the CPU of streams that
//! join and leave a busy list.
//!
//! Streams that follow every list are counted nowhere, so they are the baseline: the
//! difference to streams that each name a list of their own is what counting them costs (a
//! map entry per stream, one row per list and a read of every followed list twice a second).
//! The churn phase opens and closes streams on one list watched by all the idle streams: each
//! join and leave is a counter change, a row write at the next sync, and at most one
//! `presence` message a second to every watcher.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::{create_list, Bench};
use crate::http::{self, open_event_stream, EventStream};
use crate::server::{Kind, Options, Server};
use crate::sse::{Chunked, SseParser};

/// The list every stream of the churn phase is on.
const HOT: &str = "p0";

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PresenceCost {
    /// Idle streams in each phase.
    pub streams: usize,
    /// Seconds each phase was measured.
    pub secs: u64,
    /// Server CPU, percent of one core, with `streams` streams that follow every list.
    pub unfiltered_cpu_pct: f64,
    /// Its resident memory then, KiB.
    pub unfiltered_rss_kib: u64,
    /// Server CPU with those streams while `churn` streams that follow every list open and
    /// close a second: the control of the churn phase.
    pub unfiltered_churn_cpu_pct: f64,
    /// Server CPU with `streams` streams, each on a list of its own.
    pub own_list_cpu_pct: f64,
    /// Its resident memory then, KiB.
    pub own_list_rss_kib: u64,
    /// Server CPU with `streams` streams all on one list.
    pub one_list_cpu_pct: f64,
    /// Its resident memory then, KiB.
    pub one_list_rss_kib: u64,
    /// Joins (and as many leaves) per second on that list in the churn phase.
    pub churn_per_sec: f64,
    /// Server CPU during the churn.
    pub churn_cpu_pct: f64,
    /// `presence` messages one watcher of the list received per second during the churn.
    pub presence_per_sec: f64,
}

/// Open `n` idle streams (following `list(i)`, `""` for every list) and keep them.
async fn open_idle(
    addr: SocketAddr,
    n: usize,
    list: impl Fn(usize) -> String,
) -> io::Result<Vec<EventStream>> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        streams.push(open_event_stream(Ipv4Addr::LOCALHOST, addr, &list(i), None, None).await?);
    }
    Ok(streams)
}

/// Wait until the server holds `n` streams (closed ones are noticed at the next probe).
async fn settle(addr: SocketAddr, n: u64) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http::health(addr).await?.0 != n {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("the server did not settle at {n} streams")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Server CPU over `secs`, percent of one core.
async fn cpu_pct(server: &Server, secs: u64) -> f64 {
    let before = server.cpu();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (server.cpu() - before).as_secs_f64() / secs as f64 * 100.0
}

/// Server CPU (percent of one core) over `secs` while a stream on `list` (`""`: every list)
/// opens `churn` times a second and each is dropped a second later.
async fn churning(server: &Server, list: &str, churn: f64, secs: u64) -> io::Result<f64> {
    let before = server.cpu();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / churn));
    let mut open = std::collections::VecDeque::new();
    while started.elapsed() < Duration::from_secs(secs) {
        ticks.tick().await;
        open.push_back(
            open_event_stream(Ipv4Addr::LOCALHOST, server.addr, list, None, None).await?,
        );
        if open.len() as f64 > churn {
            open.pop_front();
        }
    }
    let pct = (server.cpu() - before).as_secs_f64() / started.elapsed().as_secs_f64() * 100.0;
    drop(open);
    Ok(pct)
}

/// One run with `streams` idle streams and `churn` joins a second, each phase `secs` long on a
/// server of its own (memory an earlier phase freed is not always given back to the system).
pub async fn presence_cost(
    bench: &Bench,
    streams: usize,
    churn: f64,
    secs: u64,
) -> io::Result<PresenceCost> {
    let mut cost = PresenceCost { streams, secs, churn_per_sec: churn, ..Default::default() };
    for phase in [Phase::Unfiltered, Phase::OwnList, Phase::OneList] {
        let options = Options {
            cpus: bench.server_cpus.clone(),
            env: vec![
                // Every stream comes from one address; a probe a second notices closed ones
                // soon.
                ("TIDINGS_MAX_STREAMS_PER_CLIENT".into(), (streams * 2 + 100).to_string()),
                ("TIDINGS_PROBE_SECS".into(), "1".into()),
            ],
            ..Options::default()
        };
        let server = Server::start(Kind::Tidings, &bench.programs, &options).await?;
        let outcome = measure(&server, phase, &mut cost).await;
        server.stop().await;
        outcome?;
    }
    Ok(cost)
}

/// The phases of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Idle streams that follow every list, then churn of such streams.
    Unfiltered,
    /// Idle streams each on a list of its own.
    OwnList,
    /// Idle streams all on one list, then churn on it.
    OneList,
}

async fn measure(server: &Server, phase: Phase, cost: &mut PresenceCost) -> io::Result<()> {
    let (addr, n, secs, churn) = (server.addr, cost.streams, cost.secs, cost.churn_per_sec);
    // The same lists in every phase, so the database and the log are alike.
    for i in 0..n {
        create_list(addr, &format!("p{i}")).await?;
    }
    let list = |i: usize| match phase {
        Phase::Unfiltered => String::new(),
        Phase::OwnList => format!("p{i}"),
        Phase::OneList => HOT.to_owned(),
    };
    let idle = open_idle(addr, n, list).await?;
    settle(addr, n as u64).await?;
    let (cpu, rss) = (cpu_pct(server, secs).await, server.rss_kib());
    match phase {
        Phase::Unfiltered => {
            (cost.unfiltered_cpu_pct, cost.unfiltered_rss_kib) = (cpu, rss);
            cost.unfiltered_churn_cpu_pct = churning(server, "", churn, secs).await?;
        }
        Phase::OwnList => (cost.own_list_cpu_pct, cost.own_list_rss_kib) = (cpu, rss),
        Phase::OneList => {
            (cost.one_list_cpu_pct, cost.one_list_rss_kib) = (cpu, rss);
            // One watcher counts the presence messages during the churn.
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(AtomicU64::new(0));
            let watcher = {
                let (stop, seen) = (stop.clone(), seen.clone());
                let EventStream { mut stream, leftover, .. } =
                    open_event_stream(Ipv4Addr::LOCALHOST, addr, HOT, None, None).await?;
                tokio::spawn(async move {
                    let (mut chunked, mut parser) = (Chunked::default(), SseParser::default());
                    let mut count = |bytes: &[u8]| {
                        parser.feed(bytes, &mut |message| {
                            if message.event == b"presence" && !stop.load(Ordering::Relaxed) {
                                seen.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    };
                    let _ = chunked.feed(&leftover, &mut count);
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || chunked.feed(&buf[..n], &mut count).unwrap_or(true) {
                            break;
                        }
                    }
                })
            };
            settle(addr, n as u64 + 1).await?;
            seen.store(0, Ordering::Relaxed);
            let started = Instant::now();
            cost.churn_cpu_pct = churning(server, HOT, churn, secs).await?;
            cost.presence_per_sec =
                seen.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            watcher.abort();
        }
    }
    drop(idle);
    Ok(())
}
