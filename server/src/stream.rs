//! One client's event stream: resume from the log, then live from the hub, never a gap and
//! never a duplicate.
//!
//! The stream subscribes to the hub *before* it reads the log, so every change the tailer
//! broadcasts after the read is in the receiver, and every change committed before it is in
//! the log. Live frames whose id it has already sent are skipped. The tailer broadcasts in id
//! order, and ids follow commit order (see [`crate::store`]), so one number, `cursor`, says
//! how far the client is.
//!
//! When the receiver lags behind the broadcast buffer it goes back to the log for what it
//! missed. Memory per stream is bounded: one receiver, and at most one batch of bytes
//! ([`REPLAY_PAGE`] or [`MAX_BATCH_BYTES`]) waiting for a client that does not read: a
//! replayed page is framed into its batch and dropped before the batch is handed on.
//!
//! **Chunk sizes.** Each item the stream yields becomes at least one chunk of the response
//! (Rocket never joins two, and cuts an item into chunks of [`CHUNK_BYTES`]), and each chunk
//! is a trip through Rocket's body channel to hyper and usually one `writev`: cutting live
//! batches into 1 KiB chunks cost a fifth more CPU per delivery at 1 000 streams and two
//! fifths of the throughput at 10 000 (BENCHMARKS.md, "Chunk sizes"). hyper queues up to 16
//! chunks for a socket that does not drain, and Rocket copies them out of buffers of
//! [`CHUNK_BYTES`] that the chunks share, so what a stalled stream pins in hyper is about 16
//! chunks plus the buffers they were cut from. A replayed page, which a stalled resuming
//! client would otherwise hold 16 of, is therefore handed on in [`REPLAY_CHUNK_BYTES`] slices
//! (16 of them span at most five buffers: 10 KiB), while a live batch, sent by a stream that
//! keeps up, goes in chunks of [`CHUNK_BYTES`] (32 KiB queued at most, should its client stop
//! reading before it falls behind the broadcast buffer). Every stream holds one such buffer
//! from its start, idle or not, which is why it is not larger: 2 KiB costs a delivery about as
//! little as 8 KiB does (BENCHMARKS.md, "Chunk sizes").

use std::future::Future;
use std::io::Cursor;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{Stream, StreamExt};
use rocket::http::ContentType;
use rocket::request::Request;
use rocket::response::stream::ReaderStream;
use rocket::response::{self, Responder, Response};
use tidings_protocol::{Connected, Resync, ResyncReason};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::audience::{Access, Audience};
use crate::hub::{Envelope, Hub, StreamSlot};
use crate::presence::Presence;
use crate::sse;
use crate::store::{LogHead, Page, Store, StoreError};

/// Events replayed from the log per database read (and per write to the socket): by count,
/// and by bytes so that long titles cannot make a page large. Small, because a client that
/// stops reading holds one page: 8 KiB pages cost a database read per ~40 long events when
/// catching up and keep a stalled stream near the 64 KiB it is allowed in all.
pub const REPLAY_PAGE: Page = Page { events: 128, bytes: 8 * 1024 };

/// The rows to ask for in the next replay read, after a read that returned `rows` and did not
/// reach the end of the log: twice as many, up to [`REPLAY_PAGE`]'s count. A read fetches every
/// row it may before it cuts by bytes, so with long titles asking for 128 rows would read 25
/// times what an 8 KiB page keeps; a page cut by bytes at `k` rows asks for `2k` next.
fn next_page_rows(rows: usize) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX).saturating_mul(2).clamp(2, REPLAY_PAGE.events)
}

/// Live frames gathered into one write at most.
pub const MAX_BATCH_BYTES: usize = 8 * 1024;

/// The chunks Rocket cuts a stream's writes into (and the buffers it reads them into).
pub const CHUNK_BYTES: usize = 2 * 1024;

/// The slices a replayed page is handed on in: hyper queues up to 16 chunks for a socket that
/// does not drain, so a stalled resuming stream pins at most about 10 KiB there.
pub const REPLAY_CHUNK_BYTES: usize = 512;

