//! A minimal, incremental reader of `text/event-stream` response bodies: an HTTP/1.1 chunked
//! decoder and an SSE message parser.
//!
//! Both are fed whatever a socket read returned, so a message or a chunk header may be split
//! anywhere. In the steady state (one complete message per read) neither copies nor
//! allocates: a line that lies wholly inside the input is parsed in place. Only what a
//! benchmark needs is kept: `id`, `event`, `data`; `retry` and comments are skipped. Lines end
//! in `\n` or `\r\n` (all three servers under test use `\n`); a lone `\r` line ending, legal
//! in SSE, is not supported.

use std::fmt;

/// A malformed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub &'static str);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed response body: {}", self.0)
    }
}

impl std::error::Error for BodyError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Reading the hexadecimal size of the next chunk.
    #[default]
    Size,
    /// Skipping a chunk extension up to the end of the size line.
    Extension,
    /// Seen the `\r` after the size; expecting `\n`.
    SizeLf,
    /// Inside a chunk's data.
    Data,
    /// After a chunk's data; expecting `\r\n`.
    DataCr,
    /// Seen the `\r` after the data; expecting `\n`.
    DataLf,
    /// The last (empty) chunk arrived: the body is over.
    Ended,
}

/// Decoder of an HTTP/1.1 `Transfer-Encoding: chunked` body.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    remaining: u64,
}

impl Chunked {
    /// Decode `input`, passing each run of body bytes to `out`. Returns `true` once the
    /// terminating empty chunk has been read (the server ended the response).
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<bool, BodyError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => {
                    let digit = match b {
                        b'0'..=b'9' => Some(b - b'0'),
                        b'a'..=b'f' => Some(b - b'a' + 10),
                        b'A'..=b'F' => Some(b - b'A' + 10),
                        _ => None,
                    };
                    match (digit, b) {
                        (Some(d), _) => {
                            if self.remaining > u64::MAX >> 8 {
                                return Err(BodyError("chunk size overflows"));
                            }
                            self.remaining = self.remaining * 16 + u64::from(d);
                        }
                        (None, b';' | b' ' | b'\t') => self.state = ChunkState::Extension,
                        (None, b'\r') => self.state = ChunkState::SizeLf,
                        (None, b'\n') => self.end_of_size_line(),
                        _ => return Err(BodyError("bad character in chunk size")),
                    }
                    i += 1;
                }
                ChunkState::Extension => {
                    if b == b'\n' {
                        self.end_of_size_line();
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError("chunk size line not ended by CRLF"));
                    }
                    self.end_of_size_line();
                    i += 1;
                }
                ChunkState::Data => {
                    let take = (input.len() - i).min(self.remaining as usize);
                    out(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    self.state = match b {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => ChunkState::Size,
                        _ => return Err(BodyError("chunk data longer than its size")),
                    };
                    i += 1;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError("chunk data not ended by CRLF"));
                    }
                    self.state = ChunkState::Size;
                    i += 1;
                }
                // Trailers after the last chunk are of no interest: the stream is over.
                ChunkState::Ended => return Ok(true),
            }
        }
        Ok(self.state == ChunkState::Ended)
    }

    fn end_of_size_line(&mut self) {
        self.state = if self.remaining == 0 { ChunkState::Ended } else { ChunkState::Data };
    }
}

/// One dispatched SSE message, borrowed from the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The `id:` field of this message, if it had one that is a decimal integer.
    pub id: Option<u64>,
    /// The `event:` field (`message` when absent).
    pub event: &'a [u8],
    /// The `data:` lines, joined by `\n`.
    pub data: &'a [u8],
}

