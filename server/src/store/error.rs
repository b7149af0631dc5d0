//! What can go wrong in storage, in the store's own terms. `crate::error` maps these to HTTP
//! in one place; nothing here knows about statuses.

use std::fmt;

/// A failed storage operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No list with this id (or one the caller may not see).
    #[error("no list with id `{}`", Shown(.0))]
    ListNotFound(String),
    /// No todo with this id (or one the caller may not see).
    #[error("no todo with id `{}`", Shown(.0))]
    TodoNotFound(String),
    /// `user` is not a member of `list`.
    #[error("`{}` is not a member of `{}`", Shown(.user), Shown(.list))]
    MemberNotFound {
        /// The list.
        list: String,
        /// The user named.
        user: String,
    },
    /// A todo was to move to a list that does not exist.
    #[error("cannot move to `{}`: no such list", Shown(.0))]
    UnknownTargetList(String),
    /// A todo was to be placed after a todo that is not in its target list (or itself).
    #[error("cannot place the todo after `{}`: {reason}", Shown(.after))]
    InvalidAfter {
        /// The todo named by `after`.
        after: String,
        /// Why not.
        reason: &'static str,
    },
    /// The id is taken by something else, or names a deleted todo.
    #[error("{message}")]
    Conflict {
        /// Stable code: `list_exists`, `id_conflict`, `todo_deleted`.
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// A configured limit (lists, todos per list) is reached.
    #[error("{message}")]
    LimitReached {
        /// Stable code: `too_many_lists`, `too_many_todos`.
        code: &'static str,
        /// Explanation, naming the limit.
        message: String,
    },
    /// A snapshot would hold more todos than a snapshot may.
    #[error(
        "this snapshot would hold {count} todos, more than the {limit} one snapshot may; \
             ask for fewer lists"
    )]
    SnapshotTooLarge {
        /// Todos the snapshot would hold.
        count: u64,
        /// The limit (`max_snapshot_todos`).
        limit: u64,
    },
    /// The caller may see this but not do this (a viewer writing, a member sharing).
    #[error("{0}")]
    Forbidden(String),
    /// The disk is full or the configured database size is reached: nothing was written.
    #[error("the database is full: nothing was written")]
    Full,
    /// The database cannot be reached or is busy: nothing was written; retry shortly.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// An idempotency key already used for a different request.
    #[error("the idempotency key `{}` was used for a different request; use a new key", Shown(.0))]
    IdempotencyKeyReused(String),
    /// Anything else; the detail is for the log, not for clients.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the connection that produced this error must not be used again: after a
    /// failed statement, commit or rollback its transaction state is unknown.
    pub(crate) fn poisons_connection(&self) -> bool {
        self.failure_kind().is_some()
    }

    /// For a failure of the database itself rather than a refused change: `full`,
    /// `unavailable` or `internal`.
    pub(crate) fn failure_kind(&self) -> Option<&'static str> {
        match self {
            StoreError::Full => Some("full"),
            StoreError::Unavailable(_) => Some("unavailable"),
            StoreError::Internal(_) => Some("internal"),
            _ => None,
        }
    }
}

/// Longest id quoted back in a message: a client that sends 60 000 characters does not get
/// them echoed.
const MAX_SHOWN: usize = 64;

/// An id as quoted in an error message: escaped and cut to [`MAX_SHOWN`] characters.
pub(crate) struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(MAX_SHOWN) {
            write!(f, "{}", c.escape_debug())?;
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::Protocol(_) => {
                StoreError::Unavailable(e.to_string())
            }
            E::Database(db) => classify_database_error(db.code().as_deref(), &e),
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// SQLite reports numeric result codes (extended: the low byte is the primary code);
/// PostgreSQL reports SQLSTATE strings.
fn classify_database_error(code: Option<&str>, e: &sqlx::Error) -> StoreError {
    let Some(code) = code else { return StoreError::Internal(e.to_string()) };
    if let Ok(n) = code.parse::<u32>() {
        return match n & 0xff {
            13 => StoreError::Full,                                    // SQLITE_FULL
            5 | 6 | 10 | 14 => StoreError::Unavailable(e.to_string()), // BUSY, LOCKED, IOERR, CANTOPEN
            _ => StoreError::Internal(e.to_string()),
        };
    }
    match code {
        // disk_full, out_of_memory, configuration_limit_exceeded (a tablespace quota)
        "53100" | "53200" | "53400" => StoreError::Full,
        // connection exceptions, shutdowns, too many connections, serialization and deadlock
        // failures (a retry succeeds), read-only standby after a failover
        c if c.starts_with("08") || c.starts_with("57P") => StoreError::Unavailable(e.to_string()),
        "53300" | "40001" | "40P01" | "25006" => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_are_cut_in_messages() {
        let message = StoreError::TodoNotFound("x".repeat(60_000)).to_string();
        assert!(message.len() < 100, "{} bytes", message.len());
        assert!(message.ends_with("…`"));
        let message = StoreError::ListNotFound("a\nb".into()).to_string();
        assert_eq!(message, "no list with id `a\\nb`");
    }
}
