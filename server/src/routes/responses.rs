//! The error responses of the OpenAPI document, each described once. A route lists the ones it
//! can answer with by name (`responses((status = 200, …), Unauthorized, NotFound)`), so the
//! description of a status cannot drift between routes.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// One error response: its status and description, with an `ErrorBody` as JSON.
fn error_response(status: u16, description: &str) -> BTreeMap<String, RefOr<Response>> {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response =
        ResponseBuilder::new().description(description).content("application/json", body).build();
    BTreeMap::from([(status.to_string(), RefOr::T(response))])
}

macro_rules! error_responses {
    ($($name:ident = $status:literal, $description:literal;)*) => {$(
        #[doc = concat!("`", stringify!($status), "`: ", $description, ".")]
        pub(super) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                error_response($status, $description)
            }
        }
    )*};
}

error_responses! {
    BadRequest = 400, "Malformed request (bad JSON, bad query parameter)";
    Unauthorized = 401, "Missing or invalid token (access control on)";
    Forbidden = 403, "Not allowed: a foreign Host, or (with access control) a role that may not do this";
    NotFound = 404, "No such list or todo (or one the caller may not read)";
    Conflict = 409, "Conflict: an id taken or deleted, a limit reached, or an owner leaving their own list";
    TooLarge = 413, "Body too large";
    NotJson = 415, "Body is not application/json";
    Invalid = 422, "Valid JSON, invalid content";
    TooManyStreams = 429, "Too many streams for this client";
    TooManyWrites = 429, "Past this client's write budget; see Retry-After";
    Unavailable = 503, "Unavailable (the database, or for the stream its limit); see Retry-After";
    StorageFull = 507, "Database full; nothing was written";
}
