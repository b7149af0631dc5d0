//! The tidings reference server: a todo REST API and a resumable Server-Sent Events stream
//! on Rocket, with a durable event log in SQLite (embedded) or PostgreSQL (several processes
//! on one database).
//!
//! [`rocket()`] builds the application from the environment (`Rocket.toml`, `ROCKET_*`,
//! `TIDINGS_*`); [`build`] takes an explicit [`Figment`] for tests and embedding. Both check
//! the settings and open the database before Rocket starts, so a bad configuration is one
//! [`StartError`], never a panic.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | settings and their defaults |
//! | [`auth`] | who is calling: JWT verification, the development login |
//! | [`audience`] | who receives an event: scopes, a user's read access, a stream's filter |
//! | [`store`] | storage: data, event log, transactions, two backends |
//! | [`tailer`] | follows the log and broadcasts each committed event |
//! | [`hub`] | the broadcast of framed events (envelopes), stream slots, heartbeat and probe timers |
//! | [`sse`] | the SSE wire format |
//! | [`stream`] | one client's stream: resume, replay, live, lag catch-up |
//! | [`presence`] | who has a stream open on which list, across processes |
//! | [`routes`] | the HTTP API |
//! | [`body`], [`validate`] | request bodies and input rules |
//! | [`cors`], [`error`] | CORS and the JSON error responses |
//! | [`gate`] | requests refused before routing (`Host`, URI length) |
//! | [`logging`] | request and stream log lines, text or JSON, never a token |
//! | [`metrics`] | Prometheus metrics |

pub mod audience;
pub mod auth;
pub mod body;
pub mod budget;
pub mod config;
pub mod cors;
pub mod error;
pub mod gate;
pub mod hub;
pub mod logging;
pub mod metrics;
pub mod presence;
pub mod routes;
pub mod sse;
pub mod store;
pub mod stream;
pub mod tailer;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

pub use config::Settings;
pub use error::AppError;
pub use hub::Hub;
pub use store::{Store, StoreError};
pub use tailer::TailerStatus;

/// Why the server could not start: one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is missing, malformed or out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database cannot be opened, reached or migrated.
    #[error("cannot open the database: {0}")]
    Database(StoreError),
}

/// The server configured from the environment, as `main` runs it.
pub async fn rocket() -> Result<Rocket<Build>, StartError> {
    build(Settings::figment()).await
}

