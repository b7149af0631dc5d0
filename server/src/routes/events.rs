//! The event stream and the health check.

use bytes::Bytes;
use futures_util::Stream;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{get, post, Shutdown, State};
use tidings_protocol::StreamTicket;

use super::responses::{
    BadRequest, Forbidden, NotFound, StorageFull, TooManyStreams, TooManyWrites, Unauthorized,
    Unavailable,
};
use super::ApiResult;
use crate::auth::Caller;
use crate::budget::WriteTurn;
use crate::config::Settings;
use crate::error::AppError;
use crate::hub::{Client, Hub, Refused};
use crate::presence::Presence;
use crate::store::{Shown, Store};
use crate::stream::{self, SseBody, StreamOptions, StreamRequest};
use crate::validate;

/// The `Last-Event-ID` header a browser sends when its EventSource reconnects.
pub(super) struct LastEventIdHeader(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventIdHeader {
    type Error = AppError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AppError> {
        match validate::one_value("Last-Event-ID", req.headers().get("Last-Event-ID")) {
            Ok(value) => Outcome::Success(LastEventIdHeader(value.map(str::to_owned))),
            Err(error) => Outcome::Error((error.status(), error)),
        }
    }
}

/// The peer address, or the address in Rocket's IP header when `trust_ip_header` is on.
pub(super) struct PeerAddress(Option<std::net::IpAddr>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PeerAddress {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(PeerAddress(crate::auth::peer_address(req)))
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

/// A query parameter that may appear once (see [`validate::one_value`]).
fn single(name: &'static str, values: Vec<String>) -> ApiResult<Option<String>> {
    Ok(validate::one_value(name, values.iter().map(String::as_str))?.map(str::to_owned))
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

/// Trade the caller's token for a one-time stream ticket, good for a few seconds, so the
/// stream's URL carries no bearer token (it ends up in proxy logs and browser history).
#[utoipa::path(post, path = "/api/events/ticket", tag = "events",
    responses(
        (status = 200, description = "A ticket for `GET /api/events?ticket=…`, good once", body = StreamTicket),
        Unauthorized, Forbidden, NotFound, TooManyWrites, Unavailable, StorageFull
    ))]
#[post("/api/events/ticket")]
pub(super) async fn ticket(
    caller: Result<Caller, AppError>,
    turn: Result<WriteTurn, AppError>,
    store: &State<Store>,
) -> ApiResult<Json<StreamTicket>> {
    let Caller::User(user) = caller? else {
        return Err(AppError::NotFound(
            "not_found",
            "without access control a stream needs no ticket".into(),
        ));
    };
    turn?;
    let (ticket, expires_at) = store.issue_ticket(&user.id, user.expires_at).await?;
    Ok(Json(StreamTicket { ticket, expires_at }))
}

/// The stream. `access_token` is read by the caller guard (EventSource cannot send headers);
/// it is named here so Rocket accepts it in the query.
#[allow(clippy::too_many_arguments)] // Rocket injects each guard as its own argument.
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(
        ("list" = Option<Vec<String>>, Query, description = "Lists to follow (repeat the parameter); none: every list the caller may read"),
        ("last_event_id" = Option<String>, Query, description = "Resume after this event id (the Last-Event-ID header wins)"),
        ("epoch" = Option<String>, Query, description = "The epoch the resume point belongs to"),
        ("ticket" = Option<String>, Query, description = "A one-time stream ticket (`POST /api/events/ticket`): no token in the URL"),
        ("access_token" = Option<String>, Query, description = "A token, for EventSource (which cannot send headers); a ticket keeps it out of logs"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent by the browser on reconnect)")
    ),
    responses(
        (status = 200, description = "A text/event-stream of SSE messages: `connected` first, then changes, `heartbeat`, `resync`", content_type = "text/event-stream", body = String),
        BadRequest, Unauthorized, Forbidden, NotFound, TooManyStreams, Unavailable
    ))]
#[get("/api/events?<list>&<last_event_id>&<epoch>&<access_token>&<ticket>")]
pub(super) async fn events(
    caller: Result<Caller, AppError>,
    list: Vec<String>,
    last_event_id: Vec<String>,
    epoch: Vec<String>,
    access_token: Option<&str>,
    ticket: Option<&str>,
    header: Result<LastEventIdHeader, AppError>,
    peer: PeerAddress,
    store: &State<Store>,
    hub: &State<Hub>,
    presence: &State<Presence>,
    settings: &State<Settings>,
    shutdown: Shutdown,
) -> ApiResult<SseBody<impl Stream<Item = Bytes> + Send + 'static>> {
    // Every refusal is counted by its code, whatever step refused.
    let opened: ApiResult<_> = async move {
        let _ = (access_token, ticket);
        let caller = caller?;
        let header = header?;
        let lists = validate::list_filter(list)?;
        let last_event_id = single("last_event_id", last_event_id)?;
        let resume_from = resume_point(header.0.as_deref(), last_event_id.as_deref())?;
        let epoch = epoch_param(single("epoch", epoch)?)?;
        // Per user with access control (however many addresses they use), per address without.
        let client = match (&caller, peer.0) {
            (Caller::User(user), _) => Client::User(user.id.clone()),
            (Caller::Anyone, Some(ip)) => Client::Address(ip),
            (Caller::Anyone, None) => Client::Unknown,
        };
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
        if let Some(missing) = store.first_unreadable_list(&lists, caller.user()).await? {
            return Err(AppError::list_not_found(&missing));
        }
        let (user, expires_at) = match caller {
            Caller::User(user) => (Some(user.id), Some(user.expires_at)),
            Caller::Anyone => (None, None),
        };
        let request = StreamRequest {
            lists: (!lists.is_empty()).then_some(lists),
            resume_from,
            epoch,
            user,
            expires_at,
        };
        let options = StreamOptions {
            heartbeat_secs: settings.heartbeat_secs,
            retry_ms: settings.retry_ms + fastrand::u64(0..=settings.retry_ms / 2),
        };
        let stream =
            stream::open(store.inner().clone(), hub, presence, request, options, slot, shutdown)
                .await?;
        Ok(SseBody(stream))
    }
    .await;
    if let Err(e) = &opened {
        crate::metrics::stream_refused(e.code());
    }
    opened
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
    fn a_parameter_given_twice_must_agree() {
        use super::single;
        assert_eq!(single("x", vec!["5".into(), "5".into()]).unwrap().as_deref(), Some("5"));
        assert_eq!(single("x", vec![]).unwrap(), None);
        assert_eq!(
            single("x", vec!["3".into(), "5".into()]).unwrap_err().code(),
            "repeated_parameter"
        );
    }

    #[test]
    fn epochs_are_short_hex_like_strings() {
        assert_eq!(epoch_param(Some("ab12".into())).unwrap().as_deref(), Some("ab12"));
        assert_eq!(epoch_param(Some(String::new())).unwrap(), None);
        assert!(epoch_param(Some("a/b".into())).is_err());
        assert!(epoch_param(Some("a".repeat(65))).is_err());
    }
}
