// Writes that are never lost (issue 18), in headless Chromium against a real server, with the
// package as it ships (pkg/): writes made offline show at once, survive a reload, show in a
// second tab and reach the server exactly once when the browser is back online; a server
// killed while the outbox is being sent loses and doubles nothing; a write the server
// refuses for good is rolled back and reported, and the writes after it go through.
//
// Pages are served by the test itself (`context.route`, from the same files the server
// serves) so that they load and reload while the browser is offline; the API stays the real
// server's. Page code runs in the page (`inPage`) with page.html's helpers as `t`.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser } from '../e2e/harness.mjs';
import { sign, now } from '../support/jwt.mjs';
import { packageSite, TidingsServer } from '../support/tidings.mjs';
import { inPage } from './in-page.mjs';

const SECRET = 'outbox-test-secret-of-at-least-32-bytes';
let browser;
let site;
/** @type {TidingsServer[]} */
const servers = [];

before(async () => {
  site = packageSite('tests/client/page.html', 'tidings-outbox-');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const server of servers) await server.dispose();
  if (site) rmSync(site, { recursive: true, force: true });
});

async function startServer(env = {}) {
  const server = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site, TIDINGS_HEARTBEAT_SECS: '1', ...env } });
  servers.push(server);
  return server.start();
}

/**
 * A browser context whose pages (page.html and pkg/) are served from `site` by the test, so
 * they load while offline; `/api/` goes to the server. Console errors other than the
 * browser's lines about failed requests, and uncaught errors, are collected in `problems`.
 */
async function newContext(t, server) {
  const context = await browser.newContext({ baseURL: server.url });
  await context.route(
    (url) => url.origin === server.url && !url.pathname.startsWith('/api/'),
    (route) => {
      const { pathname } = new URL(route.request().url());
      route.fulfill({ path: join(site, pathname === '/' ? 'index.html' : pathname.slice(1)) });
    },
  );
  context.problems = [];
  t.after(() => context.close());
  return context;
}

/** A page of `context`, ready (page.html's `window.t`). */
async function openPage(context) {
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|net::ERR_/.test(msg.text())) {
      context.problems.push(`console.error: ${msg.text()}`);
    }
  });
  page.on('pageerror', (error) => context.problems.push(`uncaught: ${error.stack ?? error}`));
  await page.goto('/');
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  return page;
}

