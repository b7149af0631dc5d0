//! Requests refused before routing: a `Host` this server does not answer for (DNS rebinding:
//! a page on `evil.example` that resolves to 127.0.0.1 must not reach a local server), and a
//! URI longer than any route needs.
//!
//! Rocket 0.5 has no way for a fairing to answer a request itself, so the gate rewrites a
//! refused request to an internal route that only answers with the JSON error: no handler of
//! the API runs, nothing changes.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::Method;
use rocket::request::{FromRequest, Outcome};
use rocket::{get, Data, Request, Route};

use crate::error::AppError;

/// Longest request URI (path and query) the API answers; longer gets `414`. (hyper refuses
/// URIs over 64 KiB itself, with an empty body, before the gate sees them.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The internal route refused requests are sent to.
const REFUSED: &str = "/api/__refused";

/// Which `Host` values the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    any: bool,
    /// Lowercase host names or IP literals (`[::1]`), or `.example.com` for a domain and its
    /// subdomains (written `*.example.com` in the settings).
    hosts: Vec<String>,
}

impl HostPolicy {
    /// The policy of the configured hosts (`Settings::allowed_hosts`).
    pub fn new(hosts: &[String]) -> Self {
        HostPolicy {
            any: hosts.iter().any(|h| h == "*"),
            hosts: hosts
                .iter()
                .filter(|h| *h != "*")
                .map(|h| {
                    let h = h.to_ascii_lowercase();
                    h.strip_prefix('*').map(str::to_owned).unwrap_or(h)
                })
                .collect(),
        }
    }

    /// Whether a request with this `Host` header value (port included or not) is answered.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host.to_ascii_lowercase();
        // `[::1]:8000` → `[::1]`, `localhost:8000` → `localhost`.
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => &host[..],
        };
        self.hosts.iter().any(|allowed| match allowed.strip_prefix('.') {
            Some(domain) => name == domain || name.ends_with(allowed.as_str()),
            None => name == allowed,
        })
    }
}

/// Why a request was refused, kept for the refusal route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Host,
    UriTooLong,
}

/// The fairing that refuses requests before routing.
#[derive(Debug, Default)]
pub struct Gate;

#[rocket::async_trait]
impl Fairing for Gate {
    fn info(&self) -> Info {
        Info { name: "tidings gate", kind: Kind::Request }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let uri_len =
            req.uri().path().as_str().len() + req.uri().query().map_or(0, |q| q.as_str().len() + 1);
        let refusal = if uri_len > MAX_URI_BYTES {
            Some(Refusal::UriTooLong)
        } else {
            let host = req.headers().get_one("Host");
            let policy = req.rocket().state::<HostPolicy>();
            match (host, policy) {
                (Some(host), Some(policy)) if !policy.allows(host) => Some(Refusal::Host),
                _ => None,
            }
        };
        if let Some(refusal) = refusal {
            req.local_cache(|| Some(refusal));
            req.set_method(Method::Get);
            req.set_uri(Origin::parse(REFUSED).expect("a valid static URI"));
        }
    }
}

/// The refusal the gate recorded for this request, if any.
struct Recorded(Option<Refusal>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Recorded {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Recorded(*req.local_cache(|| None::<Refusal>)))
    }
}

/// Where refused requests end up.
#[get("/api/__refused")]
fn refused(recorded: Recorded) -> AppError {
    match recorded.0 {
        Some(Refusal::UriTooLong) => AppError::UriTooLong(MAX_URI_BYTES),
        Some(Refusal::Host) => AppError::Forbidden(
            "host_not_allowed",
            "this server does not answer for this Host; see TIDINGS_ALLOWED_HOSTS".into(),
        ),
        // Asked for directly: there is nothing here.
        None => AppError::NotFound("not_found", "no such resource".into()),
    }
}

/// The gate's route.
pub fn routes() -> Vec<Route> {
    rocket::routes![refused]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_ports_and_domains() {
        let policy = HostPolicy::new(&[
            "localhost".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
            "*.example.com".into(),
            "Tidings.Example.ORG".into(),
        ]);
        for ok in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:5173",
            "[::1]:8000",
            "[::1]",
            "example.com",
            "app.example.com:443",
            "tidings.example.org",
        ] {
            assert!(policy.allows(ok), "{ok}");
        }
        for refused in
            ["evil.example", "localhost.evil.example", "badexample.com", "127.0.0.2", "[::2]:80"]
        {
            assert!(!policy.allows(refused), "{refused}");
        }
        assert!(HostPolicy::new(&["*".into()]).allows("anything:1"));
    }
}
