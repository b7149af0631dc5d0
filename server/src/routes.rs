//! The HTTP API: REST for lists and todos, the event stream, and the health check.

use bytes::Bytes;
use futures_util::Stream;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, routes, Route, Shutdown, State};
use tidings_protocol::{
    is_valid_list_id, Health, List, ListsSnapshot, NewList, NewTodo, Todo, TodoPatch, TodosSnapshot,
};

use crate::body::JsonBody;
use crate::config::Settings;
use crate::error::AppError;
use crate::hub::Hub;
use crate::store::Store;
use crate::stream::{self, SseBody, StreamOptions, StreamRequest};
use crate::validate;

/// Every route of the API (CORS preflight included).
pub fn routes() -> Vec<Route> {
    routes![
        lists,
        create_list,
        list_todos,
        todos,
        create_todo,
        update_todo,
        delete_todo,
        events,
        health,
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

/// A list id taken from the URL: one that is not a slug names no list.
fn path_list_id(raw: &str) -> ApiResult<String> {
    if is_valid_list_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(AppError::list_not_found(raw))
    }
}

/// A todo id taken from the URL, normalised; one that is not a UUID names no todo.
fn path_todo_id(raw: &str) -> ApiResult<String> {
    validate::todo_id(raw).map_err(|_| AppError::todo_not_found(raw))
}

#[get("/api/lists")]
async fn lists(store: &State<Store>) -> ApiResult<Json<ListsSnapshot>> {
    Ok(Json(store.lists().await?))
}

#[post("/api/lists", data = "<body>")]
async fn create_list(
    store: &State<Store>,
    body: Result<JsonBody<NewList>, AppError>,
) -> ApiResult<(Status, Json<List>)> {
    let JsonBody(new) = body?;
    let title = validate::title(&new.title)?;
    let id = new.id.as_deref().map(validate::list_id).transpose()?;
    let list = store.create_list(id, title).await?;
    Ok((created_status(list.created), Json(list.value)))
}

#[get("/api/lists/<list>/todos")]
async fn list_todos(list: &str, store: &State<Store>) -> ApiResult<Json<TodosSnapshot>> {
    let list = path_list_id(list)?;
    Ok(Json(store.todos(Some(&[list])).await?))
}

/// Several lists in one snapshot with one `last_event_id` (no `list`: every list), for a
/// client that follows several lists on one stream.
#[get("/api/todos?<list>")]
async fn todos(list: Vec<String>, store: &State<Store>) -> ApiResult<Json<TodosSnapshot>> {
    let lists = validate::list_filter(list)?;
    let lists = (!lists.is_empty()).then_some(lists);
    Ok(Json(store.todos(lists.as_deref()).await?))
}

#[post("/api/lists/<list>/todos", data = "<body>")]
async fn create_todo(
    list: &str,
    store: &State<Store>,
    body: Result<JsonBody<NewTodo>, AppError>,
) -> ApiResult<(Status, Json<Todo>)> {
    let list = path_list_id(list)?;
    let JsonBody(new) = body?;
    let title = validate::title(&new.title)?;
    let id = new.id.as_deref().map(validate::todo_id).transpose()?;
    let todo = store.create_todo(&list, id, title).await?;
    Ok((created_status(todo.created), Json(todo.value)))
}

#[patch("/api/todos/<id>", data = "<body>")]
async fn update_todo(
    id: &str,
    store: &State<Store>,
    body: Result<JsonBody<TodoPatch>, AppError>,
) -> ApiResult<Json<Todo>> {
    let id = path_todo_id(id)?;
    let JsonBody(patch) = body?;
    if patch.is_empty() {
        return Err(AppError::Unprocessable(
            "empty_patch",
            "give at least one of `title`, `done`, `list_id`".into(),
        ));
    }
    let title = patch.title.as_deref().map(validate::title).transpose()?;
    let list_id = patch.list_id.as_deref().map(validate::list_id).transpose()?;
    Ok(Json(store.update_todo(&id, title, patch.done, list_id).await?))
}

#[delete("/api/todos/<id>")]
async fn delete_todo(id: &str, store: &State<Store>) -> ApiResult<Status> {
    let id = path_todo_id(id)?;
    store.delete_todo(&id).await?;
    Ok(Status::NoContent)
}

/// The `Last-Event-ID` header a browser sends when its EventSource reconnects.
struct LastEventIdHeader(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventIdHeader {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let value = req.headers().get_one("Last-Event-ID").map(str::to_owned);
        Outcome::Success(LastEventIdHeader(value))
    }
}

/// The resume point: the header (newest, set by the browser) wins over the query parameter
/// (set by a client that re-creates its EventSource).
fn resume_point(header: Option<&str>, query: Option<&str>) -> ApiResult<Option<u64>> {
    let given = |v: &&str| !v.trim().is_empty();
    match header.filter(given).or(query.filter(given)) {
        None => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
            AppError::BadRequest(
                "invalid_last_event_id",
                format!("last event id `{}` is not a non-negative integer", raw.escape_debug()),
            )
        }),
    }
}

#[allow(clippy::too_many_arguments)] // Rocket injects each guard as its own argument.
#[get("/api/events?<list>&<last_event_id>")]
async fn events(
    list: Vec<String>,
    last_event_id: Option<String>,
    header: LastEventIdHeader,
    store: &State<Store>,
    hub: &State<Hub>,
    settings: &State<Settings>,
    shutdown: Shutdown,
) -> ApiResult<SseBody<impl Stream<Item = Bytes> + Send + 'static>> {
    let lists = validate::list_filter(list)?;
    let resume_from = resume_point(header.0.as_deref(), last_event_id.as_deref())?;
    let slot = hub.try_open_stream().ok_or_else(|| AppError::Unavailable {
        code: "too_many_streams",
        message: format!(
            "this server holds its maximum of {} event streams; retry later",
            settings.max_streams
        ),
        retry_after: 2 + fastrand::u64(0..=4),
    })?;
    if let Some(missing) = store.first_missing_list(&lists).await? {
        return Err(AppError::list_not_found(&missing));
    }
    let request = StreamRequest { lists: (!lists.is_empty()).then_some(lists), resume_from };
    let options = StreamOptions {
        heartbeat_secs: settings.heartbeat_secs,
        retry_ms: settings.retry_ms + fastrand::u64(0..=settings.retry_ms / 2),
    };
    let stream = stream::open(store.inner().clone(), hub, request, options, slot, shutdown).await?;
    Ok(SseBody(stream))
}

#[get("/health")]
async fn health(store: &State<Store>, hub: &State<Hub>) -> (Status, Json<Health>) {
    let head = store.head().await;
    let status = if head.is_ok() { Status::Ok } else { Status::ServiceUnavailable };
    let health = Health {
        status: if head.is_ok() { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        open_streams: hub.open_streams() as u64,
        last_event_id: head.unwrap_or(0),
    };
    (status, Json(health))
}

#[cfg(test)]
mod tests {
    use super::resume_point;

    #[test]
    fn header_wins_and_junk_is_rejected() {
        assert_eq!(resume_point(Some("7"), Some("3")).unwrap(), Some(7));
        assert_eq!(resume_point(None, Some("3")).unwrap(), Some(3));
        assert_eq!(resume_point(Some(""), Some("3")).unwrap(), Some(3));
        assert_eq!(resume_point(None, None).unwrap(), None);
        let err = resume_point(Some("abc"), None).unwrap_err();
        assert_eq!(err.code(), "invalid_last_event_id");
        assert!(resume_point(None, Some("-1")).is_err());
    }
}
