//! Server-Sent Events framing: the only place that knows the wire format of a message.
//!
//! A message is framed once into one [`Bytes`] (`retry:`, `id:`, `event:`, `data:` lines and
//! the blank line that ends it); every stream that sends it writes those same bytes.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::store::LoggedEvent;

/// A comment line: never dispatched to JavaScript. Written to idle streams so a connection
/// whose client went away is noticed (the write fails) and its slot freed.
pub const PROBE: &[u8] = b":\n";

/// Frame one SSE message. `data` must be a single line, which compact JSON always is; a line
/// break in it would end the message early, so it is replaced by a space.
pub fn encode(id: Option<u64>, event: &str, data: &str, retry_ms: Option<u64>) -> Bytes {
    let mut out = String::with_capacity(data.len() + event.len() + 48);
    if let Some(retry) = retry_ms {
        let _ = writeln!(out, "retry: {retry}");
    }
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    if data.contains(['\n', '\r']) {
        out.extend(data.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
    } else {
        out.push_str(data);
    }
    out.push_str("\n\n");
    Bytes::from(out)
}

/// Frame a serializable control message (`connected`, `heartbeat`, `resync`) under its name.
pub fn encode_control<T: serde::Serialize>(
    id: Option<u64>,
    event: &str,
    body: &T,
    retry_ms: Option<u64>,
) -> Bytes {
    // Our control types are plain structs of strings and numbers: serializing cannot fail.
    let data = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    encode(id, event, &data, retry_ms)
}

/// The frame of a logged change.
pub fn event_frame(event: &LoggedEvent) -> Bytes {
    encode(Some(event.id), &event.kind, &event.data, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_protocol::Heartbeat;

    #[test]
    fn frames_are_one_sse_message() {
        let bytes = encode(Some(7), "todo_created", r#"{"type":"todo_created"}"#, Some(2100));
        assert_eq!(
            &bytes[..],
            b"retry: 2100\nid: 7\nevent: todo_created\ndata: {\"type\":\"todo_created\"}\n\n"
        );
        let heartbeat = encode_control(None, Heartbeat::TYPE, &Heartbeat {}, None);
        assert_eq!(&heartbeat[..], b"event: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n");
    }

    #[test]
    fn a_line_break_in_data_cannot_end_the_message() {
        let bytes = encode(None, "x", "a\nid: 9\r\nb", None);
        assert_eq!(&bytes[..], b"event: x\ndata: a id: 9  b\n\n");
    }
}
