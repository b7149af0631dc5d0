//! What the server writes to its log: one line per request (method, route, status, duration:
//! never a query string, so never a token), one per stream when it closes (how long it ran and
//! why it ended), and what goes wrong, as text or as JSON lines for log shippers
//! (`TIDINGS_LOG_FORMAT=json`).
//!
//! This logger replaces Rocket's: Rocket's own per-request lines print the whole URI (an
//! `access_token` included) and a line per 404; they are dropped here, and the request line
//! below says the same without the query.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-01T09:23:44.123Z INFO  request: GET /api/lists 200 1.2ms`
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg` and the line's fields.
    Json,
}

/// Install the logger for `level` and `format`; `false` when a logger was already installed
/// (then Rocket's, or a test harness's, stays).
pub fn init(level: LevelFilter, format: LogFormat) -> bool {
    let installed = log::set_boxed_logger(Box::new(Logger { format })).is_ok();
    if installed {
        log::set_max_level(level);
    }
    installed
}

/// The map of Rocket's log level setting (`ROCKET_LOG_LEVEL`) to a filter.
pub fn level_of(level: rocket::config::LogLevel) -> LevelFilter {
    match level {
        rocket::config::LogLevel::Critical => LevelFilter::Warn,
        rocket::config::LogLevel::Normal => LevelFilter::Info,
        rocket::config::LogLevel::Debug => LevelFilter::Debug,
        rocket::config::LogLevel::Off => LevelFilter::Off,
    }
}

struct Logger {
    format: LogFormat,
}

/// Whether a record is Rocket's per-request chatter, which the request line replaces: the
/// request with its full URI, the matched route, the outcome, an error line per 404, a
/// warning per client that closed its stream. Rocket's other warnings and errors stay.
fn is_rocket_request_chatter(record: &Record<'_>) -> bool {
    if !record.target().starts_with("rocket::server") {
        return false;
    }
    if record.level() > Level::Warn {
        return true;
    }
    let message = record.args().to_string();
    [
        "No matching routes",
        "Remote left",
        "Response succeeded",
        "Responding with",
        "Connection failed",
    ]
    .iter()
    .any(|m| message.starts_with(m))
}

/// Whether a record is from a crate too chatty below `warn` (hyper's connection errors on
/// every closed keep-alive, sqlx's slow-statement notes).
fn is_library_noise(record: &Record<'_>) -> bool {
    record.level() > Level::Warn
        && ["hyper", "h2", "sqlx", "tokio", "mio"]
            .iter()
            .any(|c| record.module_path().is_some_and(|m| m.starts_with(c)))
}

/// `access_token=…` anywhere in a message, cut out (should a URI reach a log line anyway).
fn redact(message: &str) -> std::borrow::Cow<'_, str> {
    const KEY: &str = "access_token=";
    if !message.contains(KEY) {
        return message.into();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        out.push_str("[redacted]");
        let after = &rest[at + KEY.len()..];
        let end = after.find(|c: char| c == '&' || c.is_whitespace()).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out.into()
}

/// Longest message a log line carries, in characters: a header of 50 000 characters quoted
/// in an error must not make a 50 KB line.
const MAX_MESSAGE_CHARS: usize = 2_000;

/// A message as a text line may carry it: one line, whatever a request put in it. Colour
/// sequences (Rocket's own, or a client's) are dropped; every other control character, a line
/// break included, is written as an escape, so no value can forge a line or drive the
/// terminal; and the message is cut at [`MAX_MESSAGE_CHARS`].
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    let plain = message.len() <= MAX_MESSAGE_CHARS && !message.contains(char::is_control);
    if plain {
        return message.into();
    }
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS * 2));
    let (mut rest, mut kept) = (message, 0);
    while let Some(c) = rest.chars().next() {
        if kept == MAX_MESSAGE_CHARS {
            out.push_str("… (cut)");
            break;
        }
        if let Some(len) = colour_len(rest) {
            rest = &rest[len..];
            continue;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        kept += 1;
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

/// The length of the colour sequence (`ESC [ digits and semicolons m`) `s` starts with.
fn colour_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\u{1b}[")?;
    let digits = body.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
    body[digits..].starts_with('m').then_some(2 + digits + 1)
}

/// RFC 3339 UTC with milliseconds, without a date library: days from the civil calendar.
fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, ms) = (now.as_secs(), now.subsec_millis());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Collects a record's key-values as JSON members.
struct Fields {
    out: String,
}

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let value = if let Some(n) = value.to_u64() {
            n.to_string()
        } else if let Some(b) = value.to_bool() {
            b.to_string()
        } else {
            match value.to_f64() {
                Some(x) if x.is_finite() => x.to_string(),
                _ => serde_json::Value::String(redact(&value.to_string()).into_owned()).to_string(),
            }
        };
        let key = serde_json::Value::String(key.as_str().to_owned());
        let _ = write!(self.out, ",{key}:{value}");
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        let launch = record.target().starts_with("rocket::launch");
        if !(self.enabled(record.metadata()) || launch)
            || is_rocket_request_chatter(record)
            || is_library_noise(record)
        {
            return;
        }
        let message = record.args().to_string();
        let message = one_line(&redact(&message)).into_owned();
        // Rocket marks continuation lines with a trailing `_` in the target.
        let target = record.target().trim_end_matches("::_");
        let mut fields = Fields { out: String::new() };
        if self.format == LogFormat::Json {
            let _ = record.key_values().visit(&mut fields);
        }
        let line = match self.format {
            // The message says it all for people; the fields are for machines.
            LogFormat::Text => {
                format!("{} {:<5} {target}: {message}\n", timestamp(), record.level())
            }
            LogFormat::Json => {
                let mut line = serde_json::json!({
                    "ts": timestamp(),
                    "level": record.level().as_str().to_ascii_lowercase(),
                    "target": target,
                    "msg": message,
                })
                .to_string();
                line.pop(); // the closing brace: the fields go before it
                line.push_str(&fields.out);
                line.push_str("}\n");
                line
            }
        };
        // Launch lines on stdout (where Rocket puts them, and where tools look for the
        // address), everything else on stderr.
        if launch {
            let _ = std::io::stdout().write_all(line.as_bytes());
        } else {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// When the request arrived, for its duration.
struct Arrived(Instant);

/// The fairing that writes the request line.
#[derive(Debug, Default)]
pub struct RequestLog;

#[rocket::async_trait]
impl Fairing for RequestLog {
    fn info(&self) -> Info {
        Info { name: "tidings request log", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| Arrived(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let took = req.local_cache(|| Arrived(Instant::now())).0.elapsed();
        // The route's pattern (`/api/lists/<list>/todos`) or, when none matched, the path:
        // never the query string.
        let route =
            req.route().map_or_else(|| req.uri().path().to_string(), |r| r.uri.path().to_string());
        let status = res.status().code;
        let ms = took.as_secs_f64() * 1000.0;
        let method = req.method().as_str();
        crate::metrics::request(method, route.clone(), status);
        log::info!(
            target: "tidings::request",
            method = method, route = route.as_str(), status = status, ms = (ms * 10.0).round() / 10.0;
            "{method} {route} {status} {ms:.1}ms"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_cut_out_of_messages() {
        assert_eq!(
            redact("GET /api/events?list=a&access_token=eyJ.x.y&last_event_id=3 done"),
            "GET /api/events?list=a&access_token=[redacted]&last_event_id=3 done"
        );
        assert_eq!(redact("access_token=abc"), "access_token=[redacted]");
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_message_is_one_bounded_line_without_control_characters() {
        let forged = "refused: unknown variant `x\n2026-01-01T00:00:00.000Z INFO  forged\u{1b}[2J`";
        let line = one_line(forged);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(line.contains("\\n2026-01-01") && line.contains("\\u{1b}[2J"), "{line}");
        assert_eq!(one_line("\u{1b}[1mlaunched\u{1b}[0m from here"), "launched from here");
        let long = "x".repeat(50_000);
        let long = one_line(&long);
        assert!(long.chars().count() < MAX_MESSAGE_CHARS + 10, "{} chars", long.len());
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let ts = timestamp();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
    }
}
