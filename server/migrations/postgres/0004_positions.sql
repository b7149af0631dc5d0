-- Todos ordered by hand (tidings_protocol::position). A todo made before this keeps its place:
-- its key is its creation time (unique and increasing, see meta.last_created_at) written as a
-- seven-digit base-62 integer ('g' heads seven digits), so the order is creation order as
-- before. New todos go after the last key of their list.
ALTER TABLE todos ADD COLUMN position TEXT COLLATE "C" NOT NULL DEFAULT '';
-- Byte order, as the keys and the clients compare them (the database's collation may not be).
ALTER TABLE todos ALTER COLUMN id TYPE TEXT COLLATE "C";
UPDATE todos SET position = 'g'
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 56800235584 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 916132832 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 14776336 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 238328 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 3844 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at / 62 % 62 AS INTEGER) + 1, 1)
    || substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', CAST(created_at % 62 AS INTEGER) + 1, 1);
DROP INDEX todos_by_list;
CREATE INDEX todos_by_position ON todos (list_id, position, id);
-- Events logged before carry no position: a client resuming from one of them is told to
-- resync (a new epoch) and reloads the todos with their positions.
UPDATE meta SET epoch = replace(gen_random_uuid()::text, '-', '');
