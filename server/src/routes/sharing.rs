//! Who may read a list: its members (owner only), who is on it now (presence), and the
//! development login that signs tokens for demos and tests.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, State};
use tidings_protocol::{DevLogin, DevToken, Member, Members, NewMember, Presence};

use super::responses::{
    BadRequest, Conflict, Forbidden, Invalid, NotFound, NotJson, StorageFull, TooLarge,
    TooManyWrites, Unauthorized, Unavailable,
};
use super::written::{Answer, IdempotencyKey, KeyHeader};
use super::ApiResult;
use crate::auth::{Auth, Caller};
use crate::body::JsonBody;
use crate::budget::{ReadTurn, WriteTurn};
use crate::error::AppError;
use crate::store::{now_ms, Store};
use crate::validate::{self, ListId};

#[utoipa::path(get, path = "/api/lists/{list}/members", tag = "sharing",
    params(("list" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "Owner first, then members by user", body = Members),
        Unauthorized, Forbidden, NotFound, Unavailable
    ))]
#[get("/api/lists/<list>/members")]
pub(super) async fn members(
    caller: Result<Caller, AppError>,
    _turn: ReadTurn<'_>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<Members>> {
    let caller = caller?;
    let ListId(list) = list?;
    Ok(Json(store.members(&list, caller.user()).await?))
}

/// Who has a stream open on the list, in every process: the same answer a `presence`
/// message carries.
#[utoipa::path(get, path = "/api/lists/{list}/presence", tag = "sharing",
    params(("list" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "Users (with access control) or a count of anonymous streams (without) on the list", body = Presence),
        Unauthorized, Forbidden, NotFound, Unavailable
    ))]
#[get("/api/lists/<list>/presence")]
pub(super) async fn presence(
    caller: Result<Caller, AppError>,
    _turn: ReadTurn<'_>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<Presence>> {
    let caller = caller?;
    let ListId(list) = list?;
    let lists = [list];
    if let Some(missing) = store.first_unreadable_list(&lists, caller.user()).await? {
        return Err(AppError::list_not_found(&missing));
    }
    let counts = store.presence(&lists, now_ms() - crate::presence::ALIVE_MS).await?;
    Ok(Json(crate::presence::of_counts(&lists[0], &counts)))
}

/// Share a list with `user` as a viewer or editor, or change their role.
#[utoipa::path(put, path = "/api/lists/{list}/members/{user}", tag = "sharing", request_body = NewMember,
    params(KeyHeader, ("list" = String, Path, description = "List id"), ("user" = String, Path, description = "User (`sub`)")),
    responses(
        (status = 200, description = "The member as stored; `list_shared` goes to them", body = Member),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, NotJson, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[put("/api/lists/<list>/members/<user>", data = "<body>")]
pub(super) async fn set_member(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    user: &str,
    store: &State<Store>,
    body: Result<JsonBody<NewMember>, AppError>,
) -> ApiResult<Answer<Json<Member>>> {
    let caller = caller?;
    turn?;
    let ListId(list) = list?;
    let user = validate::user_id(user)?;
    let JsonBody(new) = body?;
    let key = key?.with_body(&new);
    let member = store.set_member(&list, &user, new.role.into(), caller.user(), key).await?;
    Ok(Answer::of(member, Json))
}

#[utoipa::path(delete, path = "/api/lists/{list}/members/{user}", tag = "sharing",
    params(KeyHeader, ("list" = String, Path, description = "List id"), ("user" = String, Path, description = "User (`sub`): another member (owner only), or the caller, who leaves the list")),
    responses(
        (status = 204, description = "Removed; `list_unshared` goes to them"),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[delete("/api/lists/<list>/members/<user>")]
pub(super) async fn remove_member(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    user: &str,
    store: &State<Store>,
) -> ApiResult<Answer<Status>> {
    let caller = caller?;
    turn?;
    let key = key?.without_body();
    let ListId(list) = list?;
    let user = validate::user_id(user)?;
    let removed = store.remove_member(&list, &user, caller.user(), key).await?;
    Ok(Answer::of(removed, |()| Status::NoContent))
}

/// Whether a request came through a proxy: it carries a forwarding header, or its peer is not
/// on this machine. The development login answers only requests that did not.
pub(super) struct Forwarded(bool);

/// Headers a proxy adds (the standard one, the common de-facto ones, and Rocket's IP header).
const FORWARDING_HEADERS: [&str; 6] =
    ["Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP", "Via"];

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Forwarded {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let header = FORWARDING_HEADERS.iter().any(|name| req.headers().contains(*name));
        let remote = req.remote().is_some_and(|peer| !peer.ip().is_loopback());
        Outcome::Success(Forwarded(header || remote))
    }
}

/// A token for anyone who asks: only with `TIDINGS_AUTH_DEV_LOGIN` (a `404` otherwise), and
/// only to a direct request from this machine (a `403` through a proxy).
#[utoipa::path(post, path = "/api/dev/token", tag = "sharing", request_body = DevLogin,
    responses(
        (status = 200, description = "A token for the user (TIDINGS_AUTH_DEV_LOGIN only)", body = DevToken),
        BadRequest, Forbidden, NotFound, TooLarge, NotJson, Invalid
    ))]
#[post("/api/dev/token", data = "<body>")]
pub(super) async fn dev_token(
    auth: &State<Option<Auth>>,
    forwarded: Forwarded,
    body: Result<JsonBody<DevLogin>, AppError>,
) -> ApiResult<Json<DevToken>> {
    let not_here = || AppError::NotFound("not_found", "no such resource".into());
    let auth = auth.as_ref().filter(|auth| auth.dev_login()).ok_or_else(not_here)?;
    if forwarded.0 {
        return Err(AppError::Forbidden(
            "forbidden",
            "the development login answers only direct requests from this machine, not \
             requests through a proxy"
                .into(),
        ));
    }
    let JsonBody(login) = body?;
    let user = validate::user_id(&login.user)?;
    let (token, expires_at) = auth
        .dev_token(&user)
        .ok_or_else(not_here)?
        .map_err(|e| AppError::Internal(format!("signing a development token: {e}")))?;
    Ok(Json(DevToken { token, expires_at }))
}
