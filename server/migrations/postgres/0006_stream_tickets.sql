-- One-time stream tickets (POST /api/events/ticket): a stream opened with `?ticket=` puts no
-- bearer token in any URL or log. A ticket is for one user, good once, for seconds;
-- `token_expires_at` is when the token it was traded for expires (the stream ends then).
CREATE TABLE stream_tickets (
    ticket           TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    token_expires_at BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX stream_tickets_by_expiry ON stream_tickets (expires_at);
