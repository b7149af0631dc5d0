//! The HTTP API.
//!
//! | module | routes |
//! | --- | --- |
//! | `lists` | lists and todos: snapshots, creates, changes, deletes |
//! | `sharing` | members of a list, and the development login |
//! | `events` | the event stream and the health check |
//!
//! Every route takes the caller (`Result<Caller, AppError>`: a missing or bad token is the
//! route's `401`) and hands the store the user, or `None` when access control is off.

mod events;
mod lists;
mod sharing;

use rocket::http::Status;
use rocket::{routes, Route};

use crate::error::AppError;

/// Every route of the API (CORS preflight included).
pub fn routes() -> Vec<Route> {
    routes![
        lists::lists,
        lists::create_list,
        lists::delete_list,
        lists::list_todos,
        lists::todos,
        lists::create_todo,
        lists::update_todo,
        lists::delete_todo,
        sharing::members,
        sharing::set_member,
        sharing::remove_member,
        sharing::dev_token,
        events::events,
        events::health,
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