/// Incremental parser of an SSE body into [`Message`]s.
#[derive(Debug, Default)]
pub struct SseParser {
    /// A line split across inputs, without its end.
    partial: Vec<u8>,
    id: Option<u64>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// Parse `input`, calling `on_message` for every message it completes.
    pub fn feed(&mut self, mut input: &[u8], on_message: &mut impl FnMut(Message<'_>)) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&input[..end], on_message);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..end]);
                self.line(&line, on_message);
                // Keep the allocation for the next split line.
                line.clear();
                self.partial = line;
            }
            input = &input[end + 1..];
        }
        self.partial.extend_from_slice(input);
    }

    fn line(&mut self, line: &[u8], on_message: &mut impl FnMut(Message<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(on_message);
            return;
        }
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"id" => self.id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            _ => {} // `retry` and unknown fields
        }
    }

    fn dispatch(&mut self, on_message: &mut impl FnMut(Message<'_>)) {
        // As in the EventSource algorithm, a message without data is not dispatched.
        if self.has_data {
            let event: &[u8] = if self.event.is_empty() { b"message" } else { &self.event };
            on_message(Message { id: self.id, event, data: &self.data });
        }
        self.id = None;
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of a message, for assertions.
    #[derive(Debug, PartialEq, Eq)]
    struct Owned(Option<u64>, String, String);

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<Owned> {
        let mut parser = SseParser::default();
        let mut got = Vec::new();
        for part in body.chunks(piece) {
            parser.feed(part, &mut |m| {
                got.push(Owned(
                    m.id,
                    String::from_utf8(m.event.to_vec()).unwrap(),
                    String::from_utf8(m.data.to_vec()).unwrap(),
                ))
            });
        }
        got
    }

    #[test]
    fn parses_messages_split_anywhere() {
        let body = b"retry: 2000\nid: 7\nevent: connected\ndata: {\"a\":1}\n\n: comment\n\n\
                     event: heartbeat\ndata: {}\n\nid:8\r\nevent:todo_created\r\ndata: x\r\n\r\n";
        let want = vec![
            Owned(Some(7), "connected".into(), "{\"a\":1}".into()),
            Owned(None, "heartbeat".into(), "{}".into()),
            Owned(Some(8), "todo_created".into(), "x".into()),
        ];
        for piece in 1..=body.len() {
            assert_eq!(parse_in_pieces(body, piece), want, "piece size {piece}");
        }
    }

    #[test]
    fn joins_data_lines_and_defaults_the_event_name() {
        let got = parse_in_pieces(b"data: a\ndata\ndata: b\n\nid: 3\n\n", 5);
        // The message with only an id has no data and is not dispatched.
        assert_eq!(got, vec![Owned(None, "message".into(), "a\n\nb".into())]);
    }

    #[test]
    fn ids_are_per_message_and_junk_ids_are_none() {
        let got = parse_in_pieces(b"id: x1\ndata: a\n\ndata: b\n\n", 64);
        assert_eq!(
            got,
            vec![
                Owned(None, "message".into(), "a".into()),
                Owned(None, "message".into(), "b".into())
            ]
        );
    }

    fn dechunk_in_pieces(body: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut decoder = Chunked::default();
        let mut out = Vec::new();
        let mut ended = false;
        for part in body.chunks(piece) {
            ended = decoder.feed(part, &mut |b| out.extend_from_slice(b)).unwrap();
        }
        (out, ended)
    }

    #[test]
    fn dechunks_split_anywhere() {
        let body = b"5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for piece in 1..=body.len() {
            let (out, ended) = dechunk_in_pieces(body, piece);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "piece size {piece}");
            assert!(ended);
        }
        let (out, ended) = dechunk_in_pieces(b"3\r\nabc\r\n", 2);
        assert_eq!((out.as_slice(), ended), (&b"abc"[..], false));
    }

    #[test]
    fn rejects_malformed_chunks() {
        let mut decoder = Chunked::default();
        assert!(decoder.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut decoder = Chunked::default();
        assert!(decoder.feed(b"2\r\nabc\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn chunked_sse_end_to_end() {
        let mut decoder = Chunked::default();
        let mut parser = SseParser::default();
        let mut ids = Vec::new();
        // A message split across two chunks, as a server may write it.
        let body = b"d\r\nid: 1\ndata: a\r\n2\r\n\n\n\r\n";
        decoder
            .feed(body, &mut |b| parser.feed(b, &mut |m| ids.push((m.id, m.data.to_vec()))))
            .unwrap();
        assert_eq!(ids, vec![(Some(1), b"a".to_vec())]);
    }
}
