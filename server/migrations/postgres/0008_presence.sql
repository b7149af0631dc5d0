-- Who has a stream open on which list, per server process (see server/src/presence.rs). A
-- process keeps its own rows and beats `seen_at`; the rows of a process not seen for a few
-- seconds (it died) are ignored by readers, and forgotten a minute later. `user_id` is '' for
-- a stream without access control.
CREATE TABLE presence_processes (
    process TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE TABLE presence (
    process TEXT NOT NULL,
    list_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    streams BIGINT NOT NULL,
    PRIMARY KEY (process, list_id, user_id)
);
CREATE INDEX presence_by_list ON presence (list_id);
