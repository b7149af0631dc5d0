//! A worker process: holds up to a few thousand SSE streams on one single-threaded tokio
//! runtime, checks every delivered event's sequence, measures its latency, and answers the
//! coordinator's [`Command`]s.
//!
//! The streams of one worker share their statistics through an `Rc<RefCell<_>>`: the runtime
//! has one thread, so no atomics or locks sit on the per-delivery path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write as _};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::LocalSet;
use tokio::time::Instant;

use crate::control::{
    Command, ConnectReport, GroupReport, Reply, StormReport, WindowReport, WorkerConfig,
};
use crate::http::{open_event_stream, EventStream};
use crate::payload::{self, now_nanos};
use crate::sse::{Chunked, Message, SseParser};

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 4096;
/// Reconnection attempts per stream during a storm before it counts as dead.
const RECONNECT_ATTEMPTS: u32 = 12;

/// Run a worker with `config` until [`Command::Quit`] or the end of stdin.
pub fn run(config: WorkerConfig) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    LocalSet::new().block_on(&runtime, serve(config))
}

/// What the streams broadcast to every client task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Phase {
    /// Bumped for each reconnect storm.
    storm: u32,
    /// Slow streams read again.
    resume_slow: bool,
}

/// Statistics of one group over the current window.
#[derive(Debug, Default)]
struct Group {
    report: GroupReport,
}

/// Everything the stream tasks of this worker share.
#[derive(Debug)]
struct Shared {
    slow: usize,
    /// Per stream: the last event id received (the `connected` id before any event).
    last: Vec<Option<u64>>,
    /// Per stream: still open (or reconnecting).
    alive: Vec<bool>,
    connect: ConnectReport,
    connecting: usize,
    healthy: Group,
    slow_group: Group,
    /// Event id → largest healthy latency so far (ns).
    completion: HashMap<u64, u64>,
    /// The id an `Await` waits for, and whether slow streams count.
    target: Option<(u64, bool)>,
    reached: usize,
    gone: usize,
    storm: Option<Storm>,
    notify: Rc<Notify>,
}

#[derive(Debug, Default)]
struct Storm {
    started: u64,
    report: StormReport,
    gone: u64,
}

impl Shared {
    fn is_slow(&self, client: usize) -> bool {
        client < self.slow
    }

    fn counts_for_target(&self, client: usize) -> bool {
        matches!(self.target, Some((_, include_slow)) if include_slow || !self.is_slow(client))
    }

    fn group(&mut self, client: usize) -> &mut GroupReport {
        if client < self.slow {
            &mut self.slow_group.report
        } else {
            &mut self.healthy.report
        }
    }

    /// Move stream `client` to event `id`, keeping the sequence accounts.
    fn advance(&mut self, client: usize, id: u64) -> bool {
        let previous = self.last[client];
        let in_order = match previous {
            Some(last) if id <= last => {
                self.group(client).out_of_order += 1;
                false
            }
            Some(last) => {
                self.group(client).lost += id - last - 1;
                true
            }
            None => true,
        };
        if in_order {
            self.last[client] = Some(id);
            if let Some((target, _)) = self.target {
                if self.counts_for_target(client)
                    && previous.is_none_or(|p| p < target)
                    && id >= target
                {
                    self.reached += 1;
                    self.notify.notify_one();
                }
            }
        }
        in_order
    }

    /// Stream `client` ended for good.
    fn bury(&mut self, client: usize) {
        if !self.alive[client] {
            return;
        }
        self.alive[client] = false;
        self.group(client).dead += 1;
        if let Some((target, _)) = self.target {
            if self.counts_for_target(client) && self.last[client].is_none_or(|l| l < target) {
                self.gone += 1;
            }
        }
        if let Some(storm) = &mut self.storm {
            storm.gone += 1;
        }
        self.notify.notify_one();
    }
}

struct Worker {
    config: WorkerConfig,
    shared: Rc<RefCell<Shared>>,
    phase: watch::Sender<Phase>,
    permits: Rc<Semaphore>,
}

