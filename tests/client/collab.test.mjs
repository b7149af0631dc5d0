// The collaboration writes (issue 20) in headless Chromium against a real server with access
// control, with the package as it ships (pkg/): `renameList`, `move`, `leaveList` and
// `clearCompleted` each show in the stores at once (before any request), are confirmed by
// the stream (the stores end equal to the server's snapshot, with no flicker back), are
// rolled back and reported when the server refuses them for good, and wait in the outbox
// like every other write while the browser is offline. And `feed.presence`: who has a list
// open, by name with access control, counted without (a server of its own), in leading and
// following tabs.
//
// Page code runs in the page (`inPage`) with page.html's helpers as `t`; each user's token
// comes from the test (`tokenOf`, exposed to the page).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { launchBrowser } from '../e2e/harness.mjs';
import { sign, now } from '../support/jwt.mjs';
import { packageSite, TidingsServer } from '../support/tidings.mjs';
import { inPage } from './in-page.mjs';

const SECRET = 'collab-test-secret-of-at-least-32-bytes';
let browser;
let site;
let server;

before(async () => {
  site = packageSite('tests/client/page.html', 'tidings-collab-');
  server = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site, TIDINGS_HEARTBEAT_SECS: '1', TIDINGS_AUTH_SECRET: SECRET } });
  [, browser] = await Promise.all([server.start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  if (site) rmSync(site, { recursive: true, force: true });
});

const tokenOf = (user) => sign({ sub: user, exp: now() + 3600 }, SECRET);
/** Two users of a test's own: the tests share a server, and a user sees all their lists. */
const users = () => ['alice', 'bob'].map((name) => `${name}-${Math.floor(Math.random() * 1e9)}`);

/** A REST call as `user`; rejects on a non-2xx status. */
async function api(method, path, body, user) {
  const headers = { authorization: `Bearer ${tokenOf(user)}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A list of `owner`'s with todos (`done` when the title ends with `✓`), shared as given. */
async function listOf(owner, titles, members = {}) {
  const id = `collab-${Math.floor(Math.random() * 1e9)}`;
  await api('POST', '/api/lists', { id, title: `List ${id}` }, owner);
  const todos = [];
  for (const title of titles) {
    const todo = await api('POST', `/api/lists/${id}/todos`, { title }, owner);
    todos.push(title.endsWith('✓') ? await api('PATCH', `/api/todos/${todo.id}`, { done: true }, owner) : todo);
  }
  for (const [user, role] of Object.entries(members)) await api('PUT', `/api/lists/${id}/members/${user}`, { role }, owner);
  return { id, todos };
}

/**
 * A page of the package in a fresh context (of `on`, by default the server with access
 * control); its errors fail the test. `window.feedOf(user, lists)` makes a feed as `user`
 * (every list when `lists` is absent) and waits until it is open with its snapshot.
 */
async function openPage(t, on = server) {
  const context = await browser.newContext({ baseURL: on.url });
  t.after(() => context.close());
  await context.exposeFunction('tokenOf', tokenOf);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|net::ERR_/.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.stack ?? error}`));
  t.after(() => assert.deepEqual(problems, [], 'no errors in the page'));
  await page.goto('/');
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  await page.evaluate(() => {
    window.feedOf = async (user, lists) => {
      const { t } = window;
      const feed = new t.TodoFeed('', { lists, backoff: t.fast, accessToken: () => window.tokenOf(user) });
      await t.until(feed.status, 'open', (s) => s.state === 'open' && s.lastEventId !== null);
      return feed;
    };
  });
  return { page, context };
}

test('renameList shows the new title at once, is confirmed, and is rolled back when refused', { timeout: 60_000 }, async (t) => {
  const [ann, ben] = users();
  const { id } = await listOf(ann, [], { [ben]: 'viewer' });
  const { page } = await openPage(t);
  const result = await inPage(
    page,
    async (t, [id, ann, ben]) => {
      const alice = await window.feedOf(ann, [id]);
      const bob = await window.feedOf(ben, [id]);
      const titleIn = (feed) => feed.lists.get().find((l) => l.id === id);
      const renamed = alice.renameList(id, '  Groceries  ');
      t.eq([titleIn(alice).title, titleIn(alice).pending], ['Groceries', true], 'the new title, at once, pending');
      const list = await renamed;
      t.eq(list.title, 'Groceries', "the server's answer");
      await t.until(alice.lists, 'confirmed', (v) => v.some((l) => l.id === id && l.title === 'Groceries' && !l.pending));
      await t.until(bob.lists, 'seen by the other user', (v) => v.some((l) => l.id === id && l.title === 'Groceries'));
      t.eq(titleIn(bob).role, 'viewer', "the other user's role stays");

      // A viewer may not rename: shown at once, then rolled back and reported.
      const refused = bob.renameList(id, 'Mine now');
      t.eq(titleIn(bob).title, 'Mine now', "the viewer's rename shows at once");
      const error = await t.rejection(refused, "a viewer's rename");
      t.eq(titleIn(bob).title, 'Groceries', 'rolled back');
      const [{ write }] = bob.rejected.get();
      alice.close();
      bob.close();
      return { code: error.code, status: error.status, kind: write.kind, list: write.list };
    },
    [id, ann, ben],
  );
  assert.deepEqual(result, { code: 'forbidden', status: 403, kind: 'renameList', list: id });
  assert.equal((await api('GET', '/api/lists', undefined, ann)).lists.find((l) => l.id === id).title, 'Groceries');
});

