// Unit tests of the package's plain JavaScript helpers (client-wasm/js), in Node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capAttempt, ceiling, delay, sanitize, withQuery } from '../../client-wasm/js/connection.js';
import { uuid } from '../../client-wasm/js/feed.js';
import { overlayLists, overlayTodos, slug } from '../../client-wasm/js/overlay.js';

test('resume parameters replace a value in the query, not repeat it', () => {
  assert.equal(withQuery('/e', 'last_event_id', '7'), '/e?last_event_id=7');
  assert.equal(
    withQuery('http://h/e?list=a&last_event_id=3&x', 'last_event_id', '9'),
    'http://h/e?list=a&x&last_event_id=9',
  );
  assert.equal(withQuery('/e?a=1#top', 't', 'a b&c'), '/e?a=1&t=a%20b%26c#top');
  assert.equal(withQuery('/e?last_event_id_x=1', 'last_event_id', '2'), '/e?last_event_id_x=1&last_event_id=2');
});

test('random bytes make a version 4 UUID where crypto.randomUUID is missing', () => {
  assert.equal(uuid(() => 255 / 256), 'ffffffff-ffff-4fff-bfff-ffffffffffff');
  let i = 0;
  assert.equal(uuid(() => (i++ * 17) / 256), '00112233-4455-4677-8899-aabbccddeeff');
});

