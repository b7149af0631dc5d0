-- Idempotency keys (the `Idempotency-Key` header): a write repeated with the same key gets its
-- first outcome back and changes nothing. Per user ('' without access control); `request` is
-- what was asked (method, path, body), so a key reused for another request is refused;
-- `outcome` is the result as JSON, `event_id` the last event the write logged. Kept at least
-- 24 h, and as long as that event is in the log.
CREATE TABLE idempotency (
    user_id  TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    event_id INTEGER,
    made_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_by_time ON idempotency (made_at);
