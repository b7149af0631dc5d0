-- Lists, todos and the durable event log, as on SQLite. Event ids are not a sequence: a
-- writer takes the log's advisory lock, then `meta.last_event_id + 1`, so ids are gapless
-- and follow commit order across every process (see store/postgres.rs).

CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    epoch           TEXT NOT NULL,
    last_event_id   BIGINT NOT NULL,
    log_floor       BIGINT NOT NULL,
    last_created_at BIGINT NOT NULL
);
INSERT INTO meta VALUES (1, replace(gen_random_uuid()::text, '-', ''), 0, 0, 0);

CREATE TABLE lists (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE todos (
    id         TEXT PRIMARY KEY,
    list_id    TEXT NOT NULL REFERENCES lists(id),
    title      TEXT NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX todos_by_list ON todos (list_id, created_at, id);

CREATE TABLE events (
    id         BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL,
    list_id    TEXT NOT NULL,
    moved_from TEXT,
    global     BOOLEAN NOT NULL DEFAULT false,
    audience   TEXT,
    data       TEXT NOT NULL
);

CREATE TABLE slugs (
    base  TEXT PRIMARY KEY,
    taken BIGINT NOT NULL
);

CREATE TABLE tombstones (
    id       TEXT PRIMARY KEY,
    list_id  TEXT NOT NULL,
    event_id BIGINT NOT NULL
);
CREATE INDEX tombstones_by_event ON tombstones (event_id);