/// Whether a live envelope goes to this stream; advances `cursor` past envelopes with an id.
fn accept(envelope: &Envelope, cursor: &mut u64, audience: &mut Audience) -> bool {
    if let Some(id) = envelope.id {
        if id <= *cursor {
            return false; // already replayed from the log
        }
        *cursor = id;
    }
    audience.admits(envelope.id, &envelope.scope, envelope.change.as_ref())
}

/// Frames gathered for one write. The frames are kept as they are (live ones are shared with
/// every other stream through the broadcast buffer) and joined into one buffer of exactly
/// their size when the write is handed on, so a stalled write holds its bytes once, with no
/// slack from a growing buffer.
#[derive(Debug, Default)]
struct Batch {
    frames: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        self.frames.push(bytes);
    }

    fn len(&self) -> usize {
        self.len
    }

    fn take(&mut self) -> Option<Bytes> {
        let Batch { mut frames, len } = std::mem::take(self);
        match frames.len() {
            0 => None,
            1 => frames.pop(),
            _ => {
                let mut buf = BytesMut::with_capacity(len);
                for frame in &frames {
                    buf.extend_from_slice(frame);
                }
                Some(buf.freeze())
            }
        }
    }
}

/// What a client asked for when it opened the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRequest {
    /// Lists to follow; `None` follows every list.
    pub lists: Option<Vec<String>>,
    /// Resume after this event id (`Last-Event-ID` or `last_event_id`).
    pub resume_from: Option<u64>,
    /// The epoch `resume_from` belongs to, when the client knows it.
    pub epoch: Option<String>,
    /// With access control: the user, whose stream carries only what they may read.
    pub user: Option<String>,
    /// With access control: when the user's token expires (seconds since the Unix epoch);
    /// the stream ends then, and the client reconnects with a fresh token.
    pub expires_at: Option<u64>,
}

/// Per-stream parameters taken from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Heartbeat period announced in `connected`.
    pub heartbeat_secs: u64,
    /// The `retry:` hint for this stream, jitter included.
    pub retry_ms: u64,
}

/// Where a stream starts, decided before the response begins so a database error is still
/// a proper JSON error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start {
    head: u64,
    cursor: u64,
    resync: Option<(u64, ResyncReason)>,
}

async fn plan(
    store: &Store,
    request: &StreamRequest,
) -> Result<(Start, Option<Access>), StoreError> {
    let (head, access) = match &request.user {
        None => (store.head().await?, None),
        Some(user) => {
            // In one snapshot: the head and what the user may read up to it.
            let (head, grants) = store.stream_start(user).await?;
            (head, Some(Access::new(user.clone(), grants)))
        }
    };
    Ok((start(head, request, store.epoch()), access))
}

/// Where a stream with `request` starts in a log at `head` of `epoch`.
fn start(head: LogHead, request: &StreamRequest, epoch: &str) -> Start {
    let fresh = Start { head: head.last_event_id, cursor: head.last_event_id, resync: None };
    let Some(requested) = request.resume_from else { return fresh };
    // 0: from the start of the log, wherever its ids begin.
    let from = if requested == 0 { head.origin } else { requested };
    let reason = if request.epoch.as_deref().is_some_and(|asked| asked != epoch) {
        // Ids of another log (the database was reset or replaced): they mean nothing here.
        Some(ResyncReason::Epoch)
    } else if from > head.last_event_id {
        // Newer than anything this log has seen: another log's id, or a reset database.
        Some(ResyncReason::Ahead)
    } else if from < head.floor {
        // Pruned, or another log's id: a new log's ids start far from 0.
        Some(ResyncReason::Pruned)
    } else {
        None
    };
    match reason {
        None => Start { cursor: from, ..fresh },
        Some(reason) => Start { resync: Some((requested, reason)), ..fresh },
    }
}