test('move shows the todo at its new place at once; the stores end in the server order; a bad `after` is rolled back', { timeout: 60_000 }, async (t) => {
  const [ann] = users();
  const { id, todos } = await listOf(ann, ['a', 'b', 'c', 'd']);
  const other = await listOf(ann, ['x']);
  const [a, b, c, d] = todos.map((x) => x.id);
  const { page } = await openPage(t);
  const result = await inPage(
    page,
    async (t, { id, other, a, b, c, d, x, ann }) => {
      const feed = await window.feedOf(ann, [id, other]);
      // Each list's todos, in the order shown (the stores hold both lists' in one array).
      const order = () => [id, other].map((l) => t.titles(feed.todos.get().filter((x) => x.list_id === l)).join(' ')).join(' | ');
      const steps = [];
      const moved = feed.move(d, { after: a });
      steps.push(order());
      t.eq(feed.todos.get().find((todo) => todo.id === d).pending, true, 'the moved todo is pending');
      const first = feed.move(c, { after: null });
      steps.push(order());
      const away = feed.move(b, { list: other });
      steps.push(order());
      const answers = await Promise.all([moved, first, away]);
      t.ok(answers.every((todo) => typeof todo.position === 'string'), 'each answer has its new position');
      t.eq(answers[2].list_id, other, 'moved to the other list');
      await t.until(feed.pending, 'confirmed', (n) => n === 0);
      steps.push(order());
      // After a todo that is not in the list: the server refuses (422), the move goes back.
      const bad = feed.move(a, { after: x });
      t.eq(feed.todos.get().find((todo) => todo.id === a).pending, true, 'shown moved, pending');
      const error = await t.rejection(bad, 'a move after a todo of another list');
      steps.push(order());
      // What the server has, in its order.
      const snapshot = await fetch(`/api/todos?list=${id}&list=${other}`, {
        headers: { authorization: `Bearer ${await window.tokenOf(ann)}` },
      }).then((r) => r.json());
      const want = JSON.stringify(snapshot.todos);
      await t.until(feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want);
      feed.close();
      return { steps, code: error.code, status: error.status, kind: feed.rejected.get()[0].write.kind };
    },
    { id, other: other.id, a, b, c, d, x: other.todos[0].id, ann },
  );
  assert.deepEqual(result, {
    steps: ['a d b c | x', 'c a d b | x', 'c a d | x b', 'c a d | x b', 'c a d | x b'],
    code: 'invalid_after',
    status: 422,
    kind: 'move',
  });
  const titles = async (list) => (await api('GET', `/api/lists/${list}/todos`, undefined, ann)).todos.map((x) => x.title);
  assert.deepEqual(await titles(id), ['c', 'a', 'd']);
  assert.deepEqual(await titles(other.id), ['x', 'b']);
});

test('leaveList removes the list and its todos at once; an owner cannot leave (rolled back)', { timeout: 60_000 }, async (t) => {
  const [ann, ben] = users();
  const shared = await listOf(ann, ['from alice'], { [ben]: 'editor' });
  const own = await listOf(ben, ['from bob']);
  const { page } = await openPage(t);
  const result = await inPage(
    page,
    async (t, [shared, own, ben]) => {
      // A feed of every list: one that follows the left list stops (list_unshared).
      const feed = await window.feedOf(ben);
      await t.until(feed.todos, 'both lists', (v) => v.length === 2);
      // Every value the stores show from now on: the left list must not come back.
      const seen = [];
      feed.lists.subscribe((v) => seen.push(v.map((l) => l.id)));
      seen.length = 0; // (the value at the time of subscribing)
      const left = feed.leaveList(shared);
      t.ok(!feed.lists.get().some((l) => l.id === shared), 'the list goes at once');
      t.eq(t.titles(feed.todos.get()), ['from bob'], 'with its todos');
      await left;
      const event = await t.until(feed.events, 'applied by the stream', (e) => e?.type === 'list_unshared');
      t.ok(seen.every((ids) => !ids.includes(shared)), `it never came back: ${JSON.stringify(seen)}`);

      // The owner cannot leave: gone at once, back when refused.
      const refused = feed.leaveList(own);
      t.ok(!feed.lists.get().some((l) => l.id === own), 'gone at once');
      t.eq(feed.todos.get().length, 0, 'its todos too');
      const error = await t.rejection(refused, "the owner's leave");
      t.ok(feed.lists.get().some((l) => l.id === own), 'back');
      t.eq(t.titles(feed.todos.get()), ['from bob'], 'with its todos');
      feed.close();
      return { event: [event.type, event.list_id], code: error.code, status: error.status };
    },
    [shared.id, own.id, ben],
  );
  assert.deepEqual(result, { event: ['list_unshared', shared.id], code: 'owner_cannot_leave', status: 409 });
  const members = await api('GET', `/api/lists/${shared.id}/members`, undefined, ann);
  assert.deepEqual(members.members.map((m) => m.user), [ann], 'the other user is no longer a member');
});

