// The client in a real browser (headless Chromium) against a real tidings-server: the
// package exactly as it ships, pkg/ (what `make pkg` built, size budget and all), loaded by a
// page of the server's own origin. The server is stopped and restarted here, and another
// server process writes to its database while it is down; the failure modes our server never
// produces (a malformed event, 204, 401) come from fakes.mjs.
//
// Each test runs in a fresh page (its own wasm instance, so resource counts are its own);
// its body runs in the page (`inPage`), with the helpers of page.html as `t`.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { packageSite, TidingsServer, freePort } from '../support/tidings.mjs';
import { launchBrowser } from '../e2e/harness.mjs';
import { Fakes } from './fakes.mjs';
import { inPage } from './in-page.mjs';

let server;
let fakes;
let browser;
let site;

before(async () => {
  site = packageSite('tests/client/page.html', 'tidings-client-');
  // A 1 s heartbeat: the watchdog test's stream beats, and closed streams are noticed fast.
  server = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site, TIDINGS_HEARTBEAT_SECS: '1' } });
  [, fakes, browser] = await Promise.all([server.start(), new Fakes().start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await fakes?.stop();
  await server?.dispose();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** A fresh page of the package; console errors and uncaught errors fail the test. */
async function openPage(t) {
  const context = await browser.newContext({ baseURL: server.url });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    // The browser's own lines about failed requests are what several tests provoke; the
    // client's warnings about malformed events are checked through the status.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      problems.push(`console.error: ${msg.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.stack ?? error}`));
  await page.goto('/');
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  t.after(async () => {
    await context.close();
  });
  page.problems = problems;
  return page;
}

/** A list of our own, so tests sharing the server do not see each other's todos. */
async function freshList(prefix) {
  const id = `${prefix}-${Math.floor(Math.random() * 1e9)}`;
  await server.api('POST', '/api/lists', { id, title: id });
  return id;
}

const todosOf = async (list) => (await server.api('GET', `/api/lists/${list}/todos`)).todos;

/** Console errors and uncaught errors of the page: none, at the end of each test. */
function assertClean(page) {
  assert.deepEqual(page.problems, [], 'no console errors or uncaught errors');
}

test('live events arrive in the stores', async (t) => {
  const page = await openPage(t);
  const list = await freshList('live');
  await inPage(
    page,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list] });
      await t.until(feed.status, 'open', (s) => s.state === 'open');
      const created = await feed.create('Buy milk');
      t.eq(created.list_id, list, 'the todo is in the list');
      const value = await t.until(feed.todos, 'the new todo', (v) => t.titles(v).join() === 'Buy milk');
      t.ok(Object.isFrozen(value) && Object.isFrozen(value[0]), 'store values are immutable');
      const event = await t.until(feed.events, 'the event', (e) => e !== null);
      t.eq(event.type, 'todo_created', 'the event');
      await feed.update(created.id, { done: true });
      await t.until(feed.todos, 'done', (v) => v[0]?.done === true);
      await feed.remove(created.id);
      await t.until(feed.todos, 'empty', (v) => v.length === 0);
      // A REST error rejects with the server's code and status.
      const error = await t.rejection(feed.create('   '), 'a blank title');
      t.ok(error instanceof Error, 'an Error');
      t.eq([error.code, error.status], ['invalid_title', 422], 'code and status');
      feed.close();
    },
    list,
  );
  assertClean(page);
});

test('two feeds on one list converge on the server snapshot', async (t) => {
  const page = await openPage(t);
  const list = await freshList('converge');
  await inPage(
    page,
    async (t, list) => {
      const [a, b] = [new t.TodoFeed('', { lists: [list] }), new t.TodoFeed('', { lists: [list] })];
      window.feeds = [a, b];
      await t.until(a.status, 'a open', (s) => s.state === 'open');
      await t.until(b.status, 'b open', (s) => s.state === 'open');
      const first = await a.create('one');
      await b.create('two');
      await a.create('three');
      await b.update(first.id, { title: 'one, renamed' });
    },
    list,
  );
  const want = JSON.stringify(await todosOf(list));
  await inPage(
    page,
    async (t, want) => {
      for (const feed of window.feeds) {
        await t.until(feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want);
        feed.close();
      }
    },
    want,
  );
  assertClean(page);
});

