//! For operators and integrators: the OpenAPI document and the Prometheus metrics.

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{get, State};
use tidings_protocol::ErrorBody;

use super::ApiResult;
use crate::metrics::Metrics;

/// The OpenAPI document, rendered once at start.
pub struct OpenApiJson(pub String);

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
#[get("/api/openapi.json")]
pub(super) fn openapi_json(doc: &State<OpenApiJson>) -> (ContentType, String) {
    (ContentType::JSON, doc.0.clone())
}

/// The bearer token of a request, if any (for the metrics token).
pub(super) struct Bearer(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Bearer {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let token = req.headers().get_one("Authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
        Outcome::Success(Bearer(token))
    }
}

/// Prometheus metrics. With access control on, only with `TIDINGS_METRICS_TOKEN` as the
/// bearer token (and `404` when no such token is configured).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "The metrics token is required", body = ErrorBody),
        (status = 404, description = "Metrics are off (access control on, no metrics token)", body = ErrorBody)
    ))]
#[get("/metrics")]
pub(super) fn metrics(
    metrics: &State<Metrics>,
    bearer: Bearer,
) -> ApiResult<(Status, (ContentType, String))> {
    metrics.authorize(bearer.0.as_deref())?;
    let text = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    Ok((Status::Ok, (text, metrics.render())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1() {
        use utoipa::OpenApi;
        let json = super::super::ApiDoc::openapi().to_json().unwrap();
        assert!(json.contains(r#""openapi":"3.1"#), "{}", &json[..80]);
    }

    #[test]
    fn every_write_documents_its_idempotency_key_and_event_id() {
        use utoipa::OpenApi;
        let doc = super::super::ApiDoc::openapi();
        let mut writes = 0;
        for (path, item) in &doc.paths.paths {
            let operations = [&item.post, &item.put, &item.patch, &item.delete];
            for operation in operations.into_iter().flatten() {
                if path == "/api/dev/token" {
                    continue;
                }
                writes += 1;
                let named = |p: &utoipa::openapi::RefOr<utoipa::openapi::path::Parameter>| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "Idempotency-Key");
                assert!(operation.parameters.iter().flatten().any(named), "{path}");
                let ok = operation.responses.responses.iter().find(|(s, _)| s.starts_with('2'));
                let Some((_, utoipa::openapi::RefOr::T(ok))) = ok else { panic!("{path}") };
                assert!(ok.headers.contains_key("Tidings-Event-Id"), "{path}");
            }
        }
        assert_eq!(writes, 9, "lists, todos and members: POST, PATCH, PUT, DELETE");
    }
}
