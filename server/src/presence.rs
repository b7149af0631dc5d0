//! Presence: who has a stream open that follows a list.
//!
//! A stream is present on the lists it names (`?list=…`), as its user (with access control)
//! or anonymously. Each process counts its own streams per list and user ([`Present`] is a
//! stream's share, given back when the stream ends) and one task per process, [`run`],
//! keeps the database in step: it writes the counts that changed, beats the process's
//! `seen_at`, reads what every live process holds on the lists this process's streams
//! follow, and broadcasts a `presence` message for each list whose answer changed, at most
//! once a second per list. A process that dies stops beating: after [`ALIVE_MS`] its rows
//! no longer count, and the next read drops its users.
//!
//! **Why the database, and not `NOTIFY` or process-to-process messages.** The counts must be
//! right across processes that come and go; rows with a heartbeat give that with the tables
//! and connections the server already has, on SQLite and PostgreSQL alike. The price is
//! polling: a process whose streams follow lists reads their presence every [`POLL`] (one
//! query for all of them), and writes one small transaction per change batch and per
//! [`BEAT`]. Joins and leaves between two syncs cost nothing but a counter; a stream costs a
//! map entry per list it names. Messages go through the hub like changes (each passes every
//! stream's receiver), at most [`MAX_MESSAGES_PER_SYNC`] per sync so that a burst of joins
//! never pushes streams past the broadcast buffer. BENCHMARKS.md ("Presence") measures it.
//!
//! A stream that follows every list is counted on none (it is a sidebar or a dashboard, not a
//! person looking at one list; counting it everywhere would make every open tab present on
//! every list and every join a change of all of them), but it receives the `presence`
//! messages of the lists it may read.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_protocol::Presence as PresenceMessage;
use tokio::sync::Notify;

use crate::audience::Scope;
use crate::hub::{Envelope, Hub};
use crate::sse;
use crate::store::{now_ms, PresenceCount, Store};

/// How often a process with followed lists reads their presence.
pub const POLL: Duration = Duration::from_millis(500);
/// How often a process marks itself alive.
pub const BEAT: Duration = Duration::from_secs(2);
/// How long after its last beat a process's streams still count: three beats.
pub const ALIVE_MS: i64 = 6_000;
/// How long after its last beat a dead process's rows are deleted.
pub const FORGET_MS: i64 = 60_000;
/// The shortest time between two `presence` messages of one list.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// The shortest time between two syncs: joins and leaves within it go out in one write (a
/// commit, with its fsync), so streams that come and go cost at most four a second however
/// many there are (BENCHMARKS.md, "Presence": with 50 ms, 50 joins a second cost five times
/// as much CPU).
const SETTLE: Duration = Duration::from_millis(250);
/// `presence` messages broadcast per sync at most; lists past it wait for the next sync. Every
/// message passes every stream's receiver, and a burst longer than the broadcast buffer
/// (`TIDINGS_BROADCAST_CAPACITY`, 1024) would make every stream lag and catch up from the log:
/// 10 000 streams reconnecting to lists of their own would otherwise do exactly that.
pub const MAX_MESSAGES_PER_SYNC: usize = 256;

/// Who is present on one list: the message, from the counts read for it.
pub fn of_counts<'a>(
    list: &str,
    counts: impl IntoIterator<Item = &'a PresenceCount>,
) -> PresenceMessage {
    let mut users = Vec::new();
    let mut anonymous = 0;
    for count in counts.into_iter().filter(|c| c.list == list && c.streams > 0) {
        if count.user.is_empty() {
            anonymous += count.streams;
        } else {
            users.push(count.user.clone());
        }
    }
    users.sort();
    users.dedup();
    PresenceMessage { list_id: list.to_owned(), users, anonymous }
}

/// This process's presence: its streams' counts and what it last told them. Kept in managed
/// state; cloning shares it.
#[derive(Debug, Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This process's name in the database: random, so a restarted process is a new one.
    process: String,
    state: Mutex<State>,
    /// Wakes [`run`] when a count changed.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Streams of this process per (list, user).
    counts: HashMap<(String, String), u64>,
    /// Streams of this process per list: the lists whose presence it reads.
    followed: HashMap<String, u64>,
    /// Counts changed since they were last written.
    dirty: HashSet<(String, String)>,
    /// Per followed list: the presence last broadcast, and when.
    shown: HashMap<String, (PresenceMessage, Instant)>,
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