/** A REST call to `server` (as `user` when given); rejects on a non-2xx status. */
async function api(server, method, path, body, user) {
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  if (user) headers.authorization = `Bearer ${tokenOf(user)}`;
  const res = await fetch(`${server.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const tokenOf = (user) => sign({ sub: user, exp: now() + 3600 }, SECRET);

/**
 * Every change of `list` in the server's event log, from the first: the stream from id 0,
 * read up to the head of the snapshot taken first.
 */
async function eventLog(server, list, user) {
  const head = (await api(server, 'GET', `/api/lists/${list}/todos`, undefined, user)).last_event_id;
  const abort = new AbortController();
  const token = user ? `&access_token=${tokenOf(user)}` : '';
  const res = await fetch(`${server.url}/api/events?list=${list}&last_event_id=0${token}`, { signal: abort.signal });
  const events = [];
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of res.body) {
      text += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const frame = text.slice(0, end);
        text = text.slice(end + 2);
        const field = (name) => frame.match(new RegExp(`^${name}: ?(.*)$`, 'm'))?.[1];
        const id = Number(field('id'));
        const name = field('event');
        if (name === 'resync') throw new Error('the event log no longer reaches back to 0');
        if (name && name.startsWith('todo_')) events.push({ id, name, data: JSON.parse(field('data')) });
        if (id >= head && name !== 'connected') return events;
        if (name === 'connected' && id >= head) return events;
      }
    }
  } finally {
    abort.abort();
  }
  return events;
}

/** What a user sees of todos: title and done, in order. */
const shown = (todos) => todos.map(({ title, done }) => ({ title, done }));

test('writes made offline show at once, survive a reload, show in another tab and reach the server once', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `offline-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });

  // Another browser, online throughout, records every change it receives.
  const watcher = await openPage(await newContext(t, server));
  await inPage(
    watcher,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list] });
      window.feed = feed;
      window.seen = [];
      feed.events.subscribe((e) => e && window.seen.push({ id: feed.lastEventId, type: e.type }));
      await t.until(feed.status, 'open', (s) => s.state === 'open');
    },
    list,
  );

  const context = await newContext(t, server);
  // Which tab answered which write: each idempotency key must be answered once, by one tab.
  const answered = [];
  const record = (label) => (response) => {
    const key = response.request().headers()['idempotency-key'];
    if (key) answered.push({ key, label });
  };
  // While the browser says it is offline the outbox tries nothing: it waits for `online`.
  let offline = false;
  const tried = [];
  const attempt = (label) => (request) => {
    if (offline && request.headers()['idempotency-key']) tried.push(`${label} ${request.method()} ${request.url()}`);
  };
  let page = await openPage(context);
  page.on('response', record('first'));
  page.on('request', attempt('first'));
  await inPage(
    page,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
      window.feed = feed;
      await t.until(feed.status, 'open', (s) => s.state === 'open');
    },
    list,
  );
  await context.setOffline(true);
  offline = true;
  const expected = await inPage(
    page,
    async (t) => {
      const feed = window.feed;
      await t.until(feed.status, 'offline', (s) => s.state === 'offline');
      // Promises of writes made offline settle once the server has them: keep them.
      window.made = [];
      const keep = (p) => window.made.push(p.then(() => 'ok', (e) => e.code));
      const ids = [];
      for (const title of ['one', 'two', 'three', 'four', 'five']) {
        const before = feed.todos.get().length;
        const id = crypto.randomUUID();
        ids.push(id);
        keep(feed.create(title, { id }));
        // At once: synchronously, before any network traffic.
        t.eq(feed.todos.get().length, before + 1, `"${title}" shows at once`);
      }
      keep(feed.update(ids[0], { done: true }));
      t.eq(feed.todos.get()[0].done, true, 'a toggle shows at once');
      keep(feed.update(ids[1], { done: true }));
      keep(feed.update(ids[2], { title: 'three, renamed' }));
      t.eq(feed.todos.get()[2].title, 'three, renamed', 'a rename shows at once');
      keep(feed.remove(ids[3]));
      t.ok(!feed.todos.get().some((x) => x.id === ids[3]), 'a delete shows at once');
      t.eq(feed.pending.get(), 9, 'nine writes pending');
      t.ok(feed.todos.get().every((x) => x.pending === true), 'every changed todo is marked pending');
      t.eq(feed.status.get().state, 'offline', 'the status says offline');
      return feed.todos.get().map(({ title, done }) => ({ title, done }));
    },
  );
  assert.deepEqual(expected, [
    { title: 'one', done: true },
    { title: 'two', done: true },
    { title: 'three, renamed', done: false },
    { title: 'five', done: false },
  ]);

  // Reloaded while offline: the same state, from the outbox in IndexedDB.
  await page.reload();
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  const open = async (p) =>
    inPage(
      p,
      async (t, [list, expected]) => {
        // A page opened in an offline context may run before the emulation reaches it (seen in
        // one run under load: the second tab sent a write): start once the page is offline.
        if (navigator.onLine) await new Promise((r) => addEventListener('offline', r, { once: true }));
        const feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
        window.feed = feed;
        const todos = await t.until(feed.todos, 'the pending writes', (v) => JSON.stringify(v.map(({ title, done }) => ({ title, done }))) === JSON.stringify(expected));
        t.ok(todos.every((x) => x.pending === true), 'still marked pending');
        await t.until(feed.pending, 'nine pending', (n) => n === 9);
        t.eq(feed.status.get().state, 'offline', 'offline');
      },
      [list, expected],
    );
  await open(page);
  // A second tab of the same browser shows them too.
  const second = await openPage(context);
  second.on('response', record('second'));
  second.on('request', attempt('second'));
  await open(second);
  assert.deepEqual(await api(server, 'GET', `/api/lists/${list}/todos`).then((s) => s.todos), [], 'nothing reached the server');

  // Every value the first tab shows from now on: no item may flicker (vanish and come back,
  // or show its old state) while the writes are confirmed.
  await page.evaluate(() => {
    window.values = [];
    window.feed.todos.subscribe((v) => window.values.push(v.map(({ title, done }) => ({ title, done }))));
  });
  // Back online: within 2 s every write is on the server, once, and both tabs show it.
  assert.deepEqual(tried, [], 'no write was tried while the browser said it was offline');
  offline = false;
  const online = performance.now();
  await context.setOffline(false);
  for (const p of [page, second]) {
    await inPage(p, (t) => t.until(window.feed.pending, 'nothing pending', (n) => n === 0, 2000));
  }
  const took = performance.now() - online;
  assert.ok(took < 2000, `the outbox was flushed in ${Math.round(took)} ms`);
  t.diagnostic(`back online: the outbox was flushed in ${Math.round(took)} ms`);
  const snapshot = await api(server, 'GET', `/api/lists/${list}/todos`);
  assert.deepEqual(shown(snapshot.todos), expected, 'the server has every change');
  const want = JSON.stringify(snapshot.todos);
  for (const p of [page, second, watcher]) {
    await inPage(p, (t, want) => t.until(window.feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want), want);
  }
  const values = await page.evaluate(() => window.values);
  assert.ok(values.length > 1, 'the tab published while confirming');
  for (const value of values) assert.deepEqual(value, expected, 'no flicker while confirming');
  // Each write answered once, by one tab (the one holding the lock), no write sent twice.
  const keys = answered.map((a) => a.key);
  assert.equal(keys.length, 9, `nine answers: ${JSON.stringify(answered)}`);
  assert.equal(new Set(keys).size, 9, 'each write answered once');
  assert.equal(new Set(answered.map((a) => a.label)).size, 1, 'one tab sent them all');
  // Each change is in the event log once, and the other browser received each once.
  const log = await eventLog(server, list);
  assert.deepEqual(
    log.map((e) => e.name),
    ['todo_created', 'todo_created', 'todo_created', 'todo_created', 'todo_created', 'todo_updated', 'todo_updated', 'todo_updated', 'todo_deleted'],
  );
  const seen = await watcher.evaluate(() => window.seen);
  assert.deepEqual(seen.map((e) => e.id), log.map((e) => e.id), 'the other browser received each change once');
  assert.deepEqual(context.problems, []);
});

