-- The log's identity and bookkeeping, tombstones for idempotent creates, and per-user events.

-- One row. `epoch` names this event log: ids mean something only within one epoch, so a
-- client resuming with an id from a replaced database can be told to resync. `log_floor` is
-- the newest id retention has pruned (every later event is kept). `last_created_at` keeps
-- creation times strictly increasing, so creation order is display order.
CREATE TABLE meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    epoch           TEXT NOT NULL,
    log_floor       INTEGER NOT NULL,
    last_created_at INTEGER NOT NULL
);
INSERT INTO meta (id, epoch, log_floor, last_created_at) VALUES (
    1,
    lower(hex(randomblob(16))),
    COALESCE((SELECT MIN(id) - 1 FROM events), 0),
    MAX(COALESCE((SELECT MAX(created_at) FROM todos), 0),
        COALESCE((SELECT MAX(created_at) FROM lists), 0))
);

-- How many ids have been derived from each slug: the next free one is one query away.
CREATE TABLE slugs (
    base  TEXT PRIMARY KEY NOT NULL,
    taken INTEGER NOT NULL
);

-- Ids of deleted todos, so a retried create of a deleted todo does not bring it back; kept
-- as long as the event that deleted it.
CREATE TABLE tombstones (
    id       TEXT PRIMARY KEY NOT NULL,
    list_id  TEXT NOT NULL,
    event_id INTEGER NOT NULL
);
CREATE INDEX tombstones_by_event ON tombstones (event_id);

-- The user a per-user event is for (NULL: decided by list).
ALTER TABLE events ADD COLUMN audience TEXT;