test('a feed resumes after a restart and sees what changed while the server was down', async (t) => {
  const page = await openPage(t);
  const list = await freshList('restart');
  const [keep, doomed] = await inPage(
    page,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list], backoff: t.fast });
      window.feed = feed;
      await t.until(feed.status, 'open', (s) => s.state === 'open');
      const keep = await feed.create('keep');
      const doomed = await feed.create('doomed');
      await t.until(feed.todos, 'both', (v) => v.length === 2);
      return [keep.id, doomed.id];
    },
    list,
  );
  await server.stop();
  try {
    await inPage(page, (t) => t.until(window.feed.status, 'reconnecting', (s) => s.state === 'reconnecting'));
    // Written by another server process on the same database while ours is down.
    const other = new TidingsServer({ dir: server.dir, port: await freePort() });
    await other.start();
    try {
      await other.api('POST', `/api/lists/${list}/todos`, { title: 'while away' });
      await other.api('PATCH', `/api/todos/${keep}`, { done: true, title: 'kept' });
      await other.api('DELETE', `/api/todos/${doomed}`);
    } finally {
      await other.stop();
    }
  } finally {
    await server.start();
  }
  const want = JSON.stringify(await todosOf(list));
  const titles = await inPage(
    page,
    async (t, want) => {
      await t.until(window.feed.status, 'open again', (s) => s.state === 'open');
      const value = await t.until(window.feed.todos, "the server's snapshot", (v) => JSON.stringify(v) === want);
      window.feed.close();
      return t.titles(value);
    },
    want,
  );
  assert.deepEqual(titles, ['kept', 'while away'], 'no duplicate, nothing lost');
  assertClean(page);
});

test('the watchdog reconnects a silent stream', async (t) => {
  const page = await openPage(t);
  await inPage(page, async (t) => {
    // The server beats every second; a 300 ms timeout declares the quiet stream dead.
    const feed = new t.TodoFeed('', { lists: ['inbox'], heartbeatTimeoutMs: 300 });
    await t.until(feed.status, 'open', (s) => s.state === 'open');
    const dead = await t.until(feed.status, 'the watchdog', (s) => t.code(s) === 'heartbeat_timeout');
    t.eq(dead.state, 'reconnecting', 'state after the watchdog fired');
    await t.until(feed.status, 'open again', (s) => s.state === 'open');
    feed.close();
  });
  assertClean(page);
});

test('a malformed event is reported and the stream goes on', async (t) => {
  const page = await openPage(t);
  await inPage(
    page,
    async (t, base) => {
      const feed = new t.TodoFeed(base, { initial: { todos: [], last_event_id: 0 } });
      const errors = [];
      const unsubscribe = feed.status.subscribe((s) => {
        if (s.error) errors.push([s.error.code, s.error.message]);
      });
      const todos = await t.until(feed.todos, 'the good event', (v) => t.titles(v).join() === 'survived');
      t.eq(todos.length, 1, 'only the good todo');
      const seen = JSON.stringify(errors);
      t.ok(errors.some(([c, m]) => c === 'decode_error' && m.includes('not JSON')), `not JSON reported: ${seen}`);
      t.ok(errors.some(([c, m]) => c === 'decode_error' && m.includes('wrong type')), `wrong type reported: ${seen}`);
      unsubscribe();
      feed.close();
    },
    `${fakes.url}/malformed`,
  );
  assertClean(page);
});

test('stores keep the Svelte store contract', async (t) => {
  const page = await openPage(t);
  const list = await freshList('contract');
  await inPage(
    page,
    async (t, list) => {
      const feed = new t.TodoFeed('', { lists: [list] });
      const todos = feed.todos;
      t.ok(todos === feed.todos, 'the same store object every time');
      // `run` is called at once, synchronously, with the current value.
      const calls = [];
      const unsubscribe = todos.subscribe((v) => calls.push(v));
      t.eq(calls.length, 1, 'called at once');
      t.ok(Array.isArray(calls[0]), 'with an array');
      await t.until(feed.status, 'open', (s) => s.state === 'open');
      await feed.create('first');
      await t.until(todos, 'first', (v) => t.titles(v).join() === 'first');
      const before = calls.length;
      t.ok(before >= 2, 'called again on change');
      // After unsubscribing, no more calls, while other subscribers still get changes.
      unsubscribe();
      unsubscribe(); // twice is harmless
      await feed.create('second');
      await t.until(todos, 'second', (v) => v.length === 2);
      t.eq(calls.length, before, 'no calls after unsubscribing');
      const { get } = todos; // unbound, as React's useSyncExternalStore calls it
      t.eq(t.titles(get()), ['first', 'second'], 'get()');
      feed.close();
    },
    list,
  );
  assertClean(page);
});