test('a server killed while the outbox is being sent loses nothing and applies nothing twice', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `killed-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });
  const context = await newContext(t, server);
  const page = await openPage(context);
  await inPage(
    page,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
      window.feed = feed;
      await t.until(feed.status, 'open', (s) => s.state === 'open');
    },
    list,
  );
  // Queued offline, then sent one by one, each a round trip of at least 100 ms.
  await context.setOffline(true);
  const titles = Array.from({ length: 12 }, (_, i) => `todo ${i + 1}`);
  await inPage(
    page,
    async (t, titles) => {
      await t.until(window.feed.status, 'offline', (s) => s.state === 'offline');
      for (const title of titles) window.feed.create(title).catch(() => {});
      window.feed.update(window.feed.todos.get()[0].id, { done: true }).catch(() => {});
    },
    titles,
  );
  // Writes whose answer was lost with the server and that the resend got from its memory.
  let replayed = 0;
  let killedAt = 0;
  page.on('response', (r) => {
    if (r.headers()['idempotent-replayed'] === 'true') replayed++;
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 100, downloadThroughput: -1, uploadThroughput: -1 });
  await context.setOffline(false);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 100, downloadThroughput: -1, uploadThroughput: -1 });
  // Some writes are through, the rest still waiting: kill the server mid-flight.
  await inPage(page, (t) => t.until(window.feed.pending, 'the outbox half sent', (n) => n <= 9));
  killedAt = await inPage(page, () => window.feed.pending.get());
  server.child.kill('SIGKILL');
  await server.exited;
  server.child = null;
  await server.start();
  await inPage(page, (t) => t.until(window.feed.pending, 'nothing pending', (n) => n === 0));
  t.diagnostic(`killed with ${killedAt} of 13 writes pending; ${replayed} answered again from the server's memory`);
  const snapshot = await api(server, 'GET', `/api/lists/${list}/todos`);
  assert.deepEqual(
    shown(snapshot.todos),
    titles.map((title, i) => ({ title, done: i === 0 })),
    'every write on the server, once',
  );
  const log = await eventLog(server, list);
  assert.equal(log.filter((e) => e.name === 'todo_created').length, titles.length, 'each create in the log once');
  assert.equal(log.filter((e) => e.name === 'todo_updated').length, 1, 'the toggle in the log once');
  const want = JSON.stringify(snapshot.todos);
  await inPage(page, (t, want) => t.until(window.feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want), want);
  assert.deepEqual(context.problems, []);
});