/// The server configured from `figment`, which holds Rocket's keys and the [`Settings`] keys.
pub async fn build(figment: Figment) -> Result<Rocket<Build>, StartError> {
    // Rocket panics on a configuration it cannot read; check it first.
    let config =
        rocket::Config::try_from(&figment).map_err(|e| StartError::Config(one_line(&e)))?;
    let settings: Settings = figment.extract().map_err(|e| StartError::Config(one_line(&e)))?;
    settings.validate().map_err(StartError::Config)?;
    logging::init(logging::level_of(config.log_level), settings.log_format);
    let auth = auth::Auth::from_settings(&settings).map_err(StartError::Config)?;
    let loopback = config.address.is_loopback();
    if settings.auth_dev_login && !loopback {
        return Err(StartError::Config(format!(
            "`auth_dev_login` signs tokens for anyone: refused on the non-loopback address {}",
            config.address
        )));
    }
    if settings.auth_dev_login {
        log::warn!(
            "the development login is on (TIDINGS_AUTH_DEV_LOGIN): POST /api/dev/token signs a \
             token for any user it is asked for, to requests from this machine that came through \
             no proxy; never in production"
        );
    }
    if auth.is_none() && !loopback {
        log::warn!(
            "access control is off and the server listens on {}: anyone who reaches it reads \
             and writes every list (set TIDINGS_AUTH_SECRET or TIDINGS_AUTH_PUBLIC_KEY)",
            config.address
        );
    }
    let store = Store::open(&settings.database_url, settings.store_config())
        .await
        .map_err(StartError::Database)?;
    let hub = Hub::new(
        settings.broadcast_capacity,
        settings.max_streams,
        settings.max_streams_per_client,
    );
    let tailer = Arc::new(TailerStatus::default());
    // Where the tailer starts: read before any stream can open (see `tailer::spawn`).
    let tail_from = store.head().await.map_err(StartError::Database)?.last_event_id;

    let mut rocket = rocket::custom(figment)
        .attach(AdHoc::on_liftoff("tidings tailer and timers", move |rocket| {
            Box::pin(async move {
                let (Some(store), Some(hub), Some(settings), Some(status)) = (
                    rocket.state::<Store>(),
                    rocket.state::<Hub>(),
                    rocket.state::<Settings>(),
                    rocket.state::<Arc<TailerStatus>>(),
                ) else {
                    return;
                };
                let options = tailer::TailerOptions {
                    check_every: Duration::from_secs(settings.head_check_secs),
                };
                if let Err(e) = tailer::spawn(
                    store.clone(),
                    hub.clone(),
                    status.clone(),
                    options,
                    tail_from,
                    rocket.shutdown(),
                ) {
                    log::error!("cannot start the tailer: {e}; shutting down");
                    rocket.shutdown().notify();
                    return;
                }
                let heartbeat = Duration::from_secs(settings.heartbeat_secs);
                let probe =
                    (settings.probe_secs > 0).then(|| Duration::from_secs(settings.probe_secs));
                tokio::spawn(hub.clone().run_timers(heartbeat, probe, rocket.shutdown()));
                if let Some(presence) = rocket.state::<presence::Presence>() {
                    let (presence, store, hub) = (presence.clone(), store.clone(), hub.clone());
                    tokio::spawn(presence::run(presence, store, hub, rocket.shutdown()));
                }
            })
        }))
        .attach(gate::Gate)
        .attach(logging::RequestLog)
        .attach(cors::Cors)
        .mount("/", routes::routes())
        .mount("/", gate::routes())
        .register("/", error::catchers())
        .manage(cors::CorsPolicy::new(&settings.cors_origins))
        .manage(gate::HostPolicy::new(&settings.allowed_hosts))
        .manage(budget::WriteBudget::new(settings.write_rate, settings.write_burst))
        .manage(budget::ReadShares::new(settings.max_reads_per_client))
        .manage(hub)
        .manage(presence::Presence::new())
        .manage(store)
        .manage(tailer);
    if let Some(dir) = settings.static_dir.as_ref().and_then(|dir| dir.canonicalize().ok()) {
        if dir.is_dir() {
            rocket = rocket.mount("/", rocket::routes![app_file]).manage(StaticDir(dir));
        }
    }
    let metrics =
        metrics::Metrics::new(auth.is_some(), settings.metrics_token.as_ref().map(|t| t.0.clone()));
    let openapi = {
        use utoipa::OpenApi;
        routes::ApiDoc::openapi().to_json().map_err(|e| StartError::Config(e.to_string()))?
    };
    // Managed as an `Option`: `None` is access control switched off.
    Ok(rocket.manage(auth).manage(metrics).manage(routes::OpenApiJson(openapi)).manage(settings))
}

/// An error message on one line (figment's errors can span several).
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The directory of the web app served at `/`, canonical.
struct StaticDir(std::path::PathBuf);

/// A file of the web app, or its `index.html` for any other path outside `/api` (a
/// single-page app's client-side routes survive a reload). Below the API routes, so
/// `/api/...` never reaches the files. Rocket's path segments already refuse `..` and
/// dot-files; a symbolic link is followed only if it stays inside the directory.
#[rocket::get("/<path..>", rank = 20)]
async fn app_file(
    path: std::path::PathBuf,
    dir: &rocket::State<StaticDir>,
) -> Option<rocket::fs::NamedFile> {
    if path.starts_with("api") {
        return None; // a JSON 404 from the catcher, never the app's HTML
    }
    let inside = |p: &std::path::Path| p.starts_with(&dir.0);
    let file = match tokio::fs::canonicalize(dir.0.join(&path)).await {
        Ok(file) if inside(&file) && file.is_file() => file,
        Ok(file) if inside(&file) && file.join("index.html").is_file() => file.join("index.html"),
        // Missing: the app's own routes. Outside (a link out of the directory): nothing.
        Err(_) => dir.0.join("index.html"),
        Ok(_) => return None,
    };
    rocket::fs::NamedFile::open(file).await.ok()
}
