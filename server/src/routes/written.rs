//! What every write route shares: the client's `Idempotency-Key`, and the answer's headers
//! (`Tidings-Event-Id`: the last event the write logged, for a client that waits until its
//! stream has applied it; `Idempotent-Replayed: true` when the answer is the remembered
//! outcome of an earlier request with the same key).

use rocket::http::Method;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder};
use serde::Serialize;

use crate::error::AppError;
use crate::store::{Idempotency, Written};
use crate::validate;

/// The header a client names a write with, so that a retry is not applied twice.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Longest idempotency key: room for a UUID with a prefix, not for a document.
pub const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by the request guard below; this type only documents it
pub(super) struct KeyHeader {
    /// Names this change (1 to 255 visible ASCII characters, e.g. a UUID): the same key with
    /// the same request again gets the first answer back (`Idempotent-Replayed: true`) and
    /// changes nothing; with another request, `422 idempotency_key_reused`.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// The `Idempotency-Key` of a write request, if it has one, with what the request asks for.
#[derive(Debug)]
pub(super) struct IdempotencyKey {
    key: Option<String>,
    method: Method,
    path: String,
}

impl IdempotencyKey {
    /// The key for a request whose body (as validated) is `body`: method, path and body are
    /// what the key promises to mean.
    pub(super) fn with_body(self, body: &impl Serialize) -> Option<Idempotency> {
        let body = serde_json::to_string(body).unwrap_or_default();
        let IdempotencyKey { key, method, path } = self;
        key.map(|key| Idempotency { key, request: format!("{method} {path} {body}") })
    }

    /// The key for a request without a body.
    pub(super) fn without_body(self) -> Option<Idempotency> {
        self.with_body(&())
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdempotencyKey {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        let key = match validate::one_value(IDEMPOTENCY_KEY, req.headers().get(IDEMPOTENCY_KEY)) {
            Ok(key) => key,
            Err(error) => return Outcome::Error((error.status(), error)),
        };
        let valid = |key: &str| {
            (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
        };
        if let Some(key) = key.filter(|key| !valid(key)) {
            let error = AppError::BadRequest(
                "invalid_idempotency_key",
                format!(
                    "`{IDEMPOTENCY_KEY}` must be 1 to {MAX_KEY_LEN} visible ASCII characters \
                     (got {} bytes)",
                    key.len()
                ),
            );
            return Outcome::Error((error.status(), error));
        }
        Outcome::Success(IdempotencyKey {
            key: key.map(str::to_owned),
            method: req.method(),
            path: req.uri().path().to_string(),
        })
    }
}

/// A write's answer: `R` with the headers of [`Written`].
pub(super) struct Answer<R> {
    response: R,
    event_id: Option<u64>,
    replayed: bool,
}

impl<R> Answer<R> {
    /// The answer to `written`, its value made into a response by `respond`.
    pub(super) fn of<T>(written: Written<T>, respond: impl FnOnce(T) -> R) -> Self {
        Answer {
            response: respond(written.value),
            event_id: written.event_id,
            replayed: written.replayed,
        }
    }
}

impl<'r, R: Responder<'r, 'static>> Responder<'r, 'static> for Answer<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.response.respond_to(req)?;
        if let Some(id) = self.event_id {
            response.set_raw_header("Tidings-Event-Id", id.to_string());
        }
        if self.replayed {
            response.set_raw_header("Idempotent-Replayed", "true");
        }
        Ok(response)
    }
}
