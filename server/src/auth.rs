//! Access control's front door: the application signs JWTs, tidings verifies them (Mercure's
//! model). This module only answers "who is calling"; what they may do is the store's
//! business ([`crate::store`]) and what a stream carries is [`crate::audience`]'s.
//!
//! Exactly one algorithm is accepted: HS256 with `TIDINGS_AUTH_SECRET`, or the algorithm of
//! the key in `TIDINGS_AUTH_PUBLIC_KEY` (RS256, ES256 or EdDSA). `alg: none` and HS/RS
//! confusion are refused by construction: the key type fixes the algorithm.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rocket::request::{FromRequest, Outcome, Request};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::error::AppError;
use crate::validate;

/// Seconds a token may be past `exp` (or before `nbf`) and still be accepted: clocks differ.
pub const LEEWAY_SECS: u64 = 5;

/// How long a development token lives.
const DEV_TOKEN_SECS: u64 = 3600;

/// The token verifier. Rocket's managed state holds an `Option<Auth>`: `None` when access
/// control is off.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
    /// With `TIDINGS_AUTH_DEV_LOGIN`: signs tokens for `POST /api/dev/token`.
    dev: Option<DevSigner>,
}

struct DevSigner {
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Auth")
            .field("algorithms", &self.validation.algorithms)
            .field("dev_login", &self.dev.is_some())
            .finish()
    }
}

/// The claims tidings reads; `iss`, `aud` and `nbf` are checked by the validation from the
/// token itself (an `aud` may be a string or an array).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// The claims of a development token.
#[derive(Debug, Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `sub`.
    pub id: String,
    /// When the token stops being accepted, seconds since the Unix epoch: `exp` plus the
    /// leeway (a stream ends then).
    pub expires_at: u64,
}

/// Why a token was refused (logged; the client only learns `unauthorized`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token at all.
    #[error("no token")]
    Missing,
    /// The token did not verify.
    #[error("token refused: {0}")]
    Invalid(String),
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Auth {
    /// The verifier the settings ask for: `None` when access control is off.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, String> {
        let (key, algorithm, dev_key) = match (&settings.auth_secret, &settings.auth_public_key) {
            (Some(_), Some(_)) => {
                return Err("set one of `auth_secret` and `auth_public_key`, not both".into())
            }
            (Some(crate::config::Secret(secret)), None) => {
                if secret.len() < 32 {
                    return Err(format!(
                        "`auth_secret` must be at least 32 bytes, got {}",
                        secret.len()
                    ));
                }
                let (decode, encode) = secret_keys(secret.as_bytes())?;
                (decode, Algorithm::HS256, Some(encode))
            }
            (None, Some(path)) => {
                if settings.auth_dev_login {
                    return Err(
                        "`auth_dev_login` needs `auth_secret` (a public key cannot sign)".into()
                    );
                }
                let (key, algorithm) = public_key(path)?;
                (key, algorithm, None)
            }
            (None, None) if settings.auth_dev_login => {
                // A secret of the moment: tokens from `/api/dev/token` live as long as the
                // process.
                let secret =
                    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                let (decode, encode) = secret_keys(secret.as_bytes())?;
                (decode, Algorithm::HS256, Some(encode))
            }
            (None, None) => return Ok(None),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &settings.auth_issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &settings.auth_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let dev = settings.auth_dev_login.then(|| DevSigner {
            key: dev_key.expect("a secret signs dev tokens"),
            issuer: settings.auth_issuer.clone(),
            audience: settings.auth_audience.clone(),
        });
        Ok(Some(Auth { key, validation, dev }))
    }

    /// The user a token names, if it verifies.
    pub fn verify(&self, token: &str) -> Result<User, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let sub = data.claims.sub;
        if let Some(rule) = validate::user_problem(&sub) {
            return Err(TokenError::Invalid(format!("`sub` {rule}")));
        }
        Ok(User { id: sub, expires_at: data.claims.exp + LEEWAY_SECS })
    }

    /// Whether `POST /api/dev/token` is on.
    pub fn dev_login(&self) -> bool {
        self.dev.is_some()
    }

    /// A token for `user` (development login only); the token and its expiry.
    pub fn dev_token(&self, user: &str) -> Option<Result<(String, u64), String>> {
        let dev = self.dev.as_ref()?;
        let now = now_secs();
        let claims = DevClaims {
            sub: user,
            exp: now + DEV_TOKEN_SECS,
            iat: now,
            iss: dev.issuer.as_deref(),
            aud: dev.audience.as_deref(),
        };
        Some(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &dev.key)
                .map(|token| (token, claims.exp))
                .map_err(|e| e.to_string()),
        )
    }
}

