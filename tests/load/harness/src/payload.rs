//! The benchmark's event payload: the todo title carries the publisher's sequence number and
//! the intended publish time, so every receiver can check order and measure latency against
//! the same clock (`CLOCK_REALTIME` of this machine) without any side channel.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, from the clock both publisher and receivers read.
pub fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What a title is padded with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fill {
    /// `x`: one byte per character.
    #[default]
    Ascii,
    /// Japanese text and an emoji, 3.1 bytes per character on average in UTF-8 (which the
    /// server stores and sends unescaped): the largest events a title of at most 500
    /// characters makes.
    Wide,
}

impl Fill {
    fn chars(self) -> &'static str {
        match self {
            Fill::Ascii => "x",
            Fill::Wide => "長い題名のテキスト🙂お知らせ🙂",
        }
    }
}

/// The title of benchmark todo number `seq`, intended to be published at `at_nanos`,
/// padded with `pad` characters of `fill` (to make events larger when a scenario needs it).
pub fn title(seq: u64, at_nanos: u64, pad: usize, fill: Fill) -> String {
    let mut title = format!("b {seq} {at_nanos}");
    if pad > 0 {
        title.push(' ');
        title.extend(fill.chars().chars().cycle().take(pad));
    }
    title
}

/// The `(seq, at_nanos)` of a benchmark todo, found in the JSON `data` of its event
/// (`…"title":"b <seq> <at_nanos>…`). A scan instead of a JSON parse: the generator handles
/// hundreds of thousands of deliveries a second on one core.
pub fn parse(data: &[u8]) -> Option<(u64, u64)> {
    const KEY: &[u8] = b"\"title\":\"b ";
    let start = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &data[start..];
    let (seq, used) = leading_number(rest)?;
    let rest = rest.get(used..)?.strip_prefix(b" ")?;
    let (at, _) = leading_number(rest)?;
    Some((seq, at))
}

fn leading_number(bytes: &[u8]) -> Option<(u64, usize)> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let n = bytes[..digits].iter().fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
    Some((n, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_event_json() {
        let t = title(42, 1_700_000_000_123_456_789, 3, Fill::Ascii);
        assert_eq!(t, "b 42 1700000000123456789 xxx");
        let data =
            format!(r#"{{"type":"todo_created","todo":{{"id":"u","title":"{t}","done":false}}}}"#);
        assert_eq!(parse(data.as_bytes()), Some((42, 1_700_000_000_123_456_789)));
        let unpadded = format!(r#"{{"todo":{{"title":"{}"}}}}"#, title(7, 9, 0, Fill::Ascii));
        assert_eq!(parse(unpadded.as_bytes()), Some((7, 9)));
    }

    #[test]
    fn wide_padding_is_counted_in_characters_and_stays_parseable() {
        let t = title(3, 5, 460, Fill::Wide);
        assert_eq!(t.chars().count(), "b 3 5 ".len() + 460);
        assert!(t.len() > 1_400, "{} bytes", t.len());
        let data = format!(r#"{{"todo":{{"title":"{t}"}}}}"#);
        assert_eq!(parse(data.as_bytes()), Some((3, 5)));
    }

    #[test]
    fn other_titles_are_not_benchmark_events() {
        assert_eq!(parse(br#"{"todo":{"title":"Buy milk"}}"#), None);
        assert_eq!(parse(br#"{"todo":{"title":"b x 1"}}"#), None);
        assert_eq!(parse(br#"{"type":"heartbeat"}"#), None);
    }
}