test('clearCompleted removes the done todos at once, a toggle queued before it included; a viewer is rolled back', { timeout: 60_000 }, async (t) => {
  const [ann, ben] = users();
  const { id } = await listOf(ann, ['one ✓', 'two', 'three ✓', 'four'], { [ben]: 'viewer' });
  const { page } = await openPage(t);
  const result = await inPage(
    page,
    async (t, [id, ann, ben]) => {
      const bob = await window.feedOf(ben, [id]);
      const refused = bob.clearCompleted(id);
      const atOnce = t.titles(bob.todos.get());
      const error = await t.rejection(refused, "a viewer's clear");
      const back = t.titles(bob.todos.get());

      const alice = await window.feedOf(ann, [id]);
      const four = alice.todos.get().find((x) => x.title === 'four');
      const toggled = alice.update(four.id, { done: true });
      const cleared = alice.clearCompleted(id);
      const shown = t.titles(alice.todos.get());
      await toggled;
      const deleted = await cleared;
      await t.until(alice.todos, 'confirmed', (v) => v.length === 1 && !v[0].pending);
      await t.until(bob.todos, 'seen by the other user', (v) => t.titles(v).join() === 'two');
      alice.close();
      bob.close();
      return { atOnce, code: error.code, back, shown, deleted };
    },
    [id, ann, ben],
  );
  assert.deepEqual(result, {
    atOnce: ['two', 'four'],
    code: 'forbidden',
    back: ['one ✓', 'two', 'three ✓', 'four'],
    shown: ['two'],
    deleted: 3,
  });
});

test('offline, the four writes wait in the outbox, shown at once, and are sent in order when back online', { timeout: 60_000 }, async (t) => {
  const [ann, ben] = users();
  const shared = await listOf(ann, ['x'], { [ben]: 'editor' });
  const { id, todos } = await listOf(ben, ['a', 'b ✓', 'c']);
  const { page, context } = await openPage(t);
  await inPage(
    page,
    async (t, [lists, ben]) => {
      window.feed = await window.feedOf(ben);
      window.mine = () => window.feed.lists.get().filter((l) => lists.includes(l.id)).map((l) => l.title);
      await t.until(window.feed.todos, 'every todo', (v) => v.length === 4);
    },
    [[shared.id, id], ben],
  );
  await context.setOffline(true);
  const shown = await inPage(
    page,
    async (t, [id, shared, c]) => {
      const feed = window.feed;
      await t.until(feed.status, 'offline', (s) => s.state === 'offline');
      window.made = [feed.renameList(id, 'Renamed offline'), feed.move(c, { after: null }), feed.clearCompleted(id), feed.leaveList(shared)];
      t.eq(feed.pending.get(), 4, 'four pending');
      return { lists: window.mine(), todos: t.titles(feed.todos.get()) };
    },
    [id, shared.id, todos[2].id],
  );
  assert.deepEqual(shown, { lists: ['Renamed offline'], todos: ['c', 'a'] });
  await context.setOffline(false);
  const after = await inPage(page, async (t) => {
    const feed = window.feed;
    const answers = await Promise.all(window.made);
    await t.until(feed.pending, 'sent', (n) => n === 0);
    return { cleared: answers[2], lists: window.mine(), todos: t.titles(feed.todos.get()) };
  });
  assert.deepEqual(after, { cleared: 1, lists: ['Renamed offline'], todos: ['c', 'a'] });
  assert.deepEqual((await api('GET', `/api/lists/${id}/todos`, undefined, ben)).todos.map((x) => x.title), ['c', 'a']);
  const lists = (await api('GET', '/api/lists', undefined, ben)).lists.map((l) => l.id);
  assert.ok(lists.includes(id) && !lists.includes(shared.id), 'renamed and left on the server');
});

