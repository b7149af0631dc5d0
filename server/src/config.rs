//! Server settings, read through Rocket's Figment: defaults, then `Rocket.toml`, then
//! `ROCKET_*` environment variables, then `TIDINGS_*` environment variables.

use std::path::PathBuf;

use rocket::figment::{providers::Env, Figment};
use serde::{Deserialize, Deserializer, Serialize};

/// Everything tidings adds to Rocket's own configuration.
///
/// Each field is also a `TIDINGS_<FIELD>` environment variable and a key in `Rocket.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// SQLite URL: `sqlite://tidings.db` (relative), `sqlite:///abs/path.db`, `sqlite::memory:`.
    pub database_url: String,
    /// Seconds between `heartbeat` events on every stream.
    pub heartbeat_secs: u64,
    /// How many of the newest events the log keeps for resuming clients.
    pub retain_events: u64,
    /// Most event streams open at once; past it a new stream gets `503`.
    pub max_streams: usize,
    /// Origins allowed by CORS. `*` allows any origin (without credentials); a trailing `:*`
    /// allows any port (`http://localhost:*`).
    #[serde(deserialize_with = "comma_list")]
    pub cors_origins: Vec<String>,
    /// Capacity of the in-memory broadcast buffer. A stream that falls further behind is
    /// caught up from the event log.
    pub broadcast_capacity: usize,
    /// Base of the `retry:` reconnect hint in milliseconds; each stream gets up to half of it
    /// again as random jitter so a restart does not bring every client back at once.
    pub retry_ms: u64,
    /// Largest JSON request body in bytes; larger bodies get `413`.
    pub max_body_bytes: u64,
    /// A built web app to serve at `/` (the demo); ignored when the directory is missing.
    pub static_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://tidings.db".into(),
            heartbeat_secs: 15,
            retain_events: 100_000,
            max_streams: 10_000,
            cors_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            broadcast_capacity: 1024,
            retry_ms: 2000,
            max_body_bytes: 16 * 1024,
            static_dir: None,
        }
    }
}

impl Settings {
    /// Rocket's figment with `TIDINGS_*` environment variables merged on top.
    pub fn figment() -> Figment {
        rocket::Config::figment().merge(Env::prefixed("TIDINGS_").global())
    }

    /// Reject values the server cannot run with, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("heartbeat_secs", self.heartbeat_secs),
            ("retain_events", self.retain_events),
            ("max_streams", self.max_streams as u64),
            ("broadcast_capacity", self.broadcast_capacity as u64),
            ("max_body_bytes", self.max_body_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        if !self.database_url.starts_with("sqlite:") {
            return Err(format!(
                "`database_url` must be a sqlite: URL, got `{}`",
                self.database_url
            ));
        }
        Ok(())
    }
}

/// Accept either a list or one comma-separated string (the natural form in an env var).
fn comma_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::Serialized;

    #[test]
    fn env_style_values_parse() {
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(("cors_origins", "https://a.example, https://b.example/"))
            .merge(("heartbeat_secs", 3));
        let settings: Settings = figment.extract().unwrap();
        assert_eq!(settings.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(settings.heartbeat_secs, 3);
        assert_eq!(settings.retain_events, 100_000);
    }

    #[test]
    fn zero_is_rejected_by_name() {
        let settings = Settings { max_streams: 0, ..Settings::default() };
        assert!(settings.validate().unwrap_err().contains("max_streams"));
        assert!(Settings::default().validate().is_ok());
    }
}