async fn serve(config: WorkerConfig) -> io::Result<()> {
    let notify = Rc::new(Notify::new());
    let shared = Rc::new(RefCell::new(Shared {
        slow: config.slow,
        last: vec![None; config.clients],
        alive: vec![true; config.clients],
        connect: ConnectReport::default(),
        connecting: 0,
        healthy: Group::default(),
        slow_group: Group::default(),
        completion: HashMap::new(),
        target: None,
        reached: 0,
        gone: 0,
        storm: None,
        notify,
    }));
    let permits = Rc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let worker = Worker { config, shared, phase: watch::channel(Phase::default()).0, permits };

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let command: Command = serde_json::from_str(&line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reply = match command {
            Command::Connect => Reply::Connected(worker.connect().await),
            Command::Reset => {
                worker.reset();
                Reply::Ok
            }
            Command::Await { last_id, include_slow, deadline_ms } => {
                Reply::Window(worker.await_id(last_id, include_slow, deadline_ms).await)
            }
            Command::ResumeSlow => {
                worker.phase.send_modify(|p| p.resume_slow = true);
                Reply::Ok
            }
            Command::Storm { deadline_ms } => Reply::Storm(worker.storm(deadline_ms).await),
            Command::Quit => break,
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &reply)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

impl Worker {
    async fn connect(&self) -> ConnectReport {
        let notify = {
            let mut s = self.shared.borrow_mut();
            s.connecting = self.config.clients;
            s.notify.clone()
        };
        for client in 0..self.config.clients {
            let stream = Stream {
                client,
                config: self.config.clone(),
                shared: self.shared.clone(),
                phase: self.phase.subscribe(),
                permits: self.permits.clone(),
            };
            tokio::task::spawn_local(stream.run());
        }
        loop {
            let notified = notify.notified();
            if self.shared.borrow().connecting == 0 {
                break;
            }
            notified.await;
        }
        std::mem::take(&mut self.shared.borrow_mut().connect)
    }

    fn reset(&self) {
        let mut s = self.shared.borrow_mut();
        s.healthy = Group::default();
        s.slow_group = Group::default();
        s.completion.clear();
    }

    async fn await_id(&self, last_id: u64, include_slow: bool, deadline_ms: u64) -> WindowReport {
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        let (notify, expected) = {
            let mut s = self.shared.borrow_mut();
            s.target = Some((last_id, include_slow));
            let counted: Vec<usize> =
                (0..self.config.clients).filter(|&c| s.counts_for_target(c)).collect();
            s.reached = counted
                .iter()
                .filter(|&&c| s.alive[c] && s.last[c].is_some_and(|l| l >= last_id))
                .count();
            s.gone = counted.iter().filter(|&&c| !s.alive[c]).count();
            (s.notify.clone(), counted.len())
        };
        let mut timed_out = false;
        loop {
            let notified = notify.notified();
            {
                let s = self.shared.borrow();
                if s.reached + s.gone >= expected {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                timed_out = true;
                break;
            }
        }
        let mut s = self.shared.borrow_mut();
        s.target = None;
        let mut report = WindowReport {
            healthy: std::mem::take(&mut s.healthy.report),
            slow: std::mem::take(&mut s.slow_group.report),
            completion: s.completion.drain().collect(),
            timed_out,
        };
        let slow = s.slow;
        let reached = |c: usize| s.alive[c] && s.last[c].is_some_and(|l| l >= last_id);
        report.healthy.clients = (self.config.clients - slow) as u64;
        report.healthy.reached = (slow..self.config.clients).filter(|&c| reached(c)).count() as u64;
        report.slow.clients = slow as u64;
        report.slow.reached = (0..slow).filter(|&c| reached(c)).count() as u64;
        report
    }

    async fn storm(&self, deadline_ms: u64) -> StormReport {
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        let (notify, expected) = {
            let mut s = self.shared.borrow_mut();
            let expected = s.alive.iter().filter(|&&a| a).count() as u64;
            s.storm = Some(Storm {
                started: now_nanos(),
                report: StormReport { clients: expected, ..StormReport::default() },
                gone: 0,
            });
            (s.notify.clone(), expected)
        };
        self.phase.send_modify(|p| p.storm += 1);
        let mut timed_out = false;
        loop {
            let notified = notify.notified();
            {
                let s = self.shared.borrow();
                let storm = s.storm.as_ref().expect("storm in progress");
                if storm.report.caught_up + storm.gone >= expected {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                timed_out = true;
                break;
            }
        }
        let mut storm = self.shared.borrow_mut().storm.take().expect("storm in progress");
        storm.report.timed_out = timed_out;
        storm.report
    }
}

/// One SSE stream of the worker.
struct Stream {
    client: usize,
    config: WorkerConfig,
    shared: Rc<RefCell<Shared>>,
    phase: watch::Receiver<Phase>,
    permits: Rc<Semaphore>,
}

/// How one connection ended.
enum End {
    /// A reconnect storm began: reconnect at once.
    Storm,
    /// The server closed the stream or the connection failed.
    Closed,
}

impl Stream {
    async fn run(mut self) {
        let slow = self.client < self.config.slow;
        let source = self.config.sources[self.client % self.config.sources.len()];
        let mut storm_epoch = self.phase.borrow().storm;
        let mut first = true;
        let mut attempts = 0;
        loop {
            let resume = if first {
                self.config.resume_from
            } else {
                self.shared.borrow().last[self.client]
            };
            let mut live_after = None;
            let opened = {
                let _permit = self.permits.acquire().await.expect("semaphore never closed");
                let started = Instant::now();
                let attempt = tokio::time::timeout(
                    Duration::from_millis(self.config.connect_timeout_ms),
                    self.open(source, resume, slow, &mut live_after),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))
                });
                attempt.map(|opened| (opened, started.elapsed()))
            };
            let (mut conn, took) = match opened {
                Ok(ok) => ok,
                Err(e) => {
                    if first {
                        let mut s = self.shared.borrow_mut();
                        s.connect.failed += 1;
                        s.connect.first_error.get_or_insert_with(|| e.to_string());
                        s.connecting -= 1;
                        s.alive[self.client] = false;
                        s.notify.notify_one();
                        return;
                    }
                    attempts += 1;
                    if let Some(storm) = &mut self.shared.borrow_mut().storm {
                        storm.report.retries += 1;
                        storm.report.first_error.get_or_insert_with(|| e.to_string());
                    }
                    if attempts >= RECONNECT_ATTEMPTS {
                        let mut s = self.shared.borrow_mut();
                        if let Some(storm) = &mut s.storm {
                            storm.report.first_error.get_or_insert_with(|| e.to_string());
                        }
                        s.bury(self.client);
                        return;
                    }
                    // Back off before retrying a refused reconnection, as a browser would.
                    tokio::time::sleep(Duration::from_millis(50 << attempts.min(5))).await;
                    continue;
                }
            };
            attempts = 0;
            let reconnected_at = now_nanos();
            {
                let mut s = self.shared.borrow_mut();
                if first {
                    s.connect.ok += 1;
                    s.connect.latency.record_nanos(took.as_nanos() as u64);
                    s.connecting -= 1;
                    s.notify.notify_one();
                } else if let Some(storm) = &mut s.storm {
                    storm.report.reconnected += 1;
                    storm
                        .report
                        .reconnect
                        .record_nanos(reconnected_at.saturating_sub(storm.started));
                }
            }
            first = false;
            match self.follow(&mut conn, slow, &mut storm_epoch, live_after).await {
                End::Storm => continue,
                End::Closed => {
                    self.shared.borrow_mut().bury(self.client);
                    return;
                }
            }
        }
    }

    /// Open the stream and read up to its `connected` message. Messages that arrive in the
    /// same read after it (a resumed stream's replay often does) are handled at once; on a
    /// reconnection, `live_after` is set to the time `connected` arrived.
    async fn open(
        &self,
        source: std::net::Ipv4Addr,
        resume: Option<u64>,
        slow: bool,
        live_after: &mut Option<u64>,
    ) -> io::Result<Conn> {
        let server = self.config.servers[self.client % self.config.servers.len()];
        let EventStream { stream, leftover, chunked } = open_event_stream(
            source,
            server,
            &self.config.list,
            resume,
            slow.then_some(self.config.slow_recv_buffer),
        )
        .await?;
        let mut conn =
            Conn { stream, chunked, decoder: Chunked::default(), parser: SseParser::default() };
        let mut pending = leftover;
        let mut connected = false;
        loop {
            let received = now_nanos();
            let ended = conn.decode(&pending, &mut |m| {
                if connected {
                    on_message(&self.shared, self.client, m, received, live_after);
                } else if m.event == b"connected" {
                    connected = true;
                    if resume.is_some() {
                        *live_after = Some(received);
                    }
                    self.on_connected(m.id);
                }
            })?;
            if connected {
                return Ok(conn);
            }
            if ended {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "ended before `connected`",
                ));
            }
            pending.clear();
            pending.resize(READ_BUFFER, 0);
            let n = conn.stream.read(&mut pending).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before `connected`",
                ));
            }
            pending.truncate(n);
        }
    }

    fn on_connected(&self, id: Option<u64>) {
        let mut s = self.shared.borrow_mut();
        let Some(id) = id else { return };
        match s.last[self.client] {
            // First connection: the stream starts here.
            None => s.last[self.client] = Some(id),
            // A server that cannot resume starts at its head: what lies between is lost.
            Some(last) if id > last => {
                s.group(self.client).lost += id - last;
                s.last[self.client] = Some(id);
            }
            Some(_) => {}
        }
    }

    /// Read the stream until it ends or a storm begins.
    async fn follow(
        &mut self,
        conn: &mut Conn,
        slow: bool,
        storm_epoch: &mut u32,
        mut live_after: Option<u64>,
    ) -> End {
        let mut paused = slow && !self.phase.borrow().resume_slow;
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        return End::Closed;
                    }
                    let phase = *self.phase.borrow_and_update();
                    if phase.storm != *storm_epoch {
                        *storm_epoch = phase.storm;
                        return End::Storm;
                    }
                    paused = slow && !phase.resume_slow;
                }
                read = conn.stream.read(&mut buf), if !paused => {
                    let n = match read {
                        Ok(0) => return End::Closed,
                        Ok(n) => n,
                        Err(_) => return End::Closed,
                    };
                    let received = now_nanos();
                    let client = self.client;
                    let shared = &self.shared;
                    let result = conn.decode(&buf[..n], &mut |m| {
                        on_message(shared, client, m, received, &mut live_after)
                    });
                    match result {
                        Ok(true) => return End::Closed,
                        Ok(false) => {}
                        Err(_) => return End::Closed,
                    }
                }
            }
        }
    }
}