impl Presence {
    /// A process's presence, under a new random process name.
    pub fn new() -> Self {
        Presence {
            inner: Arc::new(Inner {
                process: uuid::Uuid::new_v4().simple().to_string(),
                state: Mutex::default(),
                changed: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a stream of `user` (`None`: anonymous) on `lists` until the returned share is
    /// dropped.
    pub fn join(&self, lists: &[String], user: Option<&str>) -> Present {
        let user = user.unwrap_or_default();
        let keys: Vec<(String, String)> =
            lists.iter().map(|list| (list.clone(), user.to_owned())).collect();
        if keys.is_empty() {
            return Present { presence: self.clone(), keys };
        }
        {
            let mut state = self.state();
            for key in &keys {
                *state.counts.entry(key.clone()).or_default() += 1;
                *state.followed.entry(key.0.clone()).or_default() += 1;
                state.dirty.insert(key.clone());
            }
        }
        self.inner.changed.notify_one();
        Present { presence: self.clone(), keys }
    }

    fn leave(&self, keys: &[(String, String)]) {
        {
            let mut state = self.state();
            for key in keys {
                if let Some(n) = state.counts.get_mut(key) {
                    *n -= 1;
                    if *n == 0 {
                        state.counts.remove(key);
                    }
                }
                if let Some(n) = state.followed.get_mut(&key.0) {
                    *n -= 1;
                    if *n == 0 {
                        state.followed.remove(&key.0);
                        state.shown.remove(&key.0);
                    }
                }
                state.dirty.insert(key.clone());
            }
        }
        self.inner.changed.notify_one();
    }

    /// The presence last broadcast for `list`, for a stream that just opened on it.
    pub fn current(&self, list: &str) -> Option<PresenceMessage> {
        self.state().shown.get(list).map(|(message, _)| message.clone())
    }

    /// Write the changed counts (and beat, when `beat`): `Ok(false)` when there was nothing
    /// to write.
    async fn write(&self, store: &Store, beat: bool) -> crate::store::Result<bool> {
        let counts: Vec<PresenceCount> = {
            let mut state = self.state();
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .map(|(list, user)| {
                    let streams = state.counts.get(&(list.clone(), user.clone())).copied();
                    PresenceCount { list, user, streams: streams.unwrap_or(0) }
                })
                .collect()
        };
        if counts.is_empty() && !beat {
            return Ok(false);
        }
        let kept = counts.clone();
        match store.publish_presence(&self.inner.process, counts, now_ms() - FORGET_MS).await {
            Ok(()) => Ok(true),
            Err(e) => {
                // Written next time, with whatever changed meanwhile.
                let mut state = self.state();
                state.dirty.extend(kept.into_iter().map(|c| (c.list, c.user)));
                Err(e)
            }
        }
    }

    /// Read the presence of the followed lists and broadcast what changed (each list at
    /// most once per [`MIN_GAP`]).
    async fn read(&self, store: &Store, hub: &Hub) -> crate::store::Result<()> {
        let lists: Vec<String> = self.state().followed.keys().cloned().collect();
        if lists.is_empty() {
            return Ok(());
        }
        let counts = store.presence(&lists, now_ms() - ALIVE_MS).await?;
        let mut by_list: HashMap<&str, Vec<&PresenceCount>> = HashMap::new();
        for count in &counts {
            by_list.entry(&count.list).or_default().push(count);
        }
        let now = Instant::now();
        let mut changed = Vec::new();
        {
            let mut state = self.state();
            for list in &lists {
                if changed.len() == MAX_MESSAGES_PER_SYNC {
                    break; // the rest stay different from what was shown: next sync
                }
                if !state.followed.contains_key(list) {
                    continue; // every stream on it left during the read
                }
                let message =
                    of_counts(list, by_list.get(list.as_str()).into_iter().flatten().copied());
                let due = match state.shown.get(list) {
                    Some((shown, _)) if *shown == message => false,
                    Some((_, at)) => now.duration_since(*at) >= MIN_GAP,
                    None => true,
                };
                if due {
                    state.shown.insert(list.clone(), (message.clone(), now));
                    changed.push(message);
                }
            }
        }
        for message in changed {
            crate::metrics::handles().presence_messages.increment(1);
            hub.publish(envelope(message));
        }
        Ok(())
    }
}

/// The SSE frame of a presence message: no `id:`.
pub fn frame(message: &PresenceMessage) -> Bytes {
    sse::encode_control(None, PresenceMessage::TYPE, message, None)
}

/// The envelope of a presence message: to the streams that follow its list (and may read it).
pub fn envelope(message: PresenceMessage) -> Envelope {
    let frame = frame(&message);
    Envelope {
        id: None,
        scope: Scope::List { list: message.list_id, moved_from: None },
        change: None,
        frame,
    }
}

/// A stream's share of the presence counts; dropping it gives it back.
#[derive(Debug)]
pub struct Present {
    presence: Presence,
    keys: Vec<(String, String)>,
}

impl Drop for Present {
    fn drop(&mut self) {
        if !self.keys.is_empty() {
            self.presence.leave(&self.keys);
        }
    }
}

/// Keep this process's presence in the database and its streams told, until `until`
/// resolves; then forget this process's rows.
pub async fn run(presence: Presence, store: Store, hub: Hub, until: impl Future<Output = ()>) {
    tokio::pin!(until);
    let mut last_beat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut until => break,
            _ = presence.inner.changed.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        // A process that holds or held rows beats; one that never had a stream need not.
        let beat = last_beat.is_some_and(|at| at.elapsed() >= BEAT)
            || (last_beat.is_none() && !presence.state().dirty.is_empty());
        match presence.write(&store, beat).await {
            Ok(true) => last_beat = Some(Instant::now()),
            Ok(false) => {}
            Err(e) => log::warn!("presence: cannot write this process's streams ({e})"),
        }
        if let Err(e) = presence.read(&store, &hub).await {
            log::warn!("presence: cannot read who is on the followed lists ({e})");
        }
        tokio::time::sleep(SETTLE).await;
    }
    if last_beat.is_some() {
        if let Err(e) = store.forget_presence(&presence.inner.process).await {
            log::warn!("presence: cannot forget this process's streams ({e})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(list: &str, user: &str, streams: u64) -> PresenceCount {
        PresenceCount { list: list.into(), user: user.into(), streams }
    }

    #[test]
    fn users_are_named_once_and_anonymous_streams_counted() {
        let counts = [
            count("a", "bob", 2),
            count("a", "alice", 1),
            count("b", "carol", 1),
            count("a", "", 3),
        ];
        let message = of_counts("a", &counts);
        assert_eq!(message.users, ["alice", "bob"]);
        assert_eq!(message.anonymous, 3);
        assert_eq!(
            of_counts("c", &counts),
            PresenceMessage { list_id: "c".into(), ..Default::default() }
        );
    }

    #[test]
    fn a_presence_message_has_no_id() {
        let message =
            PresenceMessage { list_id: "work".into(), users: vec!["bob".into()], anonymous: 0 };
        let frame = envelope(message).frame;
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("event: presence\n"), "{text}");
        assert!(!text.lines().any(|line| line.starts_with("id:")), "{text}");
    }

    #[test]
    fn shares_are_counted_and_given_back() {
        let presence = Presence::new();
        let lists = ["a".to_owned(), "b".to_owned()];
        let one = presence.join(&lists, Some("bob"));
        let two = presence.join(&lists[..1], Some("bob"));
        assert_eq!(presence.state().counts[&("a".into(), "bob".into())], 2);
        assert_eq!(presence.state().followed["a"], 2);
        drop(one);
        assert_eq!(presence.state().counts[&("a".into(), "bob".into())], 1);
        assert!(!presence.state().followed.contains_key("b"));
        drop(two);
        assert!(presence.state().counts.is_empty() && presence.state().followed.is_empty());
        assert_eq!(presence.state().dirty.len(), 2, "both keys are written as gone");
    }
}
