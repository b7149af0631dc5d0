//! The HTTP API.
//!
//! | module | routes |
//! | --- | --- |
//! | `lists` | lists and todos: snapshots, creates, changes, deletes |
//! | `sharing` | members of a list, who is on it now, and the development login |
//! | `events` | the event stream and the health check |
//! | `operations` | the OpenAPI document and the Prometheus metrics |
//!
//! Every route takes the caller (`Result<Caller, AppError>`: a missing or bad token is the
//! route's `401`) and hands the store the user, or `None` when access control is off.

mod events;
mod lists;
mod operations;
mod responses;
mod sharing;
mod written;

pub use operations::OpenApiJson;

use rocket::http::Status;
use rocket::{routes, Route};

use crate::error::AppError;

/// Every route of the API (CORS preflight included).
pub fn routes() -> Vec<Route> {
    routes![
        lists::lists,
        lists::create_list,
        lists::rename_list,
        lists::delete_list,
        lists::list_todos,
        lists::todos,
        lists::create_todo,
        lists::clear_done,
        lists::update_todo,
        lists::delete_todo,
        sharing::members,
        sharing::presence,
        sharing::set_member,
        sharing::remove_member,
        sharing::dev_token,
        events::ticket,
        events::events,
        operations::health,
        operations::openapi_json,
        operations::metrics,
        crate::cors::preflight,
    ]
}

type ApiResult<T> = Result<T, AppError>;

/// `201 Created` for a new resource, `200 OK` for an idempotent repeat.
fn created_status(created: bool) -> Status {
    if created {
        Status::Created
    } else {
        Status::Ok
    }
}

/// The OpenAPI 3.1 document of the API, generated from the routes and the protocol types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tidings",
        description = "Live todo lists over Server-Sent Events. The stream's messages are \
                       described in docs/protocol.md."
    ),
    paths(
        lists::lists,
        lists::create_list,
        lists::rename_list,
        lists::delete_list,
        lists::list_todos,
        lists::todos,
        lists::create_todo,
        lists::clear_done,
        lists::update_todo,
        lists::delete_todo,
        sharing::members,
        sharing::presence,
        sharing::set_member,
        sharing::remove_member,
        sharing::dev_token,
        events::ticket,
        events::events,
        operations::health,
        operations::openapi_json,
        operations::metrics,
    ),
    // The stream's messages, which no REST route returns, and the error body the routes'
    // error responses refer to by name (see `responses`).
    components(schemas(
        tidings_protocol::ErrorBody,
        tidings_protocol::TodoEvent,
        tidings_protocol::Connected,
        tidings_protocol::Heartbeat,
        tidings_protocol::Resync,
        tidings_protocol::Presence
    )),
    modifiers(&BearerAuth, &WriteHeaders),
    tags(
        (name = "lists", description = "Lists"),
        (name = "todos", description = "Todos"),
        (name = "sharing", description = "Members of a list (with access control)"),
        (name = "events", description = "The event stream"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Every successful write answers with `Tidings-Event-Id` and, when replayed for its
/// idempotency key, `Idempotent-Replayed` (see `written`): described once, here.
struct WriteHeaders;

impl utoipa::Modify for WriteHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Type;
        use utoipa::openapi::{HeaderBuilder, ObjectBuilder, RefOr};
        let header = |kind: Type, description: &str| {
            let schema = ObjectBuilder::new().schema_type(kind).build();
            RefOr::T(
                HeaderBuilder::new().schema(Some(schema)).description(Some(description)).build(),
            )
        };
        let event_id = header(
            Type::Integer,
            "The id of the last event this write logged (absent when it changed nothing)",
        );
        let replayed = header(
            Type::Boolean,
            "`true` when this is the remembered answer to an earlier request with the same \
             `Idempotency-Key`",
        );
        for item in openapi.paths.paths.values_mut() {
            let writes = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for operation in writes.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                        response.headers.insert("Tidings-Event-Id".into(), event_id.clone());
                        response.headers.insert("Idempotent-Replayed".into(), replayed.clone());
                    }
                }
            }
        }
    }
}

/// With access control, every route takes `Authorization: Bearer <JWT>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        // Optional: without access control no token is needed.
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}
