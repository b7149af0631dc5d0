-- Lists, todos, and the durable event log. The log is written in the same transaction as the
-- change it records; its AUTOINCREMENT id is the global, strictly increasing event id (never
-- reused, even after old rows are pruned).
CREATE TABLE lists (
    id         TEXT PRIMARY KEY NOT NULL,
    title      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE todos (
    id         TEXT PRIMARY KEY NOT NULL,
    list_id    TEXT NOT NULL REFERENCES lists(id),
    title      TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX todos_by_list ON todos (list_id, created_at, id);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    -- the list the change happened in; `moved_from` the list a moved todo left
    list_id    TEXT NOT NULL,
    moved_from TEXT,
    -- 1 for events every stream receives (list_created)
    global     INTEGER NOT NULL DEFAULT 0,
    data       TEXT NOT NULL
);

