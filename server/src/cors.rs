//! CORS for the REST and stream endpoints: an allowed origin is echoed back (never `*`
//! together with credentials), and preflight requests are answered here. A refused origin is
//! logged (at most once a minute per origin): the browser tells only its console why a page
//! cannot reach the API, so the server says it where its operator looks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Header, Method, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{options, Response};

use crate::error::AppError;
use crate::store::Shown;

/// How often one refused origin is logged at most.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);
/// Refused origins remembered for [`REFUSAL_LOG_EVERY`]; past it the oldest are forgotten (a
/// flood of made-up origins costs log lines, not memory).
const REMEMBERED_REFUSALS: usize = 1024;

/// Which origins may call the API from a browser.
#[derive(Debug)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
    /// When each refused origin was last logged.
    refused: Mutex<HashMap<String, Instant>>,
}

impl CorsPolicy {
    /// The policy of the configured origins (`Settings::cors_origins`).
    pub fn new(origins: &[String]) -> Self {
        CorsPolicy {
            any: origins.iter().any(|o| o == "*"),
            origins: origins.iter().filter(|o| *o != "*").cloned().collect(),
            refused: Mutex::default(),
        }
    }

    /// Log that `origin` was refused, unless it was logged within [`REFUSAL_LOG_EVERY`];
    /// whether it was logged now.
    fn note_refused(&self, origin: &str, now: Instant) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.get(origin).is_some_and(|at| now.duration_since(*at) < REFUSAL_LOG_EVERY) {
            return false;
        }
        if refused.len() >= REMEMBERED_REFUSALS {
            refused.retain(|_, at| now.duration_since(*at) < REFUSAL_LOG_EVERY);
            if refused.len() >= REMEMBERED_REFUSALS {
                return false; // a flood: what is remembered is logged already
            }
        }
        refused.insert(origin.to_owned(), now);
        log::warn!(
            "refused a browser request from origin `{}`: to let pages of that origin call \
             this API, add it to TIDINGS_CORS_ORIGINS",
            Shown(origin)
        );
        true
    }

    /// Whether `origin` matches an exact entry, or a `scheme://host:*` entry with any port.
    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|allowed| match allowed.strip_suffix(":*") {
            Some(prefix) => origin == prefix || origin.strip_prefix(prefix).is_some_and(is_port),
            None => origin == allowed,
        })
    }

    /// The `Access-Control-Allow-Origin` value for `origin` and whether credentials may be
    /// sent, or `None` when the origin is not allowed.
    fn grant(&self, origin: &str) -> Option<(String, bool)> {
        if self.allows(origin) {
            Some((origin.to_owned(), true))
        } else if self.any {
            Some(("*".to_owned(), false))
        } else {
            None
        }
    }
}

/// Whether `origin` is the origin the request was sent to (its `Host`), whatever the scheme.
fn same_origin(req: &Request<'_>, origin: &str) -> bool {
    let host = origin.split_once("://").map_or(origin, |(_, host)| host);
    req.headers().get_one("Host").is_some_and(|asked| asked.eq_ignore_ascii_case(host))
}

fn is_port(rest: &str) -> bool {
    rest.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The fairing that adds CORS headers to every response to an allowed origin.
#[derive(Debug, Default)]
pub struct Cors;

#[rocket::async_trait]
impl Fairing for Cors {
    fn info(&self) -> Info {
        Info { name: "CORS", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let (Some(origin), Some(policy)) =
            (req.headers().get_one("Origin"), req.rocket().state::<CorsPolicy>())
        else {
            return;
        };
        res.adjoin_header(Header::new("Vary", "Origin"));
        let Some((allow, credentials)) = policy.grant(origin) else {
            // A page of this server's own origin needs no CORS (browsers send `Origin` with
            // its writes too); any other is a page the browser will not let read the answer.
            if !same_origin(req, origin) {
                policy.note_refused(origin, Instant::now());
            }
            return;
        };
        res.set_header(Header::new("Access-Control-Allow-Origin", allow));
        if credentials {
            res.set_header(Header::new("Access-Control-Allow-Credentials", "true"));
        }
        res.set_header(Header::new(
            "Access-Control-Expose-Headers",
            "Retry-After, Location, Tidings-Event-Id, Idempotent-Replayed",
        ));
    }
}

/// A preflight request (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
pub struct Preflight {
    allowed: bool,
    request_headers: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Preflight {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let origin = req.headers().get_one("Origin");
        let allowed = match (origin, req.rocket().state::<CorsPolicy>()) {
            (Some(origin), Some(policy)) => {
                let allowed = policy.grant(origin).is_some();
                if !allowed {
                    policy.note_refused(origin, Instant::now());
                }
                allowed
            }
            _ => false,
        };
        Outcome::Success(Preflight {
            allowed,
            request_headers: req
                .headers()
                .get_one("Access-Control-Request-Headers")
                .map(str::to_owned),
        })
    }
}

/// The response to an allowed preflight: `204` with the methods and headers we accept.
pub struct PreflightResponse(Option<String>);

impl<'r> rocket::response::Responder<'r, 'static> for PreflightResponse {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        let methods = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete]
            .map(|m| m.as_str())
            .join(", ");
        let mut res = Response::build();
        res.status(Status::NoContent)
            .raw_header("Access-Control-Allow-Methods", methods)
            .raw_header("Access-Control-Max-Age", "600");
        // Echo what the browser asked for; the API itself decides what it accepts.
        res.raw_header(
            "Access-Control-Allow-Headers",
            self.0.unwrap_or_else(|| "content-type, last-event-id, authorization".into()),
        );
        res.ok()
    }
}

/// `OPTIONS /<anything>`: answer preflights for allowed origins, `403` for others.
#[options("/<_..>")]
pub fn preflight(preflight: Preflight) -> Result<PreflightResponse, AppError> {
    if preflight.allowed {
        Ok(PreflightResponse(preflight.request_headers))
    } else {
        Err(AppError::Forbidden(
            "origin_not_allowed",
            "this origin is not allowed by TIDINGS_CORS_ORIGINS".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_wildcards_and_exact_origins() {
        let policy = CorsPolicy::new(&["http://localhost:*".into(), "https://app.example".into()]);
        assert!(policy.allows("http://localhost:5173"));
        assert!(policy.allows("http://localhost"));
        assert!(!policy.allows("http://localhost.evil.example"));
        assert!(!policy.allows("http://localhost:80x"));
        assert!(policy.allows("https://app.example"));
        assert!(!policy.allows("https://app.example.evil"));
        assert_eq!(policy.grant("https://x.example"), None);
    }

    #[test]
    fn a_refused_origin_is_logged_once_a_minute() {
        let policy = CorsPolicy::new(&["https://app.example".into()]);
        let start = Instant::now();
        assert!(policy.note_refused("https://other.example", start));
        assert!(!policy.note_refused("https://other.example", start + Duration::from_secs(59)));
        assert!(policy.note_refused("https://third.example", start + Duration::from_secs(59)));
        assert!(policy.note_refused("https://other.example", start + REFUSAL_LOG_EVERY));
        // A flood of made-up origins is bounded in memory.
        for i in 0..2 * REMEMBERED_REFUSALS {
            policy.note_refused(&format!("https://{i}.example"), start);
        }
        assert!(policy.refused.lock().unwrap().len() <= REMEMBERED_REFUSALS);
    }

    #[test]
    fn star_never_goes_with_credentials() {
        let policy = CorsPolicy::new(&["*".into()]);
        assert_eq!(policy.grant("https://x.example"), Some(("*".into(), false)));
    }
}
