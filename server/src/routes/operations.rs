//! For operators and integrators: the health check, the OpenAPI document and the Prometheus
//! metrics.

use std::sync::Arc;
use std::time::Duration;

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{get, State};
use tidings_protocol::{ErrorBody, Health};

use super::responses::Forbidden;
use super::ApiResult;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tailer::TailerStatus;

/// How long the health check waits for the database before it reports it unavailable.
const HEALTH_PATIENCE: Duration = Duration::from_secs(2);

/// What `/health` tells: everything, or (with access control, to a request without the
/// metrics token) only whether the server is up.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum HealthAnswer {
    /// Without access control, or with the metrics token.
    Full(Health),
    /// With access control, to anyone else.
    Brief(BriefHealth),
}

/// Whether the server is up, and nothing else. (`deny_unknown_fields`: its schema says no
/// other field, so a full answer matches `Health` alone, as `oneOf` requires.)
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BriefHealth {
    /// `ok` or `unavailable`: whether the database answered this check.
    pub status: String,
}

/// Whether the server and its database answer. Without access control, or with the metrics
/// token, also the process's streams, the log's head and epoch, and the tailer's lag; with
/// access control and without that token only `status`, so nobody learns how busy the server
/// is.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = HealthAnswer),
        (status = 503, description = "The database does not answer", body = HealthAnswer),
        Forbidden
    ))]
#[get("/health")]
pub(super) async fn health(
    store: &State<Store>,
    hub: &State<Hub>,
    tailer: &State<Arc<TailerStatus>>,
    metrics: &State<Metrics>,
    bearer: Bearer,
) -> (Status, Json<HealthAnswer>) {
    // The tailer's own connection: snapshot reads holding every reader do not make this wait.
    let head = tokio::time::timeout(HEALTH_PATIENCE, store.probe_head()).await;
    let ok = matches!(head, Ok(Ok(_)));
    if let Ok(Ok(head)) = head {
        tailer.saw_head(head.last_event_id);
    }
    let status = if ok { Status::Ok } else { Status::ServiceUnavailable };
    let said = if ok { "ok" } else { "unavailable" };
    if metrics.authorize(bearer.0.as_deref()).is_err() {
        return (status, Json(HealthAnswer::Brief(BriefHealth { status: said.into() })));
    }
    let last_event_id = tailer.head_seen();
    let broadcast_id = tailer.broadcast_id();
    let health = Health {
        status: said.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        open_streams: hub.open_streams() as u64,
        last_event_id,
        epoch: store.epoch().to_owned(),
        database: said.into(),
        broadcast_id,
        tailer_lag: last_event_id.saturating_sub(broadcast_id),
    };
    (status, Json(HealthAnswer::Full(health)))
}

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
    /// A full `/health` answer must match exactly one schema of `HealthAnswer`'s `oneOf`
    /// (schemathesis checks it): the brief one allows no other field.
    #[test]
    fn a_full_health_answer_matches_one_schema() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let brief = &doc["components"]["schemas"]["BriefHealth"];
        assert_eq!(brief["additionalProperties"], false, "{brief}");
    }

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
                if path == "/api/dev/token" || path == "/api/events/ticket" {
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