test('the stream opens lazily and closes after the grace period', async (t) => {
  const page = await openPage(t);
  await inPage(page, async (t) => {
    const feed = new t.TodoFeed('', { lists: ['inbox'] });
    await t.sleep(300);
    // No subscriber yet: nothing connected.
    t.eq(feed.status.get().state, 'connecting', 'before the first subscriber');
    const unsubscribe = feed.todos.subscribe(() => {});
    await t.until(feed.status, 'open', (s) => s.state === 'open');
    // Leave and come back within the grace period: the connection stays.
    unsubscribe();
    const again = feed.todos.subscribe(() => {});
    await t.sleep(1500);
    t.eq(feed.status.get().state, 'open', 'after coming back within the grace period');
    // Leave for longer than the grace period: it closes (and reopens on demand).
    again();
    await t.sleep(1500);
    t.eq(feed.status.get().state, 'closed', 'after the grace period');
    const back = feed.todos.subscribe(() => {});
    await t.until(feed.status, 'open again', (s) => s.state === 'open');
    back();
    feed.close();
  });
  assertClean(page);
});

test('a resume point the server no longer has refetches the snapshot', async (t) => {
  const page = await openPage(t);
  const list = await freshList('resync');
  await server.api('POST', `/api/lists/${list}/todos`, { title: 'on the server' });
  const want = JSON.stringify(await todosOf(list));
  await inPage(
    page,
    async (t, [list, want]) => {
      // An `initial` snapshot at an id this log does not hold (another log's): it answers `resync`.
      const stale = {
        todos: [{ id: 'x', list_id: list, title: 'stale', done: false, created_at: 0, updated_at: 0 }],
        last_event_id: 1_000_000_000,
      };
      const feed = new t.TodoFeed('', { lists: [list], initial: stale });
      t.eq(t.titles(feed.todos.get()), ['stale'], 'the initial snapshot at once');
      await t.until(feed.todos, 'the refetched snapshot', (v) => JSON.stringify(v) === want);
      feed.close();
    },
    [list, want],
  );
  assertClean(page);
});

test('EventStream selects any event as parsed JSON', async (t) => {
  const page = await openPage(t);
  const list = await freshList('generic');
  await inPage(
    page,
    async (t, list) => {
      const es = new t.EventStream(`/api/events?list=${list}`);
      const created = es.select('todo_created');
      t.ok(created === es.select('todo_created'), 'the same store for the same name');
      await t.until(es.status, 'open', (s) => s.state === 'open');
      await t.call('POST', `/api/lists/${list}/todos`, { title: 'generic' });
      const data = await t.until(created, 'todo_created', (d) => d !== null);
      t.eq(data.todo.title, 'generic', 'the parsed data');
      t.ok(typeof es.lastEventId === 'string' && es.lastEventId !== '', 'lastEventId');
      es.close();
    },
    list,
  );
  assertClean(page);
});

test('a 204 stops the client for good', async (t) => {
  const page = await openPage(t);
  await inPage(
    page,
    async (t, url) => {
      const es = new t.EventStream(url);
      es.select('anything');
      const unsubscribe = es.status.subscribe(() => {});
      const stopped = await t.until(es.status, 'stopped', (s) => t.code(s) === 'stopped_by_server');
      t.eq(stopped.state, 'closed', 'state');
      unsubscribe();
      es.close();
    },
    `${fakes.url}/stop/api/events`,
  );
  assertClean(page);
});

test('unauthorized is not retried in a tight loop', async (t) => {
  const page = await openPage(t);
  await inPage(
    page,
    async (t, url) => {
      const es = new t.EventStream(url, { backoff: { initialMs: 20, maxMs: 1500, jitter: 0 } });
      window.es = es;
      const failed = await t.until(es.status, 'the 401', (s) => s.error?.status === 401);
      t.eq([failed.state, t.code(failed)], ['reconnecting', 'unauthorized'], 'state and code');
    },
    `${fakes.url}/unauthorized/api/events`,
  );
  // With a 20 ms first delay, a client that did not back off would have retried many times
  // in a second. Jumping to the 1.5 s cap, it has not retried at all.
  const before = fakes.hitsOf('unauthorized');
  await inPage(page, (t) => t.sleep(1000));
  const retries = fakes.hitsOf('unauthorized') - before;
  assert.ok(retries <= 1, `${retries} requests in one second`);
  await inPage(page, () => window.es.close());
  assertClean(page);
});

test('a token function that gives no token is unauthorized, and not asked in a tight loop', async (t) => {
  const page = await openPage(t);
  const calls = await inPage(page, async (t, url) => {
    window.calls = 0;
    const accessToken = () => {
      window.calls++;
      throw new Error('signed out');
    };
    const feed = new t.TodoFeed(url, { accessToken, shareConnection: false, backoff: { initialMs: 20, maxMs: 1500, jitter: 0 } });
    window.feed = feed;
    feed.status.subscribe(() => {}); // awake throughout
    const failed = await t.until(feed.status, 'unauthorized', (s) => s.error?.code === 'unauthorized');
    t.eq([failed.state, failed.error.message], ['reconnecting', 'accessToken gave no token: signed out'], 'state and message');
    const before = window.calls;
    // With a 20 ms first delay, a feed that did not back off would ask many times a second.
    await t.sleep(1000);
    return window.calls - before;
  }, server.url);
  assert.ok(calls <= 1, `${calls} calls of the token function in one second`);
  await inPage(page, () => window.feed.close());
  assertClean(page);
});