test("a viewer's queued edit is rolled back and reported, and the writes after it go through", { timeout: 60_000 }, async (t) => {
  const server = await startServer({ TIDINGS_AUTH_SECRET: SECRET });
  const shared = `shared-${Math.floor(Math.random() * 1e9)}`;
  const own = `own-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: shared, title: 'Shared' }, 'alice');
  const milk = await api(server, 'POST', `/api/lists/${shared}/todos`, { title: 'Milk' }, 'alice');
  await api(server, 'PUT', `/api/lists/${shared}/members/bob`, { role: 'viewer' }, 'alice');
  await api(server, 'POST', '/api/lists', { id: own, title: 'Mine' }, 'bob');
  const context = await newContext(t, server);
  await context.exposeFunction('tokenOf', tokenOf);
  const page = await openPage(context);
  await inPage(
    page,
    async (t, [shared, own]) => {
      const feed = new t.TodoFeed('', { lists: [shared, own], backoff: t.fast, accessToken: () => window.tokenOf('bob') });
      window.feed = feed;
      await t.until(feed.status, 'open', (s) => s.state === 'open');
      await t.until(feed.todos, 'Milk', (v) => v.length === 1);
    },
    [shared, own],
  );
  await context.setOffline(true);
  await inPage(
    page,
    async (t, [shared, own, milk]) => {
      const feed = window.feed;
      await t.until(feed.status, 'offline', (s) => s.state === 'offline');
      // Their promises are lost with the page: the refusal is reported after the reload.
      feed.update(milk, { done: true }).catch(() => {});
      feed.create('Bread', { list: own }).catch(() => {});
      // Grouped by list: `own-…` before `shared-…`.
      t.eq(feed.todos.get().map((x) => [x.title, x.done, x.pending]), [['Bread', false, true], ['Milk', true, true]], 'both shown at once');
      t.eq(feed.pending.get(), 2, 'two pending');
    },
    [shared, own, milk.id],
  );
  await page.reload();
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  await inPage(
    page,
    async (t, [shared, own]) => {
      const feed = new t.TodoFeed('', { lists: [shared, own], backoff: t.fast, accessToken: () => window.tokenOf('bob') });
      window.feed = feed;
      feed.todos.subscribe(() => {});
      await t.until(feed.pending, 'two pending', (n) => n === 2);
    },
    [shared, own],
  );
  await context.setOffline(false);
  const [rejected, todos] = await inPage(page, async (t) => {
    const feed = window.feed;
    await t.until(feed.pending, 'nothing pending', (n) => n === 0);
    const rejected = feed.rejected.get().map(({ write, error }) => ({ kind: write.kind, id: write.id, code: error.code, status: error.status, message: error.message }));
    const todos = await t.until(feed.todos, 'confirmed', (v) => v.length === 2 && v.every((x) => !x.pending));
    feed.rejected.clear();
    t.eq(feed.rejected.get().length, 0, 'cleared');
    // (Sorted: the two lists' todos interleave by position, and ties go by random id.)
    return [rejected, todos.map((x) => [x.title, x.done]).sort()];
  });
  assert.deepEqual(todos, [['Bread', false], ['Milk', false]], 'the edit rolled back, the write after it went through');
  assert.equal(rejected.length, 1, JSON.stringify(rejected));
  const [{ message, ...refusal }] = rejected;
  assert.deepEqual(refusal, { kind: 'update', id: milk.id, code: 'forbidden', status: 403 });
  assert.ok(message.length > 0, "the server's message");
  const serverMilk = (await api(server, 'GET', `/api/lists/${shared}/todos`, undefined, 'alice')).todos[0];
  assert.equal(serverMilk.done, false);
  assert.deepEqual(context.problems, []);
});

test('a 503 with Retry-After keeps the write pending until then; an edit of a todo deleted meanwhile is rolled back as todo_not_found', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `retry-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });
  const doomed = await api(server, 'POST', `/api/lists/${list}/todos`, { title: 'doomed' });
  const context = await newContext(t, server);
  // A proxy in front of the server is overloaded for the first create: 503, Retry-After: 1.
  const attempts = [];
  await context.route(`${server.url}/api/lists/${list}/todos`, (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    attempts.push(performance.now());
    if (attempts.length > 1) return route.fallback();
    return route.fulfill({
      status: 503,
      headers: { 'retry-after': '1', 'content-type': 'application/json' },
      body: JSON.stringify({ error: { code: 'overloaded', message: 'try again in a second' } }),
    });
  });
  const page = await openPage(context);
  const result = await inPage(
    page,
    async (t, [list, doomed]) => {
      // The backoff alone would retry within 100 ms: only Retry-After makes it wait.
      const feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
      await t.until(feed.status, 'open', (s) => s.state === 'open');
      await t.until(feed.todos, 'doomed', (v) => v.length === 1);
      const created = feed.create('after the 503');
      t.eq(feed.pending.get(), 1, 'pending');
      await t.sleep(600);
      t.eq(feed.pending.get(), 1, 'still pending while the server asked to wait');
      t.ok(feed.todos.get().some((x) => x.title === 'after the 503' && x.pending), 'still shown, pending');
      const todo = await created;
      // Someone else deletes a todo this page is about to edit.
      await t.call('DELETE', `/api/todos/${doomed}`);
      const refused = await t.rejection(feed.update(doomed, { title: 'too late' }), 'an edit of a deleted todo');
      await t.until(feed.pending, 'nothing pending', (n) => n === 0);
      const rejected = feed.rejected.get().map(({ write, error }) => [write.kind, write.id, error.code, error.status]);
      const titles = await t.until(feed.todos, 'only the created one', (v) => v.length === 1 && !v[0].pending);
      feed.close();
      return { todo: todo.title, refused: [refused.code, refused.status], rejected, titles: t.titles(titles) };
    },
    [list, doomed.id],
  );
  assert.deepEqual(result, {
    todo: 'after the 503',
    refused: ['todo_not_found', 404],
    rejected: [['update', doomed.id, 'todo_not_found', 404]],
    titles: ['after the 503'],
  });
  assert.equal(attempts.length, 2, 'sent twice: the 503, then once more');
  const waited = attempts[1] - attempts[0];
  assert.ok(waited >= 950, `the retry came ${Math.round(waited)} ms after the 503 (Retry-After: 1)`);
  assert.deepEqual(context.problems, []);
});

