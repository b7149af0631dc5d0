-- When each event was logged (ms), so the log keeps the events of the last
-- TIDINGS_RETAIN_SECS as well as the newest TIDINGS_RETAIN_EVENTS. Events from before have no
-- time (0): only the count keeps them.
ALTER TABLE events ADD COLUMN made_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_by_time ON events (made_at);
