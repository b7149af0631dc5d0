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
    /// The database: `sqlite://tidings.db` (relative), `sqlite:///abs/path.db`,
    /// `sqlite::memory:`, or `postgres://user:pass@host/db` for several processes on one
    /// database.
    pub database_url: String,
    /// Connections for reads (snapshots, replays) per process. Each process also holds one
    /// writer connection and one for the tailer (and, on PostgreSQL, one `LISTEN`
    /// connection).
    pub database_connections: u32,
    /// Seconds between `heartbeat` events on every stream.
    pub heartbeat_secs: u64,
    /// Seconds between probes (an SSE comment) on every stream, so a stream whose client went
    /// away is noticed and its slot freed; 0 turns probes off (then a heartbeat does it).
    pub probe_secs: u64,
    /// Seconds between reads of the log without a signal (a missed `NOTIFY`).
    pub head_check_secs: u64,
    /// How many of the newest events the log keeps for resuming clients.
    pub retain_events: u64,
    /// And every event of how many of the last seconds, however many (so a burst of writes
    /// cannot push out the resume point of a client that was away for a minute).
    pub retain_secs: u64,
    /// Most event streams open at once; past it a new stream gets `503`.
    pub max_streams: usize,
    /// Most event streams one client holds (one remote address; one user with access
    /// control); past it `429`.
    pub max_streams_per_client: usize,
    /// Writes one client (a user; an address without access control) may make per second,
    /// sustained; past its budget a write gets `429` with `Retry-After`. 0: no budget.
    pub write_rate: u32,
    /// Writes one client may make at once before `write_rate` applies (the bucket's size).
    pub write_burst: u32,
    /// Snapshot reads one client (a user; an address without access control) has running at
    /// once; more wait their turn, so one client's large reads cannot hold every reader.
    pub max_reads_per_client: usize,
    /// Most lists on the server.
    pub max_lists: u64,
    /// Most todos in one list.
    pub max_todos_per_list: u64,
    /// Most todos one snapshot (`GET /api/todos`, `GET /api/lists/<list>/todos`) returns;
    /// a request for more gets `422 snapshot_too_large`.
    pub max_snapshot_todos: u64,
    /// Identify clients (for `max_streams_per_client`) by Rocket's `client_ip()`, which reads
    /// the `ROCKET_IP_HEADER` header (default `X-Real-IP`), instead of the connection's peer
    /// address. Turn on only behind a proxy that sets that header: anyone can send it.
    #[serde(deserialize_with = "flag")]
    pub trust_ip_header: bool,
    /// Largest database in bytes (unset: as large as the disk allows); past it writes get
    /// `507` and reads keep working.
    pub max_database_bytes: Option<u64>,
    /// Origins allowed by CORS. `*` allows any origin (without credentials); a trailing `:*`
    /// allows any port (`http://localhost:*`).
    #[serde(deserialize_with = "comma_list")]
    pub cors_origins: Vec<String>,
    /// `Host` names the server answers for (any port); other hosts get `403`, which stops DNS
    /// rebinding. `*.example.com` allows a domain and its subdomains, `*` any host. Behind a
    /// proxy, list the public names it passes on.
    #[serde(deserialize_with = "comma_list")]
    pub allowed_hosts: Vec<String>,
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
    /// `text` or `json` (one object per line, for log shippers). The level is Rocket's
    /// `ROCKET_LOG_LEVEL` (`critical`, `normal`, `debug`, `off`).
    pub log_format: crate::logging::LogFormat,
    /// Turns access control on with HS256 tokens signed with this secret (at least 32 bytes).
    pub auth_secret: Option<Secret>,
    /// Turns access control on with tokens verified by this PEM public key (RS256, ES256 or
    /// EdDSA, from the key's type).
    pub auth_public_key: Option<PathBuf>,
    /// When set, tokens must carry this `iss`.
    pub auth_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub auth_audience: Option<String>,
    /// `POST /api/dev/token {"user": …}` signs a token for anyone: for demos and tests only,
    /// refused together with a non-loopback address. Without a secret one is made at start.
    #[serde(deserialize_with = "flag")]
    pub auth_dev_login: bool,
    /// With access control on, `GET /metrics` answers only with this bearer token (and is
    /// off without one). Without access control it is open.
    pub metrics_token: Option<Secret>,
    /// With access control: most lists one user owns.
    pub max_lists_per_user: u64,
    /// With access control: most members of one list besides its owner.
    pub max_members_per_list: u64,
}

/// A secret setting: read like a string, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://tidings.db".into(),
            database_connections: 4,
            heartbeat_secs: 15,
            probe_secs: 5,
            head_check_secs: 2,
            retain_events: 100_000,
            retain_secs: 3_600,
            max_streams: 10_000,
            max_streams_per_client: 64,
            write_rate: 20,
            write_burst: 200,
            max_reads_per_client: 1,
            max_lists: 1_000_000,
            max_todos_per_list: 5_000,
            max_snapshot_todos: 10_000,
            trust_ip_header: false,
            max_database_bytes: None,
            cors_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            broadcast_capacity: 1024,
            retry_ms: 2000,
            max_body_bytes: 16 * 1024,
            static_dir: None,
            log_format: crate::logging::LogFormat::Text,
            auth_secret: None,
            auth_public_key: None,
            auth_issuer: None,
            auth_audience: None,
            auth_dev_login: false,
            metrics_token: None,
            max_lists_per_user: 1_000,
            max_members_per_list: 1_000,
        }
    }
}

