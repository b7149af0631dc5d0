//! Just enough HTTP/1.1 over raw TCP for the generator: open an event stream (with a chosen
//! source address, so connections spread over many loopback addresses and their ephemeral
//! ports), and a keep-alive connection for the REST calls.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sse::Chunked;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The parts of a response head the generator looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, lower-cased.
    pub content_type: String,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// Whether the body is `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Length of the head including its blank line.
    pub len: usize,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parse a response head at the start of `buf`; `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(invalid("response head too large"))
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("non-UTF-8 head"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line `{status_line}`")))?;
    let mut head = Head {
        status,
        content_type: String::new(),
        content_length: None,
        chunked: false,
        len: end + 4,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            head.content_type = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(head))
}

/// Read from `stream` into `buf` until a whole response head is there.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Head> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An open event stream: the socket, and body bytes that arrived with the head.
#[derive(Debug)]
pub struct EventStream {
    /// The connection, positioned after `leftover`.
    pub stream: TcpStream,
    /// Body bytes read together with the head.
    pub leftover: Vec<u8>,
    /// Whether the body is chunked (otherwise it runs until the connection closes).
    pub chunked: bool,
}

/// Connect from `source` to `server` and open `GET /api/events?list=<list>` (every list when
/// `list` is empty), resuming after
/// `last_event_id` if given. `recv_buffer` shrinks the socket's receive buffer (slow clients).
pub async fn open_event_stream(
    source: Ipv4Addr,
    server: SocketAddr,
    list: &str,
    last_event_id: Option<u64>,
    recv_buffer: Option<u32>,
) -> io::Result<EventStream> {
    let socket = TcpSocket::new_v4()?;
    // Reuse ports whose earlier connection is in TIME_WAIT from a previous run.
    socket.set_reuseaddr(true)?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let mut stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let query = if list.is_empty() { String::new() } else { format!("?list={list}") };
    let request = format!(
        "GET /api/events{query} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n{resume}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let head = read_head(&mut stream, &mut buf).await?;
    if head.status != 200 || !head.content_type.starts_with("text/event-stream") {
        return Err(invalid(format!(
            "event stream answered {} `{}`",
            head.status, head.content_type
        )));
    }
    buf.drain(..head.len);
    Ok(EventStream { stream, leftover: buf, chunked: head.chunked })
}

/// A keep-alive connection for REST calls.
#[derive(Debug)]
pub struct Conn {
    server: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect to `server`.
    pub async fn open(server: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { server, stream, buf: Vec::with_capacity(4096) })
    }

    /// Connect to `server` from `local` (another loopback address is another client to a
    /// server without access control).
    pub async fn open_from(server: SocketAddr, local: std::net::IpAddr) -> io::Result<Conn> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((local, 0).into())?;
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { server, stream, buf: Vec::with_capacity(4096) })
    }

    /// Send one request and read the whole response: `(status, body)`.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let body = json.unwrap_or("");
        let content = if json.is_some() {
            format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
        } else {
            String::new()
        };
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n{content}\r\n{body}", self.server);
        self.stream.write_all(request.as_bytes()).await?;
        self.buf.clear();
        let head = read_head(&mut self.stream, &mut self.buf).await?;
        let mut body = self.buf.split_off(head.len);
        if head.chunked {
            let mut decoder = Chunked::default();
            let mut out = Vec::new();
            let mut pending = std::mem::take(&mut body);
            loop {
                let ended = decoder
                    .feed(&pending, &mut |b| out.extend_from_slice(b))
                    .map_err(|e| invalid(e.to_string()))?;
                if ended {
                    return Ok((head.status, out));
                }
                pending.clear();
                pending.resize(4096, 0);
                let n = self.stream.read(&mut pending).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-body"));
                }
                pending.truncate(n);
            }
        }
        let len = head.content_length.unwrap_or(0);
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-body"));
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok((head.status, body))
    }
}

/// `GET /health` on a fresh connection: the server's `(open_streams, last_event_id)`.
pub async fn health(server: SocketAddr) -> io::Result<(u64, u64)> {
    let (status, body) = Conn::open(server).await?.request("GET", "/health", None).await?;
    if status != 200 {
        return Err(invalid(format!("/health answered {status}")));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    let field = |name: &str| v.get(name).and_then(serde_json::Value::as_u64);
    match (field("open_streams"), field("last_event_id")) {
        (Some(open), Some(last)) => Ok((open, last)),
        _ => Err(invalid("/health lacks open_streams or last_event_id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_type, "text/event-stream");
        assert!(head.chunked);
        assert_eq!(&raw[head.len..], b"5\r\n");
        assert_eq!(parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 2").unwrap(), None);
        let head =
            parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}").unwrap().unwrap();
        assert_eq!((head.status, head.content_length, head.chunked), (201, Some(2), false));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }
}
