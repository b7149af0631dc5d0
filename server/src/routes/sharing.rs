//! Who may read a list: its members (owner only), and the development login that signs
//! tokens for demos and tests.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, State};
use tidings_protocol::{DevLogin, DevToken, Member, Members, NewMember};

use tidings_protocol::ErrorBody;

use super::ApiResult;
use crate::auth::{Auth, Caller};
use crate::body::JsonBody;
use crate::error::AppError;
use crate::store::Store;
use crate::validate::{self, ListId};

#[utoipa::path(get, path = "/api/lists/{list}/members", tag = "sharing",
    params(("list" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "Owner first, then members by user", body = Members),
        (status = 401, description = "Missing or invalid token (access control on)", body = ErrorBody),
        (status = 403, description = "Not allowed: a foreign Host, or (with access control) a role that may not do this", body = ErrorBody),
        (status = 404, description = "No such list or todo (or one the caller may not read)", body = ErrorBody),
        (status = 503, description = "Unavailable (the database, or for the stream its limit); see Retry-After", body = ErrorBody)
    ))]
#[get("/api/lists/<list>/members")]
pub(super) async fn members(
    caller: Result<Caller, AppError>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<Members>> {
    let caller = caller?;
    let ListId(list) = list?;
    Ok(Json(store.members(&list, caller.user()).await?))
}

/// Share a list with `user` as a viewer or editor, or change their role.
#[utoipa::path(put, path = "/api/lists/{list}/members/{user}", tag = "sharing", request_body = NewMember,
    params(("list" = String, Path, description = "List id"), ("user" = String, Path, description = "User (`sub`)")),
    responses(
        (status = 200, description = "The member as stored; `list_shared` goes to them", body = Member),
        (status = 400, description = "Malformed request (bad JSON, bad query parameter)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token (access control on)", body = ErrorBody),
        (status = 403, description = "Not allowed: a foreign Host, or (with access control) a role that may not do this", body = ErrorBody),
        (status = 404, description = "No such list or todo (or one the caller may not read)", body = ErrorBody),
        (status = 409, description = "Conflict: an id taken or deleted, or a limit reached", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Valid JSON, invalid content", body = ErrorBody),
        (status = 503, description = "Unavailable (the database, or for the stream its limit); see Retry-After", body = ErrorBody),
        (status = 507, description = "Database full; nothing was written", body = ErrorBody)
    ))]
#[put("/api/lists/<list>/members/<user>", data = "<body>")]
pub(super) async fn set_member(
    caller: Result<Caller, AppError>,
    list: Result<ListId, AppError>,
    user: &str,
    store: &State<Store>,
    body: Result<JsonBody<NewMember>, AppError>,
) -> ApiResult<Json<Member>> {
    let caller = caller?;
    let ListId(list) = list?;
    let user = validate::user_id(user)?;
    let JsonBody(new) = body?;
    Ok(Json(store.set_member(&list, &user, new.role.into(), caller.user()).await?))
}

#[utoipa::path(delete, path = "/api/lists/{list}/members/{user}", tag = "sharing",
    params(("list" = String, Path, description = "List id"), ("user" = String, Path, description = "User (`sub`)")),
    responses(
        (status = 204, description = "Removed; `list_unshared` goes to them"),
        (status = 401, description = "Missing or invalid token (access control on)", body = ErrorBody),
        (status = 403, description = "Not allowed: a foreign Host, or (with access control) a role that may not do this", body = ErrorBody),
        (status = 404, description = "No such list or todo (or one the caller may not read)", body = ErrorBody),
        (status = 422, description = "Valid JSON, invalid content", body = ErrorBody),
        (status = 503, description = "Unavailable (the database, or for the stream its limit); see Retry-After", body = ErrorBody),
        (status = 507, description = "Database full; nothing was written", body = ErrorBody)
    ))]
#[delete("/api/lists/<list>/members/<user>")]
pub(super) async fn remove_member(
    caller: Result<Caller, AppError>,
    list: Result<ListId, AppError>,
    user: &str,
    store: &State<Store>,
) -> ApiResult<Status> {
    let caller = caller?;
    let ListId(list) = list?;
    let user = validate::user_id(user)?;
    store.remove_member(&list, &user, caller.user()).await?;
    Ok(Status::NoContent)
}

/// A token for anyone who asks: only with `TIDINGS_AUTH_DEV_LOGIN` (a `404` otherwise).
#[utoipa::path(post, path = "/api/dev/token", tag = "sharing", request_body = DevLogin,
    responses(
        (status = 200, description = "A token for the user (TIDINGS_AUTH_DEV_LOGIN only)", body = DevToken),
        (status = 400, description = "Malformed request (bad JSON, bad query parameter)", body = ErrorBody),
        (status = 403, description = "Not allowed: a foreign Host, or (with access control) a role that may not do this", body = ErrorBody),
        (status = 404, description = "No such list or todo (or one the caller may not read)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Valid JSON, invalid content", body = ErrorBody)
    ))]
#[post("/api/dev/token", data = "<body>")]
pub(super) async fn dev_token(
    auth: &State<Option<Auth>>,
    body: Result<JsonBody<DevLogin>, AppError>,
) -> ApiResult<Json<DevToken>> {
    let not_here = || AppError::NotFound("not_found", "no such resource".into());
    let auth = auth.as_ref().filter(|auth| auth.dev_login()).ok_or_else(not_here)?;
    let JsonBody(login) = body?;
    let user = validate::user_id(&login.user)?;
    let (token, expires_at) = auth
        .dev_token(&user)
        .ok_or_else(not_here)?
        .map_err(|e| AppError::Internal(format!("signing a development token: {e}")))?;
    Ok(Json(DevToken { token, expires_at }))
}
