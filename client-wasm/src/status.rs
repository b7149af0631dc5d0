//! Connection status and client errors, as the `status` store shows them.

use std::fmt;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the first connection (or loading the snapshot before it).
    Connecting,
    /// Connected and receiving.
    Open,
    /// Lost and trying again (`attempt` says how often).
    Reconnecting,
    /// Not connected: closed for good, stopped by the server, or idle without subscribers.
    Closed,
}

impl ConnectionState {
    /// The state named `name` in JavaScript (`closed` for an unknown name).
    pub fn from_name(name: &str) -> Self {
        match name {
            "connecting" => ConnectionState::Connecting,
            "open" => ConnectionState::Open,
            "reconnecting" => ConnectionState::Reconnecting,
            _ => ConnectionState::Closed,
        }
    }

    /// The name used in JavaScript.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Open => "open",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Closed => "closed",
        }
    }
}

/// How a tab gets its events: its own connection, or one connection shared by the tabs of
/// an origin that follow the same server and lists (`shareConnection`). `ConnectionRole` in
/// TypeScript; not what a user may do with a list ([`tidings_protocol::Role`], `ListRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionRole {
    /// Its own connection (sharing off, or Web Locks or `BroadcastChannel` missing).
    #[default]
    Own,
    /// It holds the shared connection and relays every event to the other tabs.
    Leader,
    /// It applies the events the leading tab relays; its status is the leader's connection.
    Follower,
}

impl ConnectionRole {
    /// The name used in JavaScript.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionRole::Own => "own",
            ConnectionRole::Leader => "leader",
            ConnectionRole::Follower => "follower",
        }
    }
}

/// Everything that can go wrong, as a value (never a panic). The connection and the REST
/// calls live in JavaScript (`js/`), and report their problems as [`ClientError::Reported`]:
/// `network_error`, the server's own codes (`invalid_title`, `not_found`, `unauthorized`, …)
/// with its status, `unauthorized` without one (the `accessToken` function gave no token),
/// `heartbeat_timeout`, `stopped_by_server` (a `204`), `wrong_content_type`, `invalid_input`,
/// `list_deleted` and `list_unshared` (a feed's list went away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// A thrown JavaScript value without a code: what it said.
    Network(String),
    /// An event or response did not have the expected shape; the stream goes on.
    Decode {
        /// The SSE event name, or the request that returned it.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The URL or an option is unusable.
    InvalidInput(String),
    /// A problem the JavaScript side reported (this tab's connection or REST calls), or the
    /// leading tab's, as it relayed it to this tab.
    Reported {
        /// Its [`ClientError::code`].
        code: String,
        /// Its message.
        message: String,
        /// Its HTTP status, when the server answered.
        status: Option<u16>,
    },
}

impl ClientError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Network(_) => "network_error",
            ClientError::Decode { .. } => "decode_error",
            ClientError::InvalidInput(_) => "invalid_input",
            ClientError::Reported { code, .. } => code,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Reported { status, .. } => *status,
            _ => None,
        }
    }

    /// The human-readable message. Built by hand rather than with `format!`: nothing in the
    /// package formats (README "Package size"); `Display` is this.
    pub fn message(&self) -> String {
        match self {
            ClientError::Network(m) => ["network error: ", m].concat(),
            ClientError::Decode { what, message } => {
                ["could not decode ", what, ": ", message].concat()
            }
            ClientError::InvalidInput(m) | ClientError::Reported { message: m, .. } => m.clone(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ClientError {}

/// A snapshot of a connection, the value of the `status` store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// Where the connection is.
    pub state: ConnectionState,
    /// Failed attempts since the last stable connection.
    pub attempt: u32,
    /// The id up to which every change has been applied (what a reconnect resumes after).
    pub last_event_id: Option<u64>,
    /// The most recent problem, cleared by a successful connection.
    pub error: Option<ClientError>,
    /// Own connection, or leading or following a shared one.
    pub role: ConnectionRole,
}

impl Default for ConnectionStatus {
    fn default() -> Self {
        ConnectionStatus {
            state: ConnectionState::Closed,
            attempt: 0,
            last_event_id: None,
            error: None,
            role: ConnectionRole::Own,
        }
    }
}
