//! Frames and the chain rule: the one rule that decides whether a tab applies a change, which
//! is all the duplicate skipping and gap detection there is. Where frames come from, and
//! what a tab does about a gap, is the session's ([`crate::session`]).
//!
//! A change travels as a [`Frame`]: its id, and `prev`, an id such that the sender knows there
//! is no change (for these lists) between `prev` and `id`. On a tab's own stream `prev` is the
//! previous id on that stream: the server delivers every change after the resume point, in
//! order, and the `connected` message's `id:` is that resume point. A leader relays each
//! change it applied with `prev` = its cursor before it.
//!
//! The cursor is the id up to which this tab holds every change. A frame is applied iff
//! `prev <= cursor < id` ([`judge`]): at or below the cursor it is a duplicate; with
//! `prev > cursor` something between the two may be missing, so it is not applied and the tab
//! asks for the gap instead. Applying it sets the cursor to `id`, which keeps the invariant:
//! nothing lies in `(cursor, id)` that the tab has not applied. So no tab ever applies a
//! change twice or skips one, whatever mixture of streams reaches it: its own, a leader's,
//! two leaders' at once while a replaced one has not noticed yet, replays. The rule needs no
//! agreement between tabs, which is why handover is safe.

/// One change on its way to a tab's replica; see the module docs for `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// No change lies between this id and `id`, as far as the sender knows.
    pub prev: u64,
    /// The change's event id.
    pub id: u64,
    /// The SSE event name (a change type).
    pub name: String,
    /// The JSON data, as received.
    pub data: String,
}

/// What the chain rule says about a frame, for a tab at `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it: the tab then holds everything up to its id.
    Apply,
    /// The tab has it already.
    Duplicate,
    /// Something between the cursor and it may be missing: do not apply it.
    Gap,
}

/// The chain rule: apply `frame` iff `prev <= cursor < id`.
pub fn judge(cursor: u64, frame: &Frame) -> Verdict {
    if frame.id <= cursor {
        Verdict::Duplicate
    } else if frame.prev > cursor {
        Verdict::Gap
    } else {
        Verdict::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream complete after `start`: every id of `ours` above it, chained.
    fn stream(ours: &[u64], start: u64) -> Vec<Frame> {
        let mut prev = start;
        let mut frames = Vec::new();
        for &id in ours.iter().filter(|&&id| id > start) {
            frames.push(Frame { prev, id, name: String::new(), data: String::new() });
            prev = id;
        }
        frames
    }

    /// A tab at `cursor` hearing `frames` in this order: what it applies.
    fn apply(mut cursor: u64, frames: &[Frame]) -> (Vec<u64>, u64, bool) {
        let mut applied = Vec::new();
        let mut gap = false;
        for frame in frames {
            match judge(cursor, frame) {
                Verdict::Apply => {
                    applied.push(frame.id);
                    cursor = frame.id;
                }
                Verdict::Duplicate => {}
                Verdict::Gap => gap = true,
            }
        }
        (applied, cursor, gap)
    }

    /// The changes of our lists: the global ids skip those of other lists.
    const OURS: [u64; 8] = [2, 3, 5, 8, 9, 12, 13, 20];

    #[test]
    fn duplicates_are_skipped_and_gaps_refused() {
        let (applied, cursor, gap) = apply(5, &stream(&OURS, 3));
        assert_eq!(applied, [8, 9, 12, 13, 20], "3 and 5 are duplicates");
        assert_eq!(cursor, 20);
        assert!(!gap);
        // A stream that starts after the tab's cursor may lack something in between.
        let (applied, cursor, gap) = apply(3, &stream(&OURS, 9));
        assert_eq!(applied, Vec::<u64>::new());
        assert_eq!(cursor, 3);
        assert!(gap);
    }

    #[test]
    fn any_interleaving_of_streams_that_reach_back_far_enough_is_applied_exactly_once() {
        // Several leaders' streams (old ones, replaced ones, replays) reaching one tab in
        // every interleaving a simple generator makes: the tab applies each change after its
        // cursor once, in order, as long as each stream started at or below the cursor the
        // tab had when that stream's first frame reached it (a later start is a gap, refused).
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..2000 {
            let start_cursor = [0, 2, 3, 5, 9][next(5) as usize];
            let streams: Vec<Vec<Frame>> = (0..1 + next(3))
                .map(|_| stream(&OURS, start_cursor - start_cursor.min(next(3))))
                .collect();
            let mut positions = vec![0; streams.len()];
            let mut order = Vec::new();
            while positions.iter().zip(&streams).any(|(p, s)| *p < s.len()) {
                let i = next(streams.len() as u64) as usize;
                if positions[i] < streams[i].len() {
                    order.push(streams[i][positions[i]].clone());
                    positions[i] += 1;
                }
            }
            let (applied, _, gap) = apply(start_cursor, &order);
            let want: Vec<u64> = OURS.iter().copied().filter(|&id| id > start_cursor).collect();
            assert_eq!(applied, want, "from {start_cursor}: {order:?}");
            assert!(!gap);
        }
    }
}