impl Settings {
    /// Rocket's figment with `TIDINGS_*` environment variables merged on top.
    pub fn figment() -> Figment {
        rocket::Config::figment().merge(Env::prefixed("TIDINGS_").global())
    }

    /// Reject values the server cannot run with, naming the setting and its range.
    pub fn validate(&self) -> Result<(), String> {
        const DAY: u64 = 24 * 3600;
        let ranged: [(&str, u64, u64, u64); 20] = [
            ("database_connections", self.database_connections.into(), 1, 1_000),
            ("heartbeat_secs", self.heartbeat_secs, 1, DAY),
            ("probe_secs", self.probe_secs, 0, DAY),
            ("head_check_secs", self.head_check_secs, 1, 3_600),
            ("retain_events", self.retain_events, 1, 1 << 40),
            ("retain_secs", self.retain_secs, 0, 366 * DAY),
            ("max_streams", self.max_streams as u64, 1, 1_000_000),
            ("max_streams_per_client", self.max_streams_per_client as u64, 1, 1_000_000),
            ("write_rate", self.write_rate.into(), 0, 1_000_000),
            ("write_burst", self.write_burst.into(), 1, 1_000_000),
            ("max_reads_per_client", self.max_reads_per_client as u64, 1, 1_000_000),
            ("max_lists", self.max_lists, 1, 1 << 40),
            ("max_todos_per_list", self.max_todos_per_list, 1, 1 << 40),
            ("max_snapshot_todos", self.max_snapshot_todos, 1, 1 << 40),
            ("max_lists_per_user", self.max_lists_per_user, 1, 1 << 40),
            ("max_members_per_list", self.max_members_per_list, 1, 1 << 40),
            ("broadcast_capacity", self.broadcast_capacity as u64, 1, 1 << 20),
            ("retry_ms", self.retry_ms, 0, 10 * DAY * 1000),
            ("max_body_bytes", self.max_body_bytes, 1, 64 << 20),
            ("max_database_bytes", self.max_database_bytes.unwrap_or(1 << 20), 1 << 20, 1 << 50),
        ];
        for (name, value, min, max) in ranged {
            if !(min..=max).contains(&value) {
                return Err(format!("`{name}` must be between {min} and {max}, got {value}"));
            }
        }
        if crate::store::BackendKind::of_url(&self.database_url).is_none() {
            // Only the scheme: the rest of a URL may hold a password.
            let scheme = self.database_url.split_once(':').map_or("", |(scheme, _)| scheme);
            return Err(format!(
                "`database_url` must be a sqlite: or postgres:// URL, got `{}:…`",
                crate::store::Shown(scheme)
            ));
        }
        Ok(())
    }

    /// What the store needs of these settings.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            retain_events: self.retain_events,
            retain_secs: self.retain_secs,
            max_lists: self.max_lists,
            max_todos_per_list: self.max_todos_per_list,
            max_snapshot_todos: self.max_snapshot_todos,
            max_lists_per_user: self.max_lists_per_user,
            max_members_per_list: self.max_members_per_list,
            max_database_bytes: self.max_database_bytes,
            read_connections: self.database_connections,
            ..crate::store::StoreConfig::default()
        }
    }
}

/// A switch as people write it in an environment: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`.
fn flag<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Number(u64),
        Text(String),
    }
    match Flag::deserialize(de)? {
        Flag::Bool(b) => Ok(b),
        Flag::Number(0) => Ok(false),
        Flag::Number(1) => Ok(true),
        Flag::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            other => {
                Err(serde::de::Error::custom(format!("expected true or false, got `{other}`")))
            }
        },
        Flag::Number(n) => Err(serde::de::Error::custom(format!("expected 0 or 1, got {n}"))),
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
            .merge(("heartbeat_secs", 3))
            .merge(("auth_dev_login", 1))
            .merge(("trust_ip_header", "yes"));
        let settings: Settings = figment.extract().unwrap();
        assert_eq!(settings.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(settings.heartbeat_secs, 3);
        assert!(settings.auth_dev_login && settings.trust_ip_header);
        assert_eq!(settings.retain_events, 100_000);
    }

    #[test]
    fn out_of_range_values_are_rejected_by_name() {
        assert!(Settings::default().validate().is_ok());
        for (settings, name) in [
            (Settings { max_streams: 0, ..Settings::default() }, "max_streams"),
            (Settings { retry_ms: u64::MAX, ..Settings::default() }, "retry_ms"),
            (Settings { heartbeat_secs: u64::MAX, ..Settings::default() }, "heartbeat_secs"),
            (
                Settings { broadcast_capacity: usize::MAX, ..Settings::default() },
                "broadcast_capacity",
            ),
            (Settings { max_database_bytes: Some(1), ..Settings::default() }, "max_database_bytes"),
            (Settings { database_url: "mysql://x".into(), ..Settings::default() }, "database_url"),
        ] {
            let err = settings.validate().unwrap_err();
            assert!(err.contains(name), "{err}");
        }
        let postgres = Settings { database_url: "postgresql://h/db".into(), ..Settings::default() };
        assert!(postgres.validate().is_ok());
    }
}
