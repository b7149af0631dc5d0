-- Access control: list owners, members and their roles, and the history of who could read
-- which list when, which streams need to carry exactly what a user could read at each event.

-- The user who created the list (NULL: created without access control; with it on, such a
-- list is readable by no one).
ALTER TABLE lists ADD COLUMN owner TEXT;
CREATE INDEX lists_by_owner ON lists (owner);

-- Members other than the owner.
CREATE TABLE members (
    list_id TEXT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    role    TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    PRIMARY KEY (list_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, list_id);

-- Read access as intervals of the event log: `user_id` may read the events of `list_id` with
-- ids in (from_event, until_event]. Opened by the event that created or shared the list,
-- closed by the one that unshared or deleted it; kept while those events are retained.
CREATE TABLE grants (
    list_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    from_event  BIGINT NOT NULL,
    until_event BIGINT
);
CREATE INDEX grants_by_user ON grants (user_id, list_id);
CREATE INDEX grants_by_list ON grants (list_id) WHERE until_event IS NULL;

-- Users seen with access control on, and their personal default list.
CREATE TABLE users (
    id    TEXT PRIMARY KEY,
    inbox TEXT NOT NULL
);