/// Handle one message of stream `client` received at `received` (ns).
fn on_message(
    shared: &RefCell<Shared>,
    client: usize,
    message: Message<'_>,
    received: u64,
    live_after: &mut Option<u64>,
) {
    match message.event {
        b"heartbeat" | b"connected" => {}
        b"resync" => shared.borrow_mut().group(client).resyncs += 1,
        _ => {
            let Some(id) = message.id else { return };
            let mut s = shared.borrow_mut();
            let in_order = s.advance(client, id);
            let Some((_, at)) = payload::parse(message.data) else { return };
            let latency = received.saturating_sub(at);
            let group = s.group(client);
            group.deliveries += 1;
            group.data_bytes += message.data.len() as u64;
            group.latency.record_nanos(latency);
            if in_order && !s.is_slow(client) {
                let slot = s.completion.entry(id).or_default();
                *slot = (*slot).max(latency);
            }
            if live_after.is_some_and(|after| at > after) {
                *live_after = None;
                if let Some(storm) = &mut s.storm {
                    storm.report.caught_up += 1;
                    storm.report.caught.record_nanos(received.saturating_sub(storm.started));
                    s.notify.notify_one();
                }
            }
        }
    }
}

/// An open connection and its decoders.
struct Conn {
    stream: tokio::net::TcpStream,
    chunked: bool,
    decoder: Chunked,
    parser: SseParser,
}

impl Conn {
    /// Decode body bytes into messages; `Ok(true)` when the response ended.
    fn decode(&mut self, bytes: &[u8], on: &mut impl FnMut(Message<'_>)) -> io::Result<bool> {
        if !self.chunked {
            self.parser.feed(bytes, on);
            return Ok(false);
        }
        let parser = &mut self.parser;
        self.decoder
            .feed(bytes, &mut |body| parser.feed(body, on))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
