//! Lists and todos.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, State};
use tidings_protocol::{
    List, ListPatch, ListsSnapshot, NewList, NewTodo, Todo, TodoPatch, TodosSnapshot,
};

use super::responses::{
    BadRequest, Conflict, Forbidden, Invalid, NotFound, NotJson, StorageFull, TooLarge,
    TooManyWrites, Unauthorized, Unavailable,
};
use super::written::{Answer, IdempotencyKey, KeyHeader};
use super::{created_status, ApiResult};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::budget::{ReadTurn, WriteTurn};
use crate::error::AppError;
use crate::store::{Patch, Store};
use crate::validate::{self, ListId, TodoId};

/// The lists the caller may read, with their role. With access control, a user's first
/// visit makes their personal default list.
#[utoipa::path(get, path = "/api/lists", tag = "lists",
    responses(
        (status = 200, description = "The lists the caller may read, with the event id they are current as of", body = ListsSnapshot),
        Unauthorized, Forbidden, Unavailable
    ))]
#[get("/api/lists")]
pub(super) async fn lists(
    caller: Result<Caller, AppError>,
    _turn: ReadTurn<'_>,
    store: &State<Store>,
) -> ApiResult<Json<ListsSnapshot>> {
    let caller = caller?;
    if let Some(user) = caller.user() {
        store.ensure_inbox(user).await?;
    }
    Ok(Json(store.lists(caller.user()).await?))
}

#[utoipa::path(post, path = "/api/lists", tag = "lists", request_body = NewList,
    params(KeyHeader),
    responses(
        (status = 201, description = "Created", body = List),
        (status = 200, description = "An identical earlier create (idempotent retry)", body = List),
        BadRequest, Unauthorized, Forbidden, Conflict, TooLarge, NotJson, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[post("/api/lists", data = "<body>")]
pub(super) async fn create_list(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<NewList>, AppError>,
) -> ApiResult<Answer<(Status, Json<List>)>> {
    let caller = caller?;
    turn?;
    let JsonBody(new) = body?;
    let key = key?.with_body(&new);
    let title = validate::title(&new.title)?;
    let id = new.id.as_deref().map(validate::new_list_id).transpose()?;
    let list = store.create_list(id, title, caller.user(), key).await?;
    Ok(Answer::of(list, |list| (created_status(list.created), Json(list.value))))
}

/// Rename a list (its owner and editors, with access control): `list_updated` to everyone
/// who may read it.
#[utoipa::path(patch, path = "/api/lists/{list}", tag = "lists", request_body = ListPatch,
    params(KeyHeader, ("list" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "The list after the change (a title it already has changes nothing and logs nothing)", body = List),
        BadRequest, Unauthorized, Forbidden, NotFound, TooLarge, NotJson, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[patch("/api/lists/<list>", data = "<body>")]
pub(super) async fn rename_list(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<ListPatch>, AppError>,
) -> ApiResult<Answer<Json<List>>> {
    let caller = caller?;
    turn?;
    let ListId(list) = list?;
    let JsonBody(patch) = body?;
    let key = key?.with_body(&patch);
    let title = validate::title(&patch.title)?;
    let renamed = store.rename_list(&list, title, caller.user(), key).await?;
    Ok(Answer::of(renamed, Json))
}

/// Delete a list and its todos (its owner, with access control).
#[utoipa::path(delete, path = "/api/lists/{list}", tag = "lists",
    params(KeyHeader, ("list" = String, Path, description = "List id")),
    responses(
        (status = 204, description = "Deleted with its todos; `list_deleted` is logged"),
        BadRequest, Unauthorized, Forbidden, NotFound, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[delete("/api/lists/<list>")]
pub(super) async fn delete_list(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Answer<Status>> {
    let caller = caller?;
    turn?;
    let key = key?.without_body();
    let ListId(list) = list?;
    let deleted = store.delete_list(&list, caller.user(), key).await?;
    Ok(Answer::of(deleted, |()| Status::NoContent))
}

#[utoipa::path(get, path = "/api/lists/{list}/todos", tag = "todos",
    params(("list" = String, Path, description = "List id")),
    responses(
        (status = 200, description = "The list's todos and the event id they are current as of", body = TodosSnapshot),
        Unauthorized, Forbidden, NotFound, Invalid, Unavailable
    ))]
#[get("/api/lists/<list>/todos")]
pub(super) async fn list_todos(
    caller: Result<Caller, AppError>,
    _turn: ReadTurn<'_>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<TodosSnapshot>> {
    let caller = caller?;
    let ListId(list) = list?;
    Ok(Json(store.todos(Some(&[list]), caller.user()).await?))
}

/// Several lists in one snapshot with one `last_event_id` (no `list`: every list the caller
/// may read), for a client that follows several lists on one stream.
#[utoipa::path(get, path = "/api/todos", tag = "todos",
    params(("list" = Option<Vec<String>>, Query, description = "Lists to include (repeat the parameter); none: every list the caller may read")),
    responses(
        (status = 200, description = "The todos of the lists and one event id they are current as of", body = TodosSnapshot),
        BadRequest, Unauthorized, Forbidden, NotFound, Invalid, Unavailable
    ))]