test('close cancels a pending retry', async (t) => {
  const page = await openPage(t);
  await inPage(page, async (t) => {
    const base = t.liveResources();
    // Nothing listens on port 9: every attempt fails and a retry is always pending.
    const feed = new t.TodoFeed('http://127.0.0.1:9', { backoff: t.fast });
    const unsubscribe = feed.status.subscribe(() => {});
    await t.until(feed.status, 'a failed attempt', (s) => s.attempt >= 1);
    t.ok(t.liveResources() > base, 'a retry is pending');
    feed.close();
    t.eq(t.liveResources(), base, 'close() released every timer and listener');
    t.eq(feed.status.get().state, 'closed', 'state');
    unsubscribe();
  });
  assertClean(page);
});

test('a thousand create/close cycles leak nothing', async (t) => {
  const page = await openPage(t);
  const before = await server.api('GET', '/health');
  await inPage(
    page,
    async (t, head) => {
      const base = t.liveResources();
      const options = () => ({ lists: ['inbox'], initial: { todos: [], last_event_id: head } });
      let warm = 0;
      for (let cycle = 0; cycle < 1000; cycle++) {
        const feed = new t.TodoFeed('', options());
        const unsubscribe = feed.todos.subscribe(() => {});
        t.ok(t.liveResources() > base, 'the stream opened');
        feed.close();
        unsubscribe();
        feed.free();
        t.eq(t.liveResources(), base, `cycle ${cycle} left something behind`);
        // Let the browser deliver what closing aborted (in-flight requests settle).
        if (cycle % 10 === 9) await t.sleep(0);
        if (cycle === 100) warm = t.memory();
      }
      t.ok(t.memory() <= warm + 65_536, `wasm memory grew from ${warm} to ${t.memory()}`);
    },
    before.last_event_id,
  );
  // The server sees every connection closed (it notices at its next heartbeat write).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const health = await server.api('GET', '/health');
    if (health.open_streams <= before.open_streams) break;
    assert.ok(Date.now() < deadline, `connections left open: ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assertClean(page);
});

test('online, pageshow and a visible tab retry at once', async (t) => {
  const page = await openPage(t);
  await inPage(
    page,
    async (t, url) => {
      // After a 401 the next retry is 60 s away (the cap, no jitter): any request sooner
      // comes from the page event.
      const es = new t.EventStream(url, { backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
      window.es = es;
    },
    `${fakes.url}/unauthorized/api/events`,
  );
  let attempt = 1;
  for (const [target, event] of [
    ['window', 'online'],
    ['window', 'pageshow'],
    ['document', 'visibilitychange'],
  ]) {
    await inPage(
      page,
      (t, attempt) =>
        t.until(window.es.status, 'a failed attempt', (s) => s.attempt === attempt && s.state === 'reconnecting' && s.error),
      attempt,
    );
    const before = fakes.hitsOf('unauthorized');
    attempt++;
    await inPage(
      page,
      (t, [target, event, attempt]) => {
        (target === 'window' ? window : document).dispatchEvent(new Event(event));
        return t.until(window.es.status, event, (s) => s.attempt === attempt);
      },
      [target, event, attempt],
    );
    assert.ok(fakes.hitsOf('unauthorized') > before, `${event} did not retry`);
  }
  await inPage(page, () => window.es.close());
  assertClean(page);
});

test('a list that does not exist stops instead of retrying', async (t) => {
  const page = await openPage(t);
  await inPage(page, async (t) => {
    const feed = new t.TodoFeed('', { lists: ['no-such-list'], backoff: t.fast });
    const stopped = await t.until(feed.status, 'the 404', (s) => s.error !== undefined);
    t.eq([stopped.state, t.code(stopped)], ['closed', 'list_not_found'], 'state and code');
    // The lists still load (a sidebar can offer the ones that exist).
    await t.until(feed.lists, 'the lists', (l) => t.titles(l).includes('Inbox'));
    // And it stays stopped: no retry turns it back into `reconnecting`.
    await t.sleep(1000);
    t.eq(feed.status.get().state, 'closed', 'a second later');
    feed.close();
  });
  assertClean(page);
});