test('one tab sends; a tab told it is being frozen hands the sending over at once', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `frozen-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });
  const context = await newContext(t, server);
  const answeredBy = [];
  const tabs = [];
  for (const label of ['first', 'second']) {
    const page = await openPage(context);
    page.on('response', (r) => r.request().headers()['idempotency-key'] && answeredBy.push(label));
    await inPage(
      page,
      async (t, list) => {
        window.feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
        await t.until(window.feed.status, 'open', (s) => s.state === 'open');
        // The first tab to start holds the outbox's lock (nothing tells when: poll it).
        for (let tries = 0; ; tries++) {
          const { held } = await navigator.locks.query();
          if (held.some((l) => l.name.startsWith('tidings/outbox'))) break;
          t.ok(tries < 500, 'the outbox lock is held');
          await t.sleep(10);
        }
      },
      list,
    );
    tabs.push(page);
  }
  const [first, second] = tabs;
  const write = (page, title) => inPage(page, (t, title) => window.feed.create(title).then((x) => x.title), title);
  assert.equal(await write(second, 'from the second tab'), 'from the second tab');
  assert.deepEqual(answeredBy, ['first'], 'sent by the tab holding the lock');
  // The first tab is about to be frozen: the second takes over at once.
  await first.evaluate(() => document.dispatchEvent(new Event('freeze')));
  assert.equal(await write(first, 'from the first tab, frozen'), 'from the first tab, frozen');
  assert.deepEqual(answeredBy, ['first', 'second'], 'sent by the tab that took over');
  // Resumed, it queues again behind the second.
  await first.evaluate(() => document.dispatchEvent(new Event('resume')));
  assert.equal(await write(first, 'after resuming'), 'after resuming');
  assert.deepEqual(answeredBy, ['first', 'second', 'second']);
  const titles = (await api(server, 'GET', `/api/lists/${list}/todos`)).todos.map((x) => x.title);
  assert.deepEqual(titles, ['from the second tab', 'from the first tab, frozen', 'after resuming']);
  for (const page of tabs) {
    await inPage(page, (t) => t.until(window.feed.todos, 'all three', (v) => v.length === 3 && v.every((x) => !x.pending)));
    const live = await page.evaluate(() => {
      window.feed.close();
      return window.t.liveResources();
    });
    assert.equal(live, 0, 'close() released the lock, the channel and the listeners');
  }
  const locks = await first.evaluate(async () => {
    const { held, pending } = await navigator.locks.query();
    return [...held, ...pending].map((l) => l.name).filter((name) => name.startsWith('tidings/'));
  });
  assert.deepEqual(locks, [], 'no lock held or queued');
  assert.deepEqual(context.problems, []);
});

test('a write still in flight when a resync brings a new snapshot is shown over it, then confirmed', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `resync-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });
  await api(server, 'POST', `/api/lists/${list}/todos`, { title: 'on the server' });
  const context = await newContext(t, server);
  // The create is held on its way (a slow link) until the new snapshot is shown.
  let release;
  const held = new Promise((resolve) => (release = resolve));
  await context.route(`${server.url}/api/lists/${list}/todos`, async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    await held;
    return route.fallback();
  });
  const page = await openPage(context);
  await inPage(
    page,
    async (t, list) => {
      // An `initial` snapshot at an id this log does not hold (another log's): it answers `resync`.
      const stale = {
        todos: [{ id: 'x', list_id: list, title: 'stale', done: false, created_at: 0, updated_at: 0 }],
        last_event_id: 1_000_000_000,
      };
      const feed = new t.TodoFeed('', { lists: [list], initial: stale });
      window.feed = feed;
      window.created = feed.create('pending');
      t.eq(feed.todos.get().map((x) => [x.title, x.pending]), [['stale', undefined], ['pending', true]], 'over the initial snapshot');
      await t.until(feed.todos, 'the new snapshot, with the write over it', (v) => t.titles(v).join() === 'on the server,pending');
      t.eq(feed.todos.get()[1].pending, true, 'still pending');
    },
    list,
  );
  release();
  const want = JSON.stringify(
    await inPage(page, async () => {
      await window.created;
      return null;
    }).then(async () => (await api(server, 'GET', `/api/lists/${list}/todos`)).todos),
  );
  await inPage(page, (t, want) => t.until(window.feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want), want);
  assert.deepEqual(context.problems, []);
});