test('presence with access control: each user on a shared list sees both, by name, sorted', { timeout: 60_000 }, async (t) => {
  const [ann, ben] = users();
  const { id } = await listOf(ann, [], { [ben]: 'viewer' });
  const { page } = await openPage(t);
  const seen = await inPage(
    page,
    async (t, [id, ann, ben]) => {
      const alice = await window.feedOf(ann, [id]);
      const bob = await window.feedOf(ben, [id]);
      // Awake until closed: a feed without subscribers closes its stream after a second.
      for (const feed of [alice, bob]) feed.todos.subscribe(() => {});
      const both = (p) => p[id]?.users.length === 2;
      const seen = [await t.until(alice.presence, 'both users (alice)', both), await t.until(bob.presence, 'both users (bob)', both)];
      alice.close();
      bob.close();
      return seen.map((p) => p[id]);
    },
    [id, ann, ben],
  );
  const want = { users: [ann, ben].sort(), anonymous: 0 };
  assert.deepEqual(seen, [want, want]);
});

test('presence without access control: two feeds count two, then one when the other closes; following tabs are told too, one that joins late as well; the cursor does not move', { timeout: 60_000 }, async (t) => {
  // Presence counts streams here; a probe every second notices a closed one soon.
  const open = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site, TIDINGS_HEARTBEAT_SECS: '1', TIDINGS_PROBE_SECS: '1' } });
  t.after(() => open.dispose());
  await open.start();
  const id = `presence-${Math.floor(Math.random() * 1e9)}`;
  await open.api('POST', '/api/lists', { id, title: 'Presence' });
  const { page } = await openPage(t, open);
  const result = await inPage(
    page,
    async (t, id) => {
      const feedOf = async (shareConnection) => {
        const feed = new t.TodoFeed('', { lists: [id], backoff: t.fast, shareConnection });
        // Awake until closed: a feed without subscribers closes its stream after a second.
        feed.todos.subscribe(() => {});
        await t.until(feed.status, 'open', (s) => s.state === 'open' && s.lastEventId !== null);
        return feed;
      };
      const counted = (feed, n, what) => t.until(feed.presence, what, (p) => p[id]?.anonymous === n).then((p) => p[id]);
      // Two feeds with a stream each.
      const a = await feedOf(false);
      const b = await feedOf(false);
      const two = [await counted(a, 2, 'two streams (a)'), await counted(b, 2, 'two streams (b)')];
      t.ok(Object.isFrozen(a.presence.get()) && Object.isFrozen(two[0]) && Object.isFrozen(two[0].users), 'frozen');
      // No change was made: the presence messages (no id) left the cursor where it was, and
      // the next change follows on.
      const { last_event_id: snapshot } = await t.call('GET', `/api/lists/${id}/todos`);
      const cursors = [a.lastEventId, b.lastEventId, a.status.get().lastEventId];
      await a.create('after presence');
      // (Not pending: applied by each feed's stream.)
      for (const feed of [a, b]) await t.until(feed.todos, 'the change, applied', (v) => v.length === 1 && !v[0].pending);
      const { last_event_id: changed } = await t.call('GET', `/api/lists/${id}/todos`);
      const moved = [a.lastEventId, b.lastEventId, changed];

      // One closes: the other is told (the server notices at its next probe); the closed one
      // keeps what it last knew.
      b.close();
      const one = await counted(a, 1, 'one stream after the other closed');
      const kept = b.presence.get()[id];

      // Two tabs sharing a stream (one leads, one follows) add one stream; both are told.
      const leader = await feedOf(true);
      const follower = await feedOf(true);
      const shared = [await counted(leader, 2, 'a leading tab'), await counted(follower, 2, 'a following tab')];
      // A tab that joins now changes nothing on the server: the leader tells it what it knows.
      const late = await feedOf(true);
      const joined = await counted(late, 2, 'a tab that joined late');
      const roles = [leader, follower, late].map((feed) => feed.status.get().role);
      for (const feed of [a, leader, follower, late]) feed.close();
      return {
        two,
        cursors,
        snapshot,
        moved,
        one,
        kept,
        shared,
        joined,
        roles,
      };
    },
    id,
  );
  const counts = (n) => ({ users: [], anonymous: n });
  assert.deepEqual(result.two, [counts(2), counts(2)]);
  assert.deepEqual(result.cursors, [result.snapshot, result.snapshot, String(result.snapshot)], 'presence does not move the cursor');
  const [atA, atB, changed] = result.moved;
  assert.ok(changed > result.snapshot && atA === changed && atB === changed, `the next change is applied after it: ${result.moved}`);
  assert.deepEqual([result.one, result.kept], [counts(1), counts(2)]);
  assert.deepEqual([...result.shared, result.joined], [counts(2), counts(2), counts(2)]);
  assert.deepEqual(result.roles, ['leader', 'follower', 'follower']);
});
