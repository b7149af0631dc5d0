//! The JSON request body guard: content type, size limit and parse errors each become the
//! right status with the JSON error body, instead of Rocket's defaults (which answer an
//! oversized body with 400 and a wrong content type with 404).

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::outcome::Outcome;
use rocket::request::Request;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::config::Settings;
use crate::error::AppError;

/// A request body parsed from JSON. Take it as `Result<JsonBody<T>, AppError>` so the
/// handler returns the error itself.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Whether the request says its body is JSON (`application/json`, `application/*+json`).
fn is_json(req: &Request<'_>) -> bool {
    req.content_type().is_some_and(|ct| {
        ct.top() == "application" && (ct.sub() == "json" || ct.sub().as_str().ends_with("+json"))
    })
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for JsonBody<T> {
    type Error = AppError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fail = |e: AppError| Outcome::Error((e.status(), e));
        if !is_json(req) {
            return fail(AppError::UnsupportedMediaType);
        }
        let limit = req
            .rocket()
            .state::<Settings>()
            .map_or(Settings::default().max_body_bytes, |s| s.max_body_bytes);
        let bytes = match data.open(limit.bytes()).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => bytes.into_inner(),
            Ok(_) => return fail(AppError::PayloadTooLarge(limit)),
            Err(e) => {
                return fail(AppError::BadRequest(
                    "unreadable_body",
                    format!("could not read the request body: {e}"),
                ))
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(value) => Outcome::Success(JsonBody(value)),
            Err(e) if e.classify() == Category::Data => fail(AppError::Unprocessable(
                "invalid_body",
                format!("request body does not match the expected shape: {e}"),
            )),
            Err(e) => fail(AppError::BadRequest(
                "malformed_json",
                format!("request body is not valid JSON: {e}"),
            )),
        }
    }
}