test('backoff ceilings grow exponentially to the cap', () => {
  const b = sanitize([]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((a) => ceiling(b, a)), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(ceiling(b, 1000), 30000);
  assert.equal(capAttempt(b), 6);
});

test('full jitter spans zero to the ceiling', () => {
  const b = sanitize([]);
  assert.equal(delay(b, 3, 0), 4000);
  assert.ok(delay(b, 3, 0.999999) <= 1);
  assert.equal(delay([1000, 30000, 2, 0], 3, 0.7), 4000);
  assert.equal(delay([1000, 30000, 2, 0.5], 3, 1), 2000);
  assert.equal(delay(b, 0, 0), 1000, 'attempt 0 waits like the first retry');
});

test('nonsense backoff settings are made safe', () => {
  assert.deepEqual(sanitize([-5, NaN, 0.5, 7]), [1000, 30000, 2, 1]);
  assert.deepEqual(sanitize([500, 100]), [500, 500, 2, 1]);
  assert.deepEqual(sanitize([100, 800, NaN]), [100, 800, 2, 1]);
});

test('pending writes are applied in order over the todos, marked pending; other lists are left out', () => {
  const todo = (id, title, done = false) => ({ id, list_id: 'a', title, done, created_at: 1, updated_at: 1 });
  const base = Object.freeze([todo('1', 'one'), todo('2', 'two')]);
  const w = (kind, more) => ({ kind, key: `k-${kind}-${more.id ?? more.list}`, at: 5, n: 0, ...more });
  const follows = (list) => list === 'a';
  assert.equal(overlayTodos(base, [], follows), base, 'nothing pending: the same array');
  const shown = overlayTodos(
    base,
    [
      w('create', { list: 'a', id: '3', body: { title: '  three ', id: '3' } }),
      w('create', { list: 'b', id: '4', body: { title: 'elsewhere', id: '4' } }),
      w('update', { id: '1', body: { done: true } }),
      w('update', { id: '3', body: { title: 'three!' } }),
      w('remove', { id: '2' }),
      w('update', { id: '2', body: { done: true } }), // deleted meanwhile: nothing to show
    ],
    follows,
  );
  assert.deepEqual(shown, [
    { ...todo('1', 'one', true), pending: true },
    { id: '3', list_id: 'a', title: 'three!', done: false, created_at: 5, updated_at: 5, pending: true },
  ]);
  assert.ok(Object.isFrozen(shown) && shown.every(Object.isFrozen), 'frozen, as store values are');
  // Confirmed by the stream before the answer came: the server's todo, still marked.
  const created = todo('3', 'three');
  assert.deepEqual(overlayTodos([created], [w('create', { list: 'a', id: '3', body: { title: 'x' } })], follows), [{ ...created, pending: true }]);
  // A move to a list the feed does not follow, and a deleted list, take the todos away.
  assert.deepEqual(overlayTodos(base, [w('update', { id: '1', body: { list_id: 'b' } })], follows).map((t) => t.id), ['2']);
  assert.deepEqual(overlayTodos(base, [w('deleteList', { list: 'a' })], follows), []);
});

test("pending lists are added and removed; a list without an id shows under the server's slug", () => {
  const lists = Object.freeze([{ id: 'inbox', title: 'Inbox', created_at: 1 }]);
  const shown = overlayLists(lists, [
    { kind: 'createList', key: 'k1', at: 7, n: 0, list: slug('Groceries & Co.'), body: { title: 'Groceries & Co.' } },
    { kind: 'deleteList', key: 'k2', at: 7, n: 1, list: 'inbox' },
  ]);
  assert.deepEqual(shown, [{ id: 'groceries-co', title: 'Groceries & Co.', created_at: 7, pending: true }]);
  assert.equal(overlayLists(lists, []), lists);
  for (const [title, want] of [
    ['  Work  ', 'work'],
    ['日本語', '日本語'],
    ['Курс 2', 'курс-2'],
    ['Sprint 42 -- review', 'sprint-42-review'],
    ['!!!', 'list'],
  ]) {
    assert.equal(slug(title), want, title);
  }
});

test('a pending move shows the todo after `after` in display order, first, or at the end of another list', () => {
  // Two lists' todos in one array, interleaved as the server's order may put them.
  const todo = (id, list_id, done = false) => ({ id, list_id, title: id, done, created_at: 1, updated_at: 1, position: 'a0' });
  const base = Object.freeze([todo('a1', 'a'), todo('b1', 'b'), todo('a2', 'a', true), todo('a3', 'a'), todo('b2', 'b', true)]);
  const move = (id, body, n = 0) => ({ kind: 'move', key: `k${n}`, at: 5, n, id, body });
  const ids = (writes, follows = () => true) => overlayTodos(base, writes, follows).map((t) => t.id).join(' ');
  assert.equal(ids([move('a3', { after: 'a1' })]), 'a1 a3 b1 a2 b2', 'right after `after`');
  assert.equal(ids([move('a3', { after: null })]), 'a3 a1 b1 a2 b2', "before the list's first");
  assert.equal(ids([move('a1', { after: null })]), 'b1 a1 a2 a3 b2', "already first: still its list's first");
  assert.equal(ids([move('a1', { list_id: 'b' })]), 'b1 a2 a3 b2 a1', "another list, no `after`: after its last");
  assert.equal(ids([move('a1', { after: 'b1', list_id: 'b' })]), 'b1 a1 a2 a3 b2', 'another list, after one of its todos');
  assert.equal(ids([move('a1', { after: 'gone' })]), 'a1 b1 a2 a3 b2', 'an unknown `after` (refused later): where it was');
  assert.equal(ids([move('a1', { list_id: 'c' })], (l) => l !== 'c'), 'b1 a2 a3 b2', 'into a list the feed does not follow: gone');
  assert.equal(ids([move('a3', { after: 'a1' }, 0), move('a1', { after: 'a3' }, 1)]), 'a3 a1 b1 a2 b2', 'in order, each over the last');
  const [moved] = overlayTodos(base, [move('a2', { after: null })], () => true);
  assert.deepEqual(moved, { ...todo('a2', 'a', true), pending: true }, 'marked pending, its key left to the server');
  // Clear completed takes the list's done todos, leaving other lists'; leaving a list, all of its.
  assert.equal(ids([{ kind: 'clearCompleted', key: 'c', at: 5, n: 0, list: 'a' }]), 'a1 b1 a3 b2');
  assert.equal(ids([{ kind: 'leaveList', key: 'l', at: 5, n: 0, list: 'b' }]), 'a1 a2 a3');
});

test('a pending rename shows the new title, marked pending; a left list goes', () => {
  const lists = Object.freeze([
    { id: 'a', title: 'A', created_at: 1, role: 'editor' },
    { id: 'b', title: 'B', created_at: 2, role: 'viewer' },
  ]);
  const shown = overlayLists(lists, [
    { kind: 'renameList', key: 'k1', at: 7, n: 0, list: 'a', body: { title: '  Renamed ' } },
    { kind: 'leaveList', key: 'k2', at: 7, n: 1, list: 'b' },
  ]);
  assert.deepEqual(shown, [{ id: 'a', title: 'Renamed', created_at: 1, role: 'editor', pending: true }]);
});
