// The real package (pkg/) in Chromium against a real server with access control: where its
// tokens come from and when (a function called before every connect and REST call, once more
// after a 401), a stream that ends at its token's expiry resuming without a gap, tabs of
// different users never sharing a stream, and a database replaced under a client (another
// epoch) refetched instead of resumed.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { packageSite, TidingsServer, freePort } from '../support/tidings.mjs';
import { now, sign } from '../support/jwt.mjs';
import { launchBrowser } from './harness.mjs';

const SECRET = 'tokens-test-secret-0123456789abcdef-0123456789';
/** Seconds past `exp` the server still takes a token, and keeps its stream (LEEWAY_SECS). */
const LEEWAY = 5;

let site;
let server;
let browser;

before(async () => {
  // The page and the package as an app serves them: same origin as the API.
  site = packageSite('tests/e2e/tab.html', 'tidings-tokens-');
  server = new TidingsServer({
    env: { TIDINGS_STATIC_DIR: site, TIDINGS_AUTH_SECRET: SECRET, TIDINGS_HEARTBEAT_SECS: '1' },
  });
  [, browser] = await Promise.all([server.start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** REST as `user` (a token valid for ten minutes); rejects on a non-2xx status. */
async function as(user, method, path, body, on = server) {
  const res = await fetch(`${on.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${sign({ sub: user, exp: now() + 600 }, SECRET)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} as ${user}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The pages of one test, each in the given context, every console problem kept but the
 * browser's own lines about requests that fail on purpose (`tolerate`). */
class Pages {
  constructor(...tolerate) {
    this.problems = [];
    this.contexts = [];
    this.tolerate = tolerate;
  }

  async context() {
    const context = await browser.newContext({ baseURL: server.url });
    this.contexts.push(context);
    return context;
  }

  /**
   * A tab (tests/e2e/tab.html) following `list`, not started yet. `mint(refresh)` (in Node)
   * answers the page's `accessToken` function. `requests` records every API request: method,
   * path, query, resource type and the token it carried.
   */
  async open(context, list, label, mint) {
    const page = await context.newPage();
    page.label = label;
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      if (!this.tolerate.some((pattern) => pattern.test(msg.text()))) this.problems.push(`[${label}] ${msg.text()}`);
    });
    page.on('pageerror', (error) => this.problems.push(`[${label}] uncaught: ${error.stack ?? error}`));
    page.requests = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (!url.pathname.startsWith('/api/')) return;
      const entry = { method: request.method(), path: url.pathname, query: url.searchParams, type: request.resourceType(), token: null };
      page.requests.push(entry);
      const query = url.searchParams.get('access_token');
      if (query) entry.token = query;
      else request.allHeaders().then((h) => (entry.token = h.authorization?.replace(/^Bearer /, '') ?? null));
    });
    if (mint) await page.exposeFunction('mint', mint);
    await page.goto(`/?list=${list}&manual`);
    await page.waitForFunction(() => window.tab !== undefined, null, { timeout: 10_000 });
    return page;
  }

  async end(t) {
    for (const problem of this.problems) t.diagnostic(problem);
    for (const context of this.contexts) await context.close();
  }
}

/** Wait until `check(arg)` holds in `page` (evaluated there). */
async function waitFor(page, what, check, arg, timeout = 10_000) {
  try {
    await page.waitForFunction(check, arg, { timeout, polling: 20 });
  } catch (error) {
    const seen = await page.evaluate(() => ({ status: tab.status, todos: tab.todos.map((t) => t.title) })).catch(() => null);
    throw new Error(`[${page.label}] ${what} within ${timeout} ms; the tab has ${JSON.stringify(seen)}`, { cause: error });
  }
}

const titles = (todos) => todos.map((t) => t.title);

/** A token function in Node: every call mints a new token (`n` makes each one distinct). */
function minter(user, { life = 600, secret = SECRET, good = () => true } = {}) {
  const minted = [];
  const mint = (refresh) => {
    const token = sign({ sub: user, exp: now() + life, n: minted.length }, good(refresh) ? secret : `${secret}-wrong`);
    minted.push({ token, refresh });
    return token;
  };
  return { minted, mint, refreshOf: (token) => minted.find((m) => m.token === token)?.refresh };
}

test('the token function is asked before every connect and REST call, and a token that expires hands over without a gap', { timeout: 60_000 }, async (t) => {
  const pages = new Pages();
  try {
    const list = await as('alice', 'POST', '/api/lists', { title: 'Expiring' });
    // Tokens two seconds from the end of their leeway: the server ends each stream then. Once
    // the feed is open, every token the function gives is preceded by a change, written while
    // the old stream is over and the new one not yet open: exactly what a gap would lose.
    const tokens = minter('alice', { life: 2 - LEEWAY });
    let handovers = 0;
    let writing = false;
    let written = Promise.resolve();
    const mint = async (refresh) => {
      if (writing) {
        written = as('alice', 'POST', `/api/lists/${list.id}/todos`, { title: `handover ${++handovers}` });
        await written;
      }
      return tokens.mint(refresh);
    };
    const page = await pages.open(await pages.context(), list.id, 'alice', mint);
    await page.evaluate(() => tab.open({ accessToken: ({ refresh }) => window.mint(refresh) }));
    await waitFor(page, 'open', () => tab.status?.state === 'open');
    await page.evaluate(() => tab.feed.create('before'));
    writing = true;
    await waitFor(page, 'three handovers', () => tab.todos.filter((t) => t.title.startsWith('handover')).length >= 3, null, 20_000);
    writing = false;
    await written;

    const { todos: want } = await as('alice', 'GET', `/api/lists/${list.id}/todos`);
    await waitFor(page, 'the server snapshot', (w) => JSON.stringify(tab.todos.map((t) => t.id)) === JSON.stringify(w), want.map((t) => t.id));
    assert.deepEqual(titles(want).slice(0, 4), ['before', 'handover 1', 'handover 2', 'handover 3']);
    const { applied, statuses, duplicates } = await page.evaluate(() => tab);
    for (let i = 1; i < applied.length; i++) assert.ok(applied[i] > applied[i - 1], `applied ${applied}`);
    assert.deepEqual(duplicates, [], 'no todo shown twice');
    // No gap papered over by a refetch: the snapshot was loaded once.
    const snapshots = page.requests.filter((r) => r.method === 'GET' && r.path === `/api/lists/${list.id}/todos`);
    assert.equal(snapshots.length, 1, 'one snapshot load');
    assert.ok(!statuses.some((s) => s.error === 'unauthorized'), `never unauthorized: ${JSON.stringify(statuses)}`);

    // Each stream's URL carried a one-time ticket and never a token; each ticket and each REST
    // request carried a token of its own, from the function.
    const streams = page.requests.filter((r) => r.type === 'eventsource');
    assert.ok(streams.length >= 4, `${streams.length} streams`);
    for (const stream of streams.slice(1)) {
      assert.ok(stream.query.get('last_event_id'), 'a reconnect resumes');
      assert.ok(stream.query.get('epoch'), 'with the epoch of its id');
    }
    const tickets = new Set(streams.map((s) => s.query.get('ticket')));
    assert.ok(!tickets.has(null) && tickets.size === streams.length, 'a ticket of its own for every stream');
    assert.ok(streams.every((s) => !s.query.has('access_token')), 'no token in a stream URL');
    const bought = page.requests.filter((r) => r.method === 'POST' && r.path === '/api/events/ticket');
    assert.ok(bought.length >= streams.length, `${bought.length} tickets for ${streams.length} streams`);
    const used = page.requests.filter((r) => r.path !== '/api/events').map((r) => r.token);
    assert.ok(used.every((token) => tokens.minted.some((m) => m.token === token)), 'every token from the function');
    assert.equal(new Set(used).size, used.length, 'a fresh call for every connect and REST call');
    assert.ok(used.length >= streams.length + 3, 'REST calls too');
  } finally {
    await pages.end(t);
  }
  assert.deepEqual(pages.problems, []);
});

test('a refused token is asked for once more with refresh, and then the status says unauthorized', { timeout: 60_000 }, async (t) => {
  // The browser logs each refused request.
  const pages = new Pages(/the server responded with a status of 401/);
  try {
    const list = await as('alice', 'POST', '/api/lists', { title: 'Refused' });
    const context = await pages.context();

    // A cached token the server no longer takes: the refresh brings a good one.
    const stale = minter('alice', { good: (refresh) => refresh });
    const page = await pages.open(context, list.id, 'stale', stale.mint);
    await page.evaluate(() => tab.open({ accessToken: ({ refresh }) => window.mint(refresh), shareConnection: false }));
    await waitFor(page, 'open after a refresh', () => tab.status?.state === 'open');
    const created = await page.evaluate(() => tab.feed.create('with a fresh token').then((t) => t.title));
    assert.equal(created, 'with a fresh token');
    const refused = page.requests.filter((r) => stale.refreshOf(r.token) === false);
    assert.ok(refused.length >= 2, 'the stale token was tried (snapshot, create)');
    assert.ok(!(await page.evaluate(() => tab.statuses.some((s) => s.error === 'unauthorized'))));

    // Refused every time. Started from an `initial` snapshot, so the stream connects at once;
    // after the first refusal the next retry would be a minute away.
    // In a browser of its own: a page of the same browser and user would have its writes sent
    // by the tab holding the outbox (the first page, whose token is good).
    const never = minter('alice', { good: () => false });
    const other = await pages.open(await pages.context(), list.id, 'refused', never.mint);
    await other.evaluate(() =>
      tab.open({
        accessToken: ({ refresh }) => window.mint(refresh),
        shareConnection: false,
        initial: { todos: [], last_event_id: 0 },
        backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
      }),
    );
    await waitFor(other, 'unauthorized', () => tab.status?.error?.code === 'unauthorized');
    const status = await other.evaluate(() => ({ state: tab.status.state, status: tab.status.error.status }));
    assert.deepEqual(status, { state: 'reconnecting', status: 401 });
    // The token is refused where it is traded for a stream ticket: no stream is even tried.
    const tickets = other.requests.filter((r) => r.path === '/api/events/ticket');
    assert.deepEqual(tickets.map((r) => never.refreshOf(r.token)), [false, true], 'one connect, one with a fresh token');
    assert.equal(other.requests.filter((r) => r.type === 'eventsource').length, 0, 'no stream with a refused token');

    const before = never.minted.length;
    const error = await other.evaluate(() => tab.feed.create('never').then(() => null, (e) => ({ code: e.code, status: e.status })));
    assert.deepEqual(error, { code: 'unauthorized', status: 401 });
    assert.deepEqual(never.minted.slice(before).map((m) => m.refresh), [false, true]);
  } finally {
    await pages.end(t);
  }
  assert.deepEqual(pages.problems, []);
});

test('tabs share a stream with tabs of the same user only', { timeout: 60_000 }, async (t) => {
  const pages = new Pages();
  try {
    const list = await as('alice', 'POST', '/api/lists', { title: 'Team' });
    await as('alice', 'PUT', `/api/lists/${list.id}/members/bob`, { role: 'editor' });
    // One browser (one context: shared locks and channels), three tabs on the same list.
    const context = await pages.context();
    const alice = minter('alice');
    const bob = minter('bob');
    const tabs = [
      await pages.open(context, list.id, 'alice-1', alice.mint),
      await pages.open(context, list.id, 'alice-2', alice.mint),
      await pages.open(context, list.id, 'bob', bob.mint),
    ];
    for (const page of tabs) {
      await page.evaluate(() => tab.open({ accessToken: ({ refresh }) => window.mint(refresh) }));
    }
    for (const page of tabs) await waitFor(page, 'open', () => tab.status?.state === 'open');
    const roles = await Promise.all(tabs.map((p) => p.evaluate(() => tab.status.role)));
    assert.deepEqual(roles.toSorted(), ['follower', 'leader', 'leader'], `roles ${roles}`);
    assert.equal(roles[2], 'leader', "bob's tab does not follow alice's");

    await as('bob', 'POST', `/api/lists/${list.id}/todos`, { title: 'from bob' });
    for (const page of tabs) await waitFor(page, 'the todo', () => tab.todos.some((t) => t.title === 'from bob'));

    // Bob loses the list: his tab stops, saying why; alice's go on.
    await as('alice', 'DELETE', `/api/lists/${list.id}/members/bob`);
    await waitFor(tabs[2], 'list_unshared', () => tab.status?.error?.code === 'list_unshared');
    assert.equal(await tabs[2].evaluate(() => tab.status.state), 'closed');
    assert.deepEqual(await tabs[2].evaluate(() => tab.todos), [], 'its todos are gone');
    await as('alice', 'POST', `/api/lists/${list.id}/todos`, { title: 'after bob left' });
    for (const page of tabs.slice(0, 2)) await waitFor(page, 'the todo', () => tab.todos.some((t) => t.title === 'after bob left'));
    assert.ok(!(await tabs[2].evaluate(() => tab.todos.some((t) => t.title === 'after bob left'))));
  } finally {
    await pages.end(t);
  }
  assert.deepEqual(pages.problems, []);
});

test('a client of a replaced database refetches (another epoch) instead of resuming at an id of the old one', { timeout: 60_000 }, async (t) => {
  // Without access control, on a server of its own whose database this test replaces.
  const own = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site } });
  // The browser logs each attempt while the server is down.
  const pages = new Pages(/net::ERR_CONNECTION_REFUSED/);
  try {
    await own.start();
    await own.api('POST', '/api/lists', { id: 'doomed', title: 'Doomed' });
    await own.api('POST', '/api/lists', { id: 'kept', title: 'Kept' });
    for (const title of ['old 1', 'old 2', 'old 3']) await own.api('POST', '/api/lists/kept/todos', { title });
    const { epoch: oldEpoch } = await own.api('GET', '/health');
    const context = await browser.newContext({ baseURL: own.url });
    pages.contexts.push(context);
    const page = await pages.open(context, 'kept', 'tab');
    await page.evaluate(() => tab.open({ backoff: { initialMs: 100, maxMs: 400 } }));
    await waitFor(page, 'the old todos', () => tab.todos.length === 3 && tab.status?.state === 'open');
    const cursor = await page.evaluate(() => tab.feed.lastEventId);

    // The database is replaced while the server is down: a new one, written by another
    // process. (Its ids start at a random origin of their own, so the old id would get
    // `resync` even without its epoch; the client sends the epoch, and that is what decides.)
    await own.stop();
    for (const file of ['tidings.db', 'tidings.db-wal', 'tidings.db-shm']) rmSync(join(own.dir, file), { force: true });
    const writer = new TidingsServer({ dir: own.dir, port: await freePort() });
    await writer.start();
    await writer.api('POST', '/api/lists', { id: 'kept', title: 'Kept' });
    for (let i = 1; i <= 4; i++) await writer.api('POST', '/api/lists/kept/todos', { title: `new ${i}` });
    const { epoch: newEpoch } = await writer.api('GET', '/health');
    await writer.stop();
    assert.notEqual(newEpoch, oldEpoch);
    await own.start();

    const { todos: want } = await own.api('GET', '/api/lists/kept/todos');
    await waitFor(page, 'the new database', (w) => JSON.stringify(tab.todos.map((t) => t.title)) === JSON.stringify(w), titles(want));
    const resumed = page.requests.filter((r) => r.type === 'eventsource' && r.query.get('epoch') === oldEpoch);
    assert.ok(resumed.some((r) => Number(r.query.get('last_event_id')) === cursor), 'resumed with the old epoch');
    // The lists are the new database's: the list only the old one had is gone.
    const { lists } = await own.api('GET', '/api/lists');
    const shown = await page.evaluate(() => tab.feed.lists.get().map((l) => l.id));
    assert.deepEqual(shown, lists.map((l) => l.id));
    assert.ok(!shown.includes('doomed'));
  } finally {
    await pages.end(t);
    await own.dispose();
  }
  assert.deepEqual(pages.problems, []);
});

test('a list deleted while the client was away stops it when the stream is refused (404), as a snapshot would', { timeout: 60_000 }, async (t) => {
  const own = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site } });
  // The browser logs each attempt while the server is down, and the refused stream.
  const pages = new Pages(/net::ERR_CONNECTION_REFUSED/, /status of 404/);
  try {
    await own.start();
    await own.api('POST', '/api/lists', { id: 'short-lived', title: 'Short-lived' });
    const context = await browser.newContext({ baseURL: own.url });
    pages.contexts.push(context);
    const page = await pages.open(context, 'short-lived', 'tab');
    await page.evaluate(() => tab.open({ backoff: { initialMs: 100, maxMs: 400 } }));
    await waitFor(page, 'open', () => tab.status?.state === 'open');
    await own.stop();
    // Deleted by another process while this one is down: the client never hears of it.
    const writer = new TidingsServer({ dir: own.dir, port: await freePort() });
    await writer.start();
    await writer.api('DELETE', '/api/lists/short-lived');
    await writer.stop();
    await own.start();
    await waitFor(page, 'stopped', () => tab.status?.state === 'closed' && tab.status.error?.code === 'list_not_found');
    const streams = page.requests.filter((r) => r.type === 'eventsource').length;
    // Stopped for good: no retry comes (the backoff would have retried within 400 ms).
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 1000)));
    assert.equal(page.requests.filter((r) => r.type === 'eventsource').length, streams);
    assert.equal(await page.evaluate(() => tab.status.state), 'closed');
  } finally {
    await pages.end(t);
    await own.dispose();
  }
  assert.deepEqual(pages.problems, []);
});
