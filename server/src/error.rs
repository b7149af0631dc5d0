//! One error type for every failure a request can meet, and the catchers that turn Rocket's
//! own failures into the same JSON body. No HTML error page ever leaves the server.

use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher};
use tidings_protocol::{ErrorBody, ErrorDetail};

use crate::metrics::ScrapeRefused;
use crate::store::StoreError;

/// A failed request: its status, a stable machine-readable code and a message for people.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request itself is malformed (bad JSON, bad query parameter).
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: no token, or one that does not verify; sent with `WWW-Authenticate: Bearer`.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 403: the request is not allowed (a CORS origin that is not configured).
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// 404: the thing named in the URL does not exist.
    #[error("{1}")]
    NotFound(&'static str, String),
    /// 409: the request conflicts with what exists (an id already taken).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 413: the body is larger than the configured limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    /// 414: the URI is longer than any route needs.
    #[error("the request URI is longer than {0} bytes")]
    UriTooLong(usize),
    /// 415: the body is not `application/json`.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON whose content is invalid (empty title, wrong field type, …).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// 429: this client holds too much (streams); `retry_after` seconds go into
    /// `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// Stable error code.
        code: &'static str,
        /// Explanation.
        message: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// 507: the database is full; nothing was written.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 503: try again later; `retry_after` seconds go into the `Retry-After` header.
    #[error("{message}")]
    Unavailable {
        /// Stable error code.
        code: &'static str,
        /// Explanation.
        message: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// 500: a failure on our side; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status this error is sent with.
    pub fn status(&self) -> Status {
        match self {
            AppError::BadRequest(..) => Status::BadRequest,
            AppError::Unauthorized => Status::Unauthorized,
            AppError::Forbidden(..) => Status::Forbidden,
            AppError::NotFound(..) => Status::NotFound,
            AppError::Conflict(..) => Status::Conflict,
            AppError::PayloadTooLarge(_) => Status::PayloadTooLarge,
            AppError::UriTooLong(_) => Status::UriTooLong,
            AppError::UnsupportedMediaType => Status::UnsupportedMediaType,
            AppError::Unprocessable(..) => Status::UnprocessableEntity,
            AppError::TooManyRequests { .. } => Status::TooManyRequests,
            AppError::InsufficientStorage(_) => Status::InsufficientStorage,
            AppError::Unavailable { .. } => Status::ServiceUnavailable,
            AppError::Internal(_) => Status::InternalServerError,
        }
    }

    /// The stable `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(code, _)
            | AppError::Forbidden(code, _)
            | AppError::NotFound(code, _)
            | AppError::Conflict(code, _)
            | AppError::Unprocessable(code, _)
            | AppError::TooManyRequests { code, .. }
            | AppError::Unavailable { code, .. } => code,
            AppError::InsufficientStorage(_) => "storage_full",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::Unauthorized => "unauthorized",
            AppError::UriTooLong(_) => "uri_too_long",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            // Internal details stay in the log.
            AppError::Internal(_) => "the server failed to handle this request".to_owned(),
            other => other.to_string(),
        };
        ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message } }
    }

    /// `404 list_not_found`.
    pub fn list_not_found(id: &str) -> Self {
        StoreError::ListNotFound(id.to_owned()).into()
    }

    /// `404 todo_not_found`.
    pub fn todo_not_found(id: &str) -> Self {
        StoreError::TodoNotFound(id.to_owned()).into()
    }

    /// Seconds in `Retry-After`, for the statuses that carry it.
    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after, .. }
            | AppError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Domain errors of the store, mapped to HTTP here and nowhere else.
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::ListNotFound(_) => AppError::NotFound("list_not_found", message),
            StoreError::TodoNotFound(_) => AppError::NotFound("todo_not_found", message),
            StoreError::MemberNotFound { .. } => AppError::NotFound("member_not_found", message),
            StoreError::UnknownTargetList(_) => AppError::Unprocessable("unknown_list", message),
            StoreError::InvalidAfter { .. } => AppError::Unprocessable("invalid_after", message),
            StoreError::Conflict { code, .. } | StoreError::LimitReached { code, .. } => {
                AppError::Conflict(code, message)
            }
            StoreError::Forbidden(_) => AppError::Forbidden("forbidden", message),
            StoreError::IdempotencyKeyReused(_) => {
                AppError::Unprocessable("idempotency_key_reused", message)
            }
            StoreError::SnapshotTooLarge { .. } => {
                AppError::Unprocessable("snapshot_too_large", message)
            }
            StoreError::Full => AppError::InsufficientStorage(message),
            StoreError::Unavailable(detail) => {
                log::warn!("database unavailable: {detail}");
                AppError::Unavailable {
                    code: "database_unavailable",
                    message: "the database is unavailable; retry shortly".into(),
                    retry_after: 1 + fastrand::u64(0..=2),
                }
            }
            StoreError::Internal(detail) => AppError::Internal(detail),
        }
    }
}

/// A refused metrics scrape.
impl From<ScrapeRefused> for AppError {
    fn from(refused: ScrapeRefused) -> Self {
        match refused {
            ScrapeRefused::Off => AppError::NotFound(
                "not_found",
                "metrics are off with access control on; set TIDINGS_METRICS_TOKEN".into(),
            ),
            ScrapeRefused::WrongToken => AppError::Unauthorized,
        }
    }
}

impl<'r> Responder<'r, 'static> for AppError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let AppError::Internal(detail) = &self {
            // The path only: a query string may hold a token.
            log::error!("{} {}: {detail}", req.method(), req.uri().path());
        }
        let mut response = (self.status(), Json(self.body())).respond_to(req)?;
        if let Some(seconds) = self.retry_after() {
            response.set_header(Header::new("Retry-After", seconds.to_string()));
        }
        if let AppError::Unauthorized = self {
            response.set_header(Header::new("WWW-Authenticate", "Bearer"));
        }
        Ok(response)
    }
}

/// Code and message for a status Rocket produced itself (no route, failed guard, panic).
fn describe(status: Status) -> (&'static str, &'static str) {
    match status.code {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthorized", "authentication is required"),
        403 => ("forbidden", "this request is not allowed"),
        404 => ("not_found", "no such resource"),
        405 => ("method_not_allowed", "method not allowed on this resource"),
        413 => ("payload_too_large", "request body is too large"),
        414 => ("uri_too_long", "the request URI is too long"),
        415 => ("unsupported_media_type", "request body must be application/json"),
        422 => ("unprocessable", "the request body is not valid"),
        429 => ("too_many_requests", "too many requests; retry later"),
        431 => ("headers_too_large", "the request headers are too large"),
        503 => ("unavailable", "the server cannot handle this request now"),
        500..=599 => ("internal_error", "the server failed to handle this request"),
        _ => ("error", "the request failed"),
    }
}

#[catch(default)]
fn any_status(status: Status, _req: &Request<'_>) -> (Status, Json<ErrorBody>) {
    let (code, message) = describe(status);
    let body = ErrorBody { error: ErrorDetail { code: code.into(), message: message.into() } };
    (status, Json(body))
}

/// Catchers that answer every status Rocket produces with the JSON error body.
pub fn catchers() -> Vec<Catcher> {
    catchers![any_status]
}