#[get("/api/todos?<list>")]
pub(super) async fn todos(
    caller: Result<Caller, AppError>,
    _turn: ReadTurn<'_>,
    list: Vec<String>,
    store: &State<Store>,
) -> ApiResult<Json<TodosSnapshot>> {
    let caller = caller?;
    let lists = validate::list_filter(list)?;
    let lists = (!lists.is_empty()).then_some(lists);
    Ok(Json(store.todos(lists.as_deref(), caller.user()).await?))
}

#[utoipa::path(post, path = "/api/lists/{list}/todos", tag = "todos", request_body = NewTodo,
    params(KeyHeader, ("list" = String, Path, description = "List id")),
    responses(
        (status = 201, description = "Created", body = Todo),
        (status = 200, description = "An identical earlier create (idempotent retry)", body = Todo),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, NotJson, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[post("/api/lists/<list>/todos", data = "<body>")]
pub(super) async fn create_todo(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<NewTodo>, AppError>,
) -> ApiResult<Answer<(Status, Json<Todo>)>> {
    let caller = caller?;
    turn?;
    let ListId(list) = list?;
    let JsonBody(new) = body?;
    let key = key?.with_body(&new);
    let title = validate::title(&new.title)?;
    let id = new.id.as_deref().map(validate::todo_id).transpose()?;
    let todo = store.create_todo(&list, id, title, caller.user(), key).await?;
    Ok(Answer::of(todo, |todo| (created_status(todo.created), Json(todo.value))))
}

/// What clearing a list's done todos did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Cleared {
    /// How many todos were deleted (each with its `todo_deleted` event).
    pub deleted: u64,
}

/// Delete the done todos of a list in one transaction (editors and owners).
#[utoipa::path(delete, path = "/api/lists/{list}/todos", tag = "todos",
    params(KeyHeader, ("list" = String, Path, description = "List id"),
        ("done" = bool, Query, description = "Must be `true`: the list's done todos are deleted")),
    responses(
        (status = 200, description = "Deleted, one `todo_deleted` each, in one id range", body = Cleared),
        BadRequest, Unauthorized, Forbidden, NotFound, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[delete("/api/lists/<list>/todos?<done>")]
pub(super) async fn clear_done(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    list: Result<ListId, AppError>,
    done: Option<&str>,
    store: &State<Store>,
) -> ApiResult<Answer<Json<Cleared>>> {
    let caller = caller?;
    turn?;
    let key = key?.without_body();
    let ListId(list) = list?;
    if done != Some("true") {
        return Err(AppError::BadRequest(
            "done_required",
            "only the done todos of a list are deleted at once: add `?done=true`".into(),
        ));
    }
    let cleared = store.clear_done(&list, caller.user(), key).await?;
    Ok(Answer::of(cleared, |deleted| Json(Cleared { deleted })))
}

#[utoipa::path(patch, path = "/api/todos/{id}", tag = "todos", request_body = TodoPatch,
    params(KeyHeader, ("id" = String, Path, description = "Todo id (a UUID)")),
    responses(
        (status = 200, description = "The todo after the change", body = Todo),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, NotJson, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[patch("/api/todos/<id>", data = "<body>")]
pub(super) async fn update_todo(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    id: Result<TodoId, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<TodoPatch>, AppError>,
) -> ApiResult<Answer<Json<Todo>>> {
    let caller = caller?;
    turn?;
    let TodoId(id) = id?;
    let JsonBody(patch) = body?;
    let key = key?.with_body(&patch);
    if patch.is_empty() {
        return Err(AppError::Unprocessable(
            "empty_patch",
            "give at least one of `title`, `done`, `list_id`, `after`".into(),
        ));
    }
    let patch = Patch {
        title: patch.title.as_deref().map(validate::title).transpose()?,
        done: patch.done,
        list_id: patch.list_id.as_deref().map(validate::list_id).transpose()?,
        after: match patch.after {
            Some(Some(id)) => Some(Some(validate::todo_id(&id)?)),
            other => other,
        },
    };
    let todo = store.update_todo(&id, patch, caller.user(), key).await?;
    Ok(Answer::of(todo, Json))
}

#[utoipa::path(delete, path = "/api/todos/{id}", tag = "todos",
    params(KeyHeader, ("id" = String, Path, description = "Todo id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        BadRequest, Unauthorized, Forbidden, NotFound, Invalid, TooManyWrites, Unavailable, StorageFull
    ))]
#[delete("/api/todos/<id>")]
pub(super) async fn delete_todo(
    caller: Result<Caller, AppError>,
    key: Result<IdempotencyKey, AppError>,
    turn: Result<WriteTurn, AppError>,
    id: Result<TodoId, AppError>,
    store: &State<Store>,
) -> ApiResult<Answer<Status>> {
    let caller = caller?;
    turn?;
    let key = key?.without_body();
    let TodoId(id) = id?;
    let deleted = store.delete_todo(&id, caller.user(), key).await?;
    Ok(Answer::of(deleted, |()| Status::NoContent))
}