/// Open a stream for `request`, holding `slot` (and its share of `presence` on the lists it
/// names) until it ends. It ends when `until` resolves (server shutdown), when the client
/// goes away, or when the database fails (the client then reconnects and resumes).
#[allow(clippy::too_many_arguments)] // each is a separate piece of state the stream holds
pub async fn open(
    store: Store,
    hub: &Hub,
    presence: &Presence,
    request: StreamRequest,
    options: StreamOptions,
    slot: StreamSlot,
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Stream<Item = Bytes> + Send + 'static, StoreError> {
    // Subscribe first: from here on nothing can fall between the log and the receiver.
    let mut rx = hub.subscribe();
    let (start, access) = plan(&store, &request).await?;
    log::info!(
        target: "tidings::stream",
        lists = request.lists.as_ref().map_or(0, Vec::len), resume_from = start.cursor,
        resync = start.resync.is_some();
        "stream opened at {} ({} lists{}{})",
        start.cursor,
        request.lists.as_ref().map_or(0, Vec::len),
        if request.resume_from.is_some() { ", resumed" } else { "" },
        if start.resync.is_some() { ", resync" } else { "" }
    );
    let user = request.user;
    let mut audience = Audience::new(request.lists.clone(), access);
    let expiry = request.expires_at.map(|exp| {
        let left = exp.saturating_sub(crate::store::now_secs());
        tokio::time::sleep(std::time::Duration::from_secs(left))
    });

    let connected = Connected {
        server_version: env!("CARGO_PKG_VERSION").into(),
        last_event_id: start.head,
        resume_from: start.cursor,
        heartbeat_secs: options.heartbeat_secs,
        epoch: store.epoch().to_owned(),
    };
    // The `id:` of `connected` is where the stream starts, so a browser that reconnects
    // before the first change still sends a `Last-Event-ID` that loses nothing.
    let mut hello = BytesMut::from(
        &sse::encode_control(
            Some(start.cursor),
            Connected::TYPE,
            &connected,
            Some(options.retry_ms),
        )[..],
    );
    crate::metrics::handles().streams_opened.increment(1);
    if let Some((requested, reason)) = start.resync {
        crate::metrics::resync(match reason {
            ResyncReason::Pruned => "pruned",
            ResyncReason::Ahead => "ahead",
            ResyncReason::Epoch => "epoch",
        });
        hello.extend_from_slice(&sse::encode_control(
            Some(start.cursor),
            Resync::TYPE,
            &Resync {
                last_event_id: start.cursor,
                requested,
                reason,
                epoch: store.epoch().to_owned(),
            },
            None,
        ));
    }

    // Counted from here; told who else is there as far as this process knows (a change,
    // this stream's own arrival included, follows as a `presence` message).
    let present = request.lists.as_deref().map(|lists| presence.join(lists, user.as_deref()));
    for list in request.lists.iter().flatten() {
        if let Some(message) = presence.current(list) {
            hello.extend_from_slice(&crate::presence::frame(&message));
        }
    }

    let ended = Arc::new(AtomicU8::new(Ended::ClientLeft as u8));
    let end_reason = ended.clone();
    let log = Closing {
        opened: Instant::now(),
        ended: ended.clone(),
        resumed: request.resume_from.is_some(),
        user: user.clone(),
    };
    let events = rocket::response::stream::stream! {
        let _slot = slot;
        let _present = present;
        let _log = log;
        yield hello.freeze();
        let mut cursor = start.cursor;
        let mut catching_up = true;
        let mut page_rows = REPLAY_PAGE.events;
        loop {
            if catching_up {
                // Boxed: an idle stream then does not carry the query's state inline.
                let lists = audience.lists();
                let read = Page { events: page_rows, ..REPLAY_PAGE };
                let query = Box::pin(store.events_after(cursor, lists, user.as_deref(), read));
                let page = match query.await {
                    Ok(page) => page,
                    Err(e) => {
                        log::warn!("ending a stream at {cursor}: {e}");
                        ended.store(Ended::Database as u8, Ordering::Release);
                        break;
                    }
                };
                // A short page is the end of the log (a page cut by bytes is not).
                let bytes: usize = page.iter().map(|event| event.data.len()).sum();
                catching_up = page.len() == page_rows as usize || bytes >= REPLAY_PAGE.bytes as usize;
                page_rows = if catching_up { next_page_rows(page.len()) } else { REPLAY_PAGE.events };
                // One buffer per page: a catch-up is a few large writes, not many small. The
                // page itself is gone before the buffer is handed on.
                let batch = {
                    let mut batch = Batch::default();
                    let mut admitted = 0;
                    for event in &page {
                        if audience.admits_logged(event) {
                            batch.push(sse::event_frame(event));
                            admitted += 1;
                        }
                    }
                    let counters = crate::metrics::handles();
                    counters.replayed.increment(page.len() as u64);
                    counters.deliveries.increment(admitted);
                    if let Some(last) = page.last() {
                        cursor = last.id;
                    }
                    batch.take()
                };
                drop(page);
                if let Some(batch) = batch {
                    // Zero-copy slices of the one buffer.
                    for start in (0..batch.len()).step_by(REPLAY_CHUNK_BYTES) {
                        yield batch.slice(start..batch.len().min(start + REPLAY_CHUNK_BYTES));
                    }
                }
                continue;
            }
            // Wait for one envelope, then take whatever else is already waiting: a client that
            // is behind gets one write for many events instead of one write each.
            let mut batch = Batch::default();
            let mut received = Some(rx.recv().await);
            let mut closed = false;
            let mut changes = 0;
            while let Some(result) = received.take() {
                match result {
                    Ok(envelope) => {
                        if accept(&envelope, &mut cursor, &mut audience) {
                            batch.push(envelope.frame.clone());
                            changes += u64::from(envelope.id.is_some());
                        }
                    }
                    // Fell behind the broadcast buffer: what was skipped is in the log.
                    Err(RecvError::Lagged(_)) => {
                        catching_up = true;
                        crate::metrics::handles().lag_catchups.increment(1);
                    }
                    Err(RecvError::Closed) => closed = true,
                }
                if !catching_up && !closed && batch.len() < MAX_BATCH_BYTES {
                    received = match rx.try_recv() {
                        Ok(envelope) => Some(Ok(envelope)),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                    };
                }
            }
            if changes > 0 {
                crate::metrics::handles().deliveries.increment(changes);
            }
            if let Some(bytes) = batch.take() {
                yield bytes;
            }
            if closed {
                break;
            }
        }
    };
    let end = async move {
        let why = match expiry {
            // The token expired: the client reconnects with a fresh one.
            Some(expiry) => tokio::select! {
                _ = until => Ended::Shutdown,
                _ = expiry => Ended::TokenExpired,
            },
            None => {
                until.await;
                Ended::Shutdown
            }
        };
        end_reason.store(why as u8, Ordering::Release);
    };
    Ok(events.take_until(end))
}

