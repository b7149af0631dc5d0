//! The tidings reference server: a todo REST API and a resumable Server-Sent Events stream
//! on Rocket, with SQLite storage and a durable event log.
//!
//! [`rocket()`] builds the application from the environment (`Rocket.toml`, `ROCKET_*`,
//! `TIDINGS_*`); [`build`] takes an explicit [`Figment`] for tests and embedding.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | settings and their defaults |
//! | [`store`] | SQLite: data, event log, transactions |
//! | [`hub`] | the broadcast of framed events, stream slots, heartbeat |
//! | [`stream`] | one client's stream: resume, replay, live, lag catch-up |
//! | [`routes`] | the HTTP API |
//! | [`body`], [`validate`] | request bodies and input rules |
//! | [`cors`], [`error`] | CORS and the JSON error responses |

pub mod body;
pub mod config;
pub mod cors;
pub mod error;
pub mod hub;
pub mod routes;
pub mod store;
pub mod stream;
pub mod validate;

use std::time::Duration;

use rocket::fairing::{self, AdHoc};
use rocket::figment::Figment;
use rocket::fs::FileServer;
use rocket::{Build, Rocket};

pub use config::Settings;
pub use error::AppError;
pub use hub::Hub;
pub use store::Store;

/// The server configured from the environment, as `main` runs it.
pub fn rocket() -> Rocket<Build> {
    build(Settings::figment())
}

/// The server configured from `figment`, which holds Rocket's keys and the [`Settings`] keys.
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(AdHoc::try_on_ignite("tidings storage", setup))
        .attach(AdHoc::on_liftoff("tidings heartbeat", |rocket| {
            Box::pin(async move {
                let (Some(hub), Some(settings)) =
                    (rocket.state::<Hub>(), rocket.state::<Settings>())
                else {
                    return;
                };
                let period = Duration::from_secs(settings.heartbeat_secs);
                tokio::spawn(hub.clone().run_heartbeat(period, rocket.shutdown()));
            })
        }))
        .attach(cors::Cors)
        .mount("/", routes::routes())
        .register("/", error::catchers())
}

/// The directory of the web app served at `/`.
struct StaticDir(std::path::PathBuf);

/// Any other `GET` outside `/api`: the app's `index.html` (a single-page app's routes).
#[rocket::get("/<path..>", rank = 30)]
async fn app_fallback(
    path: std::path::PathBuf,
    dir: &rocket::State<StaticDir>,
) -> Option<rocket::fs::NamedFile> {
    if path.starts_with("api") {
        return None; // a JSON 404 from the catcher, never the app's HTML
    }
    rocket::fs::NamedFile::open(dir.0.join("index.html")).await.ok()
}

/// Read the settings, open the database and put the shared state in place.
async fn setup(rocket: Rocket<Build>) -> fairing::Result {
    let settings: Settings = match rocket.figment().extract() {
        Ok(settings) => settings,
        Err(e) => {
            rocket::error!("invalid tidings settings: {e}");
            return Err(rocket);
        }
    };
    if let Err(e) = settings.validate() {
        rocket::error!("invalid tidings settings: {e}");
        return Err(rocket);
    }
    let hub = Hub::new(settings.broadcast_capacity, settings.max_streams);
    let store = match Store::open(&settings.database_url, settings.retain_events, hub.clone()).await
    {
        Ok(store) => store,
        Err(e) => {
            rocket::error!("cannot open database `{}`: {e}", settings.database_url);
            return Err(rocket);
        }
    };
    let mut rocket =
        rocket.manage(cors::CorsPolicy::new(&settings.cors_origins)).manage(hub).manage(store);
    if let Some(dir) = settings.static_dir.as_ref().filter(|dir| dir.is_dir()) {
        // Below the API routes, so `/api/...` never reaches the files; other paths fall back
        // to the app's `index.html` so client-side routes survive a reload.
        rocket = rocket
            .mount("/", FileServer::from(dir).rank(20))
            .mount("/", rocket::routes![app_fallback])
            .manage(StaticDir(dir.clone()));
    }
    Ok(rocket.manage(settings))
}
