//! The HTTP API: REST for lists and todos, the event stream, and the health check.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, routes, Route, Shutdown, State};
use tidings_protocol::{
    Health, List, ListsSnapshot, NewList, NewTodo, Todo, TodoPatch, TodosSnapshot,
};

use crate::body::JsonBody;
use crate::config::Settings;
use crate::error::AppError;
use crate::hub::{Client, Hub, Refused};
use crate::store::{Patch, Shown, Store};
use crate::stream::{self, SseBody, StreamOptions, StreamRequest};
use crate::tailer::TailerStatus;
use crate::validate::{self, ListId, TodoId};

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
async fn list_todos(
    list: Result<ListId, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<TodosSnapshot>> {
    let ListId(list) = list?;
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
    list: Result<ListId, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<NewTodo>, AppError>,
) -> ApiResult<(Status, Json<Todo>)> {
    let ListId(list) = list?;
    let JsonBody(new) = body?;
    let title = validate::title(&new.title)?;
    let id = new.id.as_deref().map(validate::todo_id).transpose()?;
    let todo = store.create_todo(&list, id, title).await?;
    Ok((created_status(todo.created), Json(todo.value)))
}

#[patch("/api/todos/<id>", data = "<body>")]
async fn update_todo(
    id: Result<TodoId, AppError>,
    store: &State<Store>,
    body: Result<JsonBody<TodoPatch>, AppError>,
) -> ApiResult<Json<Todo>> {
    let TodoId(id) = id?;
    let JsonBody(patch) = body?;
    if patch.is_empty() {
        return Err(AppError::Unprocessable(
            "empty_patch",
            "give at least one of `title`, `done`, `list_id`".into(),
        ));
    }
    let patch = Patch {
        title: patch.title.as_deref().map(validate::title).transpose()?,
        done: patch.done,
        list_id: patch.list_id.as_deref().map(validate::list_id).transpose()?,
    };
    Ok(Json(store.update_todo(&id, patch).await?))
}

#[delete("/api/todos/<id>")]
async fn delete_todo(id: Result<TodoId, AppError>, store: &State<Store>) -> ApiResult<Status> {
    let TodoId(id) = id?;
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

/// Who is asking, for the per-client stream cap: the peer address, or the address in
/// Rocket's IP header when `trust_ip_header` is on.
#[rocket::async_trait]
impl<'r> FromRequest<'r> for Client {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let trust_header = req.rocket().state::<Settings>().is_some_and(|s| s.trust_ip_header);
        let ip = if trust_header { req.client_ip() } else { req.remote().map(|a| a.ip()) };
        Outcome::Success(ip.map_or(Client::Unknown, Client::Address))
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
                format!("last event id `{}` is not a non-negative integer", Shown(raw)),
            )
        }),
    }
}

/// An epoch as sent by a client: the hex string of `connected.epoch`.
fn epoch_param(raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.filter(|e| !e.is_empty()) {
        Some(e) if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(Some(e)),
        Some(e) => Err(AppError::BadRequest(
            "invalid_epoch",
            format!("epoch `{}` is not an epoch this server hands out", Shown(&e)),
        )),
        None => Ok(None),
    }
}

#[allow(clippy::too_many_arguments)] // Rocket injects each guard as its own argument.
#[get("/api/events?<list>&<last_event_id>&<epoch>")]
async fn events(
    list: Vec<String>,
    last_event_id: Option<String>,
    epoch: Option<String>,
    header: LastEventIdHeader,
    client: Client,
    store: &State<Store>,
    hub: &State<Hub>,
    settings: &State<Settings>,
    shutdown: Shutdown,
) -> ApiResult<SseBody<impl Stream<Item = Bytes> + Send + 'static>> {
    let lists = validate::list_filter(list)?;
    let resume_from = resume_point(header.0.as_deref(), last_event_id.as_deref())?;
    let epoch = epoch_param(epoch)?;
    let slot = hub.try_open_stream(client).map_err(|refused| match refused {
        Refused::ServerFull => AppError::Unavailable {
            code: "too_many_streams",
            message: format!(
                "this server holds its maximum of {} event streams; retry later",
                settings.max_streams
            ),
            retry_after: 2 + fastrand::u64(0..=4),
        },
        Refused::ClientFull => AppError::TooManyRequests {
            code: "too_many_client_streams",
            message: format!(
                "this client holds its maximum of {} event streams; close one first",
                settings.max_streams_per_client
            ),
            retry_after: 5 + fastrand::u64(0..=5),
        },
    })?;
    if let Some(missing) = store.first_missing_list(&lists).await? {
        return Err(AppError::list_not_found(&missing));
    }
    let request = StreamRequest { lists: (!lists.is_empty()).then_some(lists), resume_from, epoch };
    let options = StreamOptions {
        heartbeat_secs: settings.heartbeat_secs,
        retry_ms: settings.retry_ms + fastrand::u64(0..=settings.retry_ms / 2),
    };
    let stream = stream::open(store.inner().clone(), hub, request, options, slot, shutdown).await?;
    Ok(SseBody(stream))
}

/// How long the health check waits for the database before it reports it unavailable.
const HEALTH_PATIENCE: Duration = Duration::from_secs(2);

#[get("/health")]
async fn health(
    store: &State<Store>,
    hub: &State<Hub>,
    tailer: &State<Arc<TailerStatus>>,
) -> (Status, Json<Health>) {
    // The tailer's own connection: snapshot reads holding every reader do not make this wait.
    let head = tokio::time::timeout(HEALTH_PATIENCE, store.probe_head()).await;
    let ok = matches!(head, Ok(Ok(_)));
    if let Ok(Ok(head)) = head {
        tailer.saw_head(head.last_event_id);
    }
    let last_event_id = tailer.head_seen();
    let broadcast_id = tailer.broadcast_id();
    let health = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        open_streams: hub.open_streams() as u64,
        last_event_id,
        epoch: store.epoch().to_owned(),
        database: if ok { "ok" } else { "unavailable" }.into(),
        broadcast_id,
        tailer_lag: last_event_id.saturating_sub(broadcast_id),
    };
    (if ok { Status::Ok } else { Status::ServiceUnavailable }, Json(health))
}

#[cfg(test)]
mod tests {
    use super::{epoch_param, resume_point};

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

    #[test]
    fn epochs_are_short_hex_like_strings() {
        assert_eq!(epoch_param(Some("ab12".into())).unwrap().as_deref(), Some("ab12"));
        assert_eq!(epoch_param(Some(String::new())).unwrap(), None);
        assert!(epoch_param(Some("a/b".into())).is_err());
        assert!(epoch_param(Some("a".repeat(65))).is_err());
    }
}
