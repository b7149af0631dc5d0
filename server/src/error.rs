//! One error type for every failure a request can meet, and the catchers that turn Rocket's
//! own failures into the same JSON body. No HTML error page ever leaves the server.

use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher};
use tidings_protocol::{ErrorBody, ErrorDetail};

/// A failed request: its status, a stable machine-readable code and a message for people.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request itself is malformed (bad JSON, bad query parameter).
    #[error("{1}")]
    BadRequest(&'static str, String),
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
    /// 415: the body is not `application/json`.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 422: well-formed JSON whose content is invalid (empty title, wrong field type, …).
    #[error("{1}")]
    Unprocessable(&'static str, String),
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
            AppError::Forbidden(..) => Status::Forbidden,
            AppError::NotFound(..) => Status::NotFound,
            AppError::Conflict(..) => Status::Conflict,
            AppError::PayloadTooLarge(_) => Status::PayloadTooLarge,
            AppError::UnsupportedMediaType => Status::UnsupportedMediaType,
            AppError::Unprocessable(..) => Status::UnprocessableEntity,
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
            | AppError::Unavailable { code, .. } => code,
            AppError::PayloadTooLarge(_) => "payload_too_large",
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
        AppError::NotFound("list_not_found", format!("no list with id `{id}`"))
    }

    /// `404 todo_not_found`.
    pub fn todo_not_found(id: &str) -> Self {
        AppError::NotFound("todo_not_found", format!("no todo with id `{id}`"))
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // A database that is busy beyond its timeout, or a pool that cannot hand out a
        // connection, is a transient condition: tell the client to retry.
        let busy = match &e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517"))
            }
            _ => false,
        };
        if busy {
            AppError::Unavailable {
                code: "database_busy",
                message: "the database is busy; retry shortly".into(),
                retry_after: 1,
            }
        } else {
            AppError::Internal(e.to_string())
        }
    }
}

impl From<sqlx::migrate::MigrateError> for AppError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl<'r> Responder<'r, 'static> for AppError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let AppError::Internal(detail) = &self {
            rocket::error!("{} {}: {detail}", req.method(), req.uri());
        }
        let mut response = (self.status(), Json(self.body())).respond_to(req)?;
        if let AppError::Unavailable { retry_after, .. } = &self {
            response.set_header(Header::new("Retry-After", retry_after.to_string()));
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
        415 => ("unsupported_media_type", "request body must be application/json"),
        422 => ("unprocessable", "the request body is not valid"),
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
