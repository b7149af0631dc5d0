-- The ids of a new database start at a random point far from 0 (between 2^32 and 2^32 + 2^40,
-- well within JavaScript's exact integers), so an id from another database, say one this
-- database replaced, is below this log's floor or above its head: a client that resumes with
-- it gets `resync` even without the `epoch` parameter (npm `eventsource`, curl). `origin` is
-- the id the log started after; `Last-Event-ID: 0` means "from the start", that is `origin`.
-- A database that already has ids keeps them (origin 0).
ALTER TABLE meta ADD COLUMN origin INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET origin = abs(random()) % 1099511627776 + 4294967296
    WHERE log_floor = 0
      AND NOT EXISTS (SELECT 1 FROM events)
      AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
UPDATE meta SET log_floor = origin WHERE origin > 0;
INSERT INTO sqlite_sequence (name, seq) SELECT 'events', origin FROM meta WHERE origin > 0;