test('without IndexedDB the outbox keeps to localStorage, and without either to memory', { timeout: 60_000 }, async (t) => {
  const server = await startServer();
  const list = `fallback-${Math.floor(Math.random() * 1e9)}`;
  await api(server, 'POST', '/api/lists', { id: list, title: list });
  for (const missing of [['indexedDB'], ['indexedDB', 'localStorage']]) {
    const context = await newContext(t, server);
    // As in a browser that has them not (some private modes, sandboxed frames).
    await context.addInitScript((names) => {
      for (const name of names) Object.defineProperty(window, name, { value: undefined });
    }, missing);
    const page = await openPage(context);
    const start = (title) =>
      inPage(
        page,
        async (t, [list, title]) => {
          window.feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
          window.feed.todos.subscribe(() => {});
          if (title) {
            await t.until(window.feed.status, 'offline', (s) => s.state === 'offline');
            window.feed.create(title).catch(() => {});
          }
          return window.feed.pending.get();
        },
        [list, title],
      );
    const title = `without ${missing.join(' and ')}`;
    await context.setOffline(true);
    assert.equal(await start(title), 1, 'pending');
    await page.reload();
    await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
    const kept = missing.length === 1;
    if (kept) {
      await start(null);
      await inPage(page, (t) => t.until(window.feed.pending, 'kept across the reload', (n) => n === 1));
      await context.setOffline(false);
      await inPage(page, (t) => t.until(window.feed.pending, 'sent', (n) => n === 0));
    } else {
      // In memory only: lost with the page (README says so); a new write is still sent.
      assert.equal(await start(null), 0, 'nothing kept');
      await context.setOffline(false);
      await inPage(page, (t) => window.feed.create('in memory').then(() => t.until(window.feed.pending, 'sent', (n) => n === 0)));
    }
    assert.deepEqual(context.problems, []);
  }
  const titles = (await api(server, 'GET', `/api/lists/${list}/todos`)).todos.map((x) => x.title);
  assert.deepEqual(titles, ['without indexedDB', 'in memory']);
});