/// Why a stream ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Ended {
    /// The client went away (the default: nothing else said otherwise).
    ClientLeft,
    /// The server is shutting down.
    Shutdown,
    /// The user's token expired.
    TokenExpired,
    /// The database failed while the stream replayed from it.
    Database,
}

impl Ended {
    fn from_u8(n: u8) -> Self {
        match n {
            1 => Ended::Shutdown,
            2 => Ended::TokenExpired,
            3 => Ended::Database,
            _ => Ended::ClientLeft,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Ended::ClientLeft => "client_left",
            Ended::Shutdown => "shutdown",
            Ended::TokenExpired => "token_expired",
            Ended::Database => "database_error",
        }
    }
}

/// Writes the stream's closing log line when the stream is dropped, however it ends.
struct Closing {
    opened: Instant,
    ended: Arc<AtomicU8>,
    resumed: bool,
    user: Option<String>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        let reason = Ended::from_u8(self.ended.load(Ordering::Acquire)).as_str();
        crate::metrics::stream_closed(reason);
        let secs = (self.opened.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let user = self.user.as_deref().unwrap_or("-");
        log::info!(
            target: "tidings::stream",
            reason = reason, seconds = secs, resumed = self.resumed, user = user;
            "stream closed after {secs}s ({reason}, user {user})"
        );
    }
}

/// A `text/event-stream` response whose body is a stream of SSE bytes, each item written in
/// chunks of up to [`CHUNK_BYTES`] (see the module's "Chunk sizes").
pub struct SseBody<S>(pub S);

impl<'r, S> Responder<'r, 'r> for SseBody<S>
where
    S: Stream<Item = Bytes> + Send + 'r,
{
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'r> {
        Response::build()
            .header(ContentType::EventStream)
            .raw_header("Cache-Control", "no-cache, no-transform")
            .raw_header("X-Accel-Buffering", "no")
            .streamed_body(ReaderStream::from(self.0.map(Cursor::new)))
            .max_chunk_size(CHUNK_BYTES)
            .ok()
    }
}