/// The HS256 keys of a shared secret.
fn secret_keys(secret: &[u8]) -> Result<(DecodingKey, EncodingKey), String> {
    let decode = DecodingKey::from_secret(secret).map_err(|e| format!("`auth_secret`: {e}"))?;
    let encode = EncodingKey::from_secret(secret).map_err(|e| format!("`auth_secret`: {e}"))?;
    Ok((decode, encode))
}

/// A PEM public key and the one algorithm it verifies.
fn public_key(path: &Path) -> Result<(DecodingKey, Algorithm), String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read `auth_public_key` {}: {e}", path.display()))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok((key, Algorithm::ES256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    Err(format!(
        "`auth_public_key` {} is not a PEM RSA, P-256 or Ed25519 public key",
        path.display()
    ))
}

/// Who is calling: anyone (access control is off) or a verified user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Access control is off: every request may do everything.
    Anyone,
    /// The user of a verified token.
    User(User),
}

impl Caller {
    /// The user id, or `None` when access control is off (the store's convention).
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Anyone => None,
            Caller::User(user) => Some(&user.id),
        }
    }
}

/// Where a token may come from: `Authorization: Bearer` on every route; on the event stream
/// also the `access_token` query parameter (EventSource cannot send headers) and the
/// `tidings_token` cookie (same-origin apps set it `HttpOnly`). Each may be given once: two
/// different values are a `400`, not a guess.
/// The stream ticket of a request to `/api/events` without an `Authorization` header.
fn ticket<'r>(req: &'r Request<'_>) -> Result<Option<&'r str>, AppError> {
    if req.uri().path() != "/api/events" || req.headers().contains("Authorization") {
        return Ok(None);
    }
    validate::one_value(
        "ticket",
        req.query_fields().filter(|f| f.name == "ticket").map(|f| f.value),
    )
}

/// The caller a stream ticket names, using it up; `401` for a ticket that is unknown, used
/// or expired.
async fn redeem(req: &Request<'_>, ticket: &str) -> Outcome<Caller, AppError> {
    let Some(store) = req.rocket().state::<crate::store::Store>() else {
        let error = AppError::Internal("no store to redeem a ticket with".into());
        return Outcome::Error((error.status(), error));
    };
    match store.redeem_ticket(ticket).await {
        Ok(Some((id, expires_at))) => Outcome::Success(Caller::User(User { id, expires_at })),
        Ok(None) => {
            log::info!("refused {}: an unknown, used or expired stream ticket", req.uri().path());
            let error = AppError::Unauthorized;
            Outcome::Error((error.status(), error))
        }
        Err(e) => {
            let error = AppError::from(e);
            Outcome::Error((error.status(), error))
        }
    }
}

fn token<'r>(req: &'r Request<'_>) -> Result<Option<&'r str>, AppError> {
    let authorization = validate::one_value("Authorization", req.headers().get("Authorization"))?;
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    if bearer.is_some() {
        return Ok(bearer);
    }
    // Another scheme (a browser adds Basic credentials behind HTTP basic auth, even to an
    // EventSource) does not hide the stream's own token.
    if req.uri().path() != "/api/events" {
        return Ok(None);
    }
    let query = req.query_fields().filter(|f| f.name == "access_token").map(|f| f.value);
    if let Some(token) = validate::one_value("access_token", query)? {
        return Ok(Some(token));
    }
    // From the raw header: Rocket's cookie jar keeps one cookie of a name.
    let cookies = req.headers().get("Cookie").flat_map(|header| header.split(';'));
    let named = cookies.filter_map(|cookie| cookie.trim().strip_prefix("tidings_token="));
    validate::one_value("tidings_token", named)
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        let Some(Some(auth)) = req.rocket().state::<Option<Auth>>() else {
            return Outcome::Success(Caller::Anyone);
        };
        match ticket(req) {
            Err(error) => return Outcome::Error((error.status(), error)),
            Ok(Some(ticket)) => return redeem(req, ticket).await,
            Ok(None) => {}
        }
        let token = match token(req) {
            Ok(token) => token,
            Err(error) => return Outcome::Error((error.status(), error)),
        };
        let verified = token.ok_or(TokenError::Missing).and_then(|t| auth.verify(t));
        match verified {
            Ok(user) => Outcome::Success(Caller::User(user)),
            Err(e) => {
                log::info!("refused {} {}: {e}", req.method(), req.uri().path());
                let error = AppError::Unauthorized;
                Outcome::Error((error.status(), error))
            }
        }
    }
}

/// The peer address of a request, or the address in Rocket's IP header when
/// `trust_ip_header` is on (behind a proxy that sets it): who a client is without a user.
pub fn peer_address(req: &Request<'_>) -> Option<std::net::IpAddr> {
    let trust_header =
        req.rocket().state::<crate::config::Settings>().is_some_and(|s| s.trust_ip_header);
    if trust_header {
        req.client_ip()
    } else {
        req.remote().map(|a| a.ip())
    }
}
