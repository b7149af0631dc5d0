// Many tabs of one browser (pages of ONE context: one origin, shared Web Locks and
// BroadcastChannel) on the real package, pkg/: they share one stream, and whatever happens to
// the tab that holds it (closed, navigated away, frozen, its main thread blocked), every
// other tab ends up equal to the server's snapshot, in the server's order, without ever
// showing a todo twice or applying a change twice.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { packageSite, TidingsServer } from '../support/tidings.mjs';
import { launchBrowser, until } from './harness.mjs';

let server;
let browser;
let site;

before(async () => {
  // The page and the package as an app serves them: same origin as the API.
  site = packageSite('tests/e2e/tab.html', 'tidings-tabs-');
  // A 1 s heartbeat, so the server notices a closed stream within a second (`open_streams`).
  server = new TidingsServer({ env: { TIDINGS_STATIC_DIR: site, TIDINGS_HEARTBEAT_SECS: '1' } });
  [, browser] = await Promise.all([server.start(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** The tabs of one test: pages of one browser context, with every console problem kept. */
class Tabs {
  constructor() {
    this.pages = [];
    this.problems = [];
  }

  async open(query, label) {
    // One context for all (pages opened at once must not each make their own).
    this.context ??= browser.newContext({ baseURL: server.url });
    const page = await (await this.context).newPage();
    page.label = label;
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') {
        this.problems.push(`[${label}] console.${msg.type()}: ${msg.text()}`);
      }
    });
    page.on('pageerror', (error) => this.problems.push(`[${label}] uncaught: ${error.stack ?? error}`));
    await page.goto(`/?${query}`);
    await page.waitForFunction(() => window.tab !== undefined, null, { timeout: 10_000 });
    this.pages.push(page);
    return page;
  }

  /** The open pages. */
  get live() {
    return this.pages.filter((page) => !page.isClosed() && page.url().includes('?'));
  }

  async end(t) {
    for (const problem of this.problems) t.diagnostic(problem);
    await (await this.context)?.close();
  }

  assertClean() {
    assert.deepEqual(this.problems, [], 'no console errors or warnings, no uncaught errors');
  }
}

const view = (page) =>
  page.evaluate(() => ({
    role: tab.status?.role,
    state: tab.status?.state,
    todos: tab.todos,
    applied: tab.applied,
    duplicates: tab.duplicates,
  }));

/** Wait until `page`'s tab satisfies `check(tab, arg)` (evaluated in the page). */
async function waitFor(page, what, check, arg, timeout = 10_000) {
  try {
    await page.waitForFunction(check, arg, { timeout, polling: 20 });
  } catch (error) {
    const seen = await view(page).catch(() => 'unknown');
    throw new Error(`[${page.label}] ${what} within ${timeout} ms; the tab has ${JSON.stringify(seen)}`, {
      cause: error,
    });
  }
}

const createList = (title) => server.api('POST', '/api/lists', { title });

async function serverTodos(list) {
  const { todos } = await server.api('GET', `/api/lists/${list}/todos`);
  return todos.map(({ id, title, done }) => ({ id, title, done }));
}

/** Every page shows exactly the server's todos, in its order. */
async function allEqualTheServer(pages, list) {
  const want = await serverTodos(list);
  await Promise.all(
    pages.map((page) =>
      waitFor(page, 'equal to the server', (w) => JSON.stringify(tab.todos) === JSON.stringify(w), want),
    ),
  );
  return want;
}

/** No todo shown twice, ever; every applied change id larger than the one before. */
async function assertNeverTwice(page) {
  const { duplicates, applied } = await view(page);
  assert.deepEqual(duplicates, [], `[${page.label}] showed a todo twice`);
  for (let i = 1; i < applied.length; i++) {
    assert.ok(applied[i] > applied[i - 1], `[${page.label}] applied ${applied[i]} after ${applied[i - 1]}`);
  }
}

const roleOf = (page) => page.evaluate(() => tab.status?.role);

async function leaderOf(pages) {
  const roles = await Promise.all(pages.map(roleOf));
  const leaders = pages.filter((_, i) => roles[i] === 'leader');
  return { leaders, roles };
}

/** Wait until exactly one of `pages` leads, every stream open; resolves with the leader. */
async function oneLeader(pages, timeout = 5000) {
  let states;
  const deadline = performance.now() + timeout;
  for (;;) {
    states = await Promise.all(pages.map((p) => p.evaluate(() => tab.status)));
    const leaders = pages.filter((_, i) => states[i]?.role === 'leader');
    if (leaders.length === 1 && states.every((s) => s?.state === 'open' && s.role !== 'own')) {
      return leaders[0];
    }
    if (performance.now() > deadline) {
      const seen = states.map((s, i) => `${pages[i].label}: ${s?.role} ${s?.state} ${s?.error?.code ?? ''}`);
      throw new Error(`no single leader with every tab open within ${timeout} ms: ${seen.join(', ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Write to `list` until `stop()` is called: creates, renames with toggles, deletes, one after
 * another (each after the server's answer), at most `max` operations.
 */
function writer(list, max = 400) {
  let stopped = false;
  const ids = [];
  const done = (async () => {
    let n = 0;
    for (; n < max && !stopped; n++) {
      const kind = n % 5;
      if (kind === 3 && ids.length) {
        await server.api('PATCH', `/api/todos/${ids[0]}`, { title: `renamed ${n}`, done: n % 2 === 0 });
      } else if (kind === 4 && ids.length > 2) {
        await server.api('DELETE', `/api/todos/${ids.shift()}`);
      } else {
        ids.push((await server.api('POST', `/api/lists/${list}/todos`, { title: `todo ${n}` })).id);
      }
    }
    return n;
  })();
  return {
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

async function openStreams() {
  return (await server.api('GET', '/health')).open_streams;
}

/** Wait until the server counts `n` open streams (it notices a closed one at its next
 * heartbeat, every second here). */
async function streamsAre(n, pages = [], timeout = 5000) {
  let seen;
  try {
    await until(async () => (seen = await openStreams()) === n, `${n} open stream(s)`, timeout);
  } catch (error) {
    const tabs = await Promise.all(
      pages.map(async (p) => `${p.label}: ${JSON.stringify(await p.evaluate(() => [tab.status, tab.live()]))}`),
    );
    throw new Error(`the server counts ${seen} open streams, not ${n}; ${tabs.join('; ')}`, { cause: error });
  }
}

test('eight tabs share one stream, with writes racing their start-up', { timeout: 90_000 }, async (t) => {
  const tabs = new Tabs();
  try {
    const list = await createList('Eight tabs');
    const writes = writer(list.id);
    const pages = await Promise.all(
      Array.from({ length: 8 }, (_, i) => tabs.open(`list=${list.id}`, `tab${i + 1}`)),
    );
    await oneLeader(pages);
    const written = await writes.stop();
    t.diagnostic(`${written} writes while the tabs started`);
    assert.ok(written > 0);
    const last = await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'after start-up' });
    const want = await allEqualTheServer(pages, list.id);
    assert.equal(want.at(-1).id, last.id);
    // The server sees it too: one stream for eight tabs (it notices a closed one within its
    // 1 s heartbeat, hence the wait).
    await streamsAre(1);
    const { roles } = await leaderOf(pages);
    assert.deepEqual(roles.toSorted(), ['follower', 'follower', 'follower', 'follower', 'follower', 'follower', 'follower', 'leader']);
    for (const page of pages) await assertNeverTwice(page);
  } finally {
    await tabs.end(t);
  }
  tabs.assertClean();
});

test('closing tabs one by one, the leader among them, while writing', { timeout: 120_000 }, async (t) => {
  const tabs = new Tabs();
  try {
    const list = await createList('Closing tabs');
    const pages = [];
    for (let i = 0; i < 6; i++) pages.push(await tabs.open(`list=${list.id}`, `tab${i + 1}`));
    await oneLeader(pages);
    const writes = writer(list.id);
    const took = [];
    // Leader closed, follower closed, leader navigates away, leader closed.
    for (const [how, whom] of [['close', 'leader'], ['close', 'follower'], ['navigate', 'leader'], ['close', 'leader']]) {
      const open = tabs.live;
      const { leaders, roles } = await leaderOf(open);
      assert.equal(leaders.length, 1, `one leader: ${roles}`);
      const victim = whom === 'leader' ? leaders[0] : open.find((p) => p !== leaders[0]);
      // Let a few changes flow through the current leader first.
      const before = (await view(open[0])).applied.length;
      await waitFor(open[0], 'more changes', (n) => tab.applied.length >= n + 3, before);
      const start = performance.now();
      if (how === 'close') await victim.close();
      else await victim.goto('about:blank');
      const rest = tabs.live;
      await oneLeader(rest);
      took.push(`${how} ${whom}: new leader open after ${Math.round(performance.now() - start)} ms`);
    }
    t.diagnostic(took.join('; '));
    await writes.stop();
    const rest = tabs.live;
    assert.equal(rest.length, 2);
    const want = await allEqualTheServer(rest, list.id);
    assert.ok(want.length > 0);
    for (const page of rest) await assertNeverTwice(page);
    await streamsAre(1, rest);
  } finally {
    await tabs.end(t);
  }
  tabs.assertClean();
});

test('a late tab gets exactly what followed its snapshot, whether the leader is ahead of it or behind', { timeout: 90_000 }, async (t) => {
  const tabs = new Tabs();
  try {
    const list = await createList('Late tabs');
    const add = (title) => server.api('POST', `/api/lists/${list.id}/todos`, { title });
    const snapshot = () => server.api('GET', `/api/lists/${list.id}/todos`);

    // An `initial` snapshot older than the first tab's own: the leader holds no chain back to
    // it, so the late tab is told to reload.
    const oldest = await snapshot();
    await add('one');
    const first = await tabs.open(`list=${list.id}`, 'first');
    await oneLeader([first]);
    const reloaded = await tabs.open(`list=${list.id}&manual`, 'reloaded');
    await reloaded.evaluate((initial) => tab.open({ initial }), oldest);
    await allEqualTheServer([first, reloaded], list.id);

    // The leader ahead of the late tab's snapshot: it fills the gap from the changes it
    // applied, and the late tab applies exactly those, once.
    const older = await snapshot();
    await add('two');
    await add('three');
    await allEqualTheServer([first, reloaded], list.id);
    const ahead = await tabs.open(`list=${list.id}&manual`, 'ahead');
    await ahead.evaluate((initial) => tab.open({ initial }), older);
    await allEqualTheServer([first, reloaded, ahead], list.id);
    const { applied } = await view(ahead);
    assert.equal(applied.length, 2, `the two changes after its snapshot: ${applied}`);
    assert.ok(applied[0] > older.last_event_id);

    // The leader behind: its main thread is busy while three more todos are written and a
    // new tab loads its snapshot, which holds them. When the leader relays them, the new tab
    // has them already.
    const leader = await oneLeader([first, reloaded, ahead]);
    const behind = await tabs.open(`list=${list.id}&manual`, 'behind');
    const busy = leader.evaluate(() => {
      const end = Date.now() + 700;
      while (Date.now() < end);
    });
    for (const title of ['four', 'five', 'six']) await add(title);
    await behind.evaluate(() => tab.open());
    await waitFor(behind, 'its snapshot', () => tab.todos.length === 6);
    await busy;
    const all = [first, reloaded, ahead, behind];
    await allEqualTheServer(all, list.id);
    const seven = await add('seven');
    const want = await allEqualTheServer(all, list.id);
    assert.equal(want.at(-1).id, seven.id);
    assert.equal((await view(behind)).applied.length, 1, 'only the change after its snapshot');
    for (const page of all) await assertNeverTwice(page);
    t.diagnostic(`roles at the end: ${(await leaderOf(all)).roles}`);
  } finally {
    await tabs.end(t);
  }
  tabs.assertClean();
});

// Ways a leader stops running while it holds its lock. CDP's `Page.setWebLifecycleState`
// `frozen` would be the natural one, but in this Chromium it changes nothing for a visible
// page (its timers, network and messages all go on: measured), so the page is stopped with a
// debugger pause (its main thread stops for real, as in a freeze) or a busy loop; and the
// `freeze` event a browser fires before it freezes a hidden tab is fired as the browser does,
// to check that a leader hands over at once instead of waiting to be found silent.
for (const [how, stall, within] of [
  ['frozen (paused by the debugger)', 'pause', 3000],
  ['blocked by a busy main thread', 'block', 3000],
  ['told it is being frozen (the freeze event)', 'freeze', 1000],
]) {
  test(`a leader ${how} is replaced, and follows once it runs again`, { timeout: 90_000 }, async (t) => {
    const tabs = new Tabs();
    try {
      const list = await createList(`Stalled ${stall}`);
      const pages = [];
      for (let i = 0; i < 3; i++) pages.push(await tabs.open(`list=${list.id}`, `tab${i + 1}`));
      const leader = await oneLeader(pages);
      const others = pages.filter((p) => p !== leader);
      const writes = writer(list.id);
      const start = performance.now();
      let resume;
      if (stall === 'pause') {
        // Pauses at the next statement the page runs: its relay's timer, within 250 ms.
        const cdp = await leader.context().newCDPSession(leader);
        await cdp.send('Debugger.enable');
        await cdp.send('Debugger.pause');
        resume = () => cdp.send('Debugger.resume');
      } else if (stall === 'freeze') {
        await leader.evaluate(() => document.dispatchEvent(new Event('freeze')));
        resume = () => leader.evaluate(() => document.dispatchEvent(new Event('resume')));
      } else {
        const busy = leader.evaluate(() => {
          const end = Date.now() + 4000;
          while (Date.now() < end);
        });
        resume = () => busy;
      }
      await oneLeader(others, 5000);
      const took = Math.round(performance.now() - start);
      t.diagnostic(`another tab leads after ${took} ms`);
      assert.ok(took < within, `another tab leads after ${took} ms, not within ${within} ms`);
      // The others stay live meanwhile: a write reaches both through the new leader.
      await writes.stop();
      const marker = await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'while stalled' });
      await Promise.all(
        others.map((p) => waitFor(p, 'the write', (id) => tab.todos.some((x) => x.id === id), marker.id)),
      );
      await resume();
      await waitFor(leader, 'following', () => tab.status?.role === 'follower');
      await oneLeader(pages);
      await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'after' });
      await allEqualTheServer(pages, list.id);
      for (const page of pages) await assertNeverTwice(page);
      await streamsAre(1, pages);
    } finally {
      await tabs.end(t);
    }
    tabs.assertClean();
  });
}

test('closing every feed in every tab leaves no lock, channel, listener, timer or stream', { timeout: 60_000 }, async (t) => {
  const tabs = new Tabs();
  try {
    const list = await createList('Leaks');
    const pages = [];
    for (let i = 0; i < 4; i++) pages.push(await tabs.open(`list=${list.id}`, `tab${i + 1}`));
    await oneLeader(pages);
    await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'one' });
    await allEqualTheServer(pages, list.id);
    assert.ok((await pages[0].evaluate(() => tab.live())) > 0);
    // Followers first, then the leader, so every handover path runs once more.
    const { leaders } = await leaderOf(pages);
    for (const page of [...pages.filter((p) => p !== leaders[0]), leaders[0]]) {
      await page.evaluate(() => tab.close());
      assert.equal(await page.evaluate(() => tab.live()), 0, `[${page.label}] liveResources() after close()`);
      assert.equal(await page.evaluate(() => tab.status.state), 'closed');
    }
    const locks = await pages[0].evaluate(async () => {
      const { held, pending } = await navigator.locks.query();
      return [...held, ...pending].map((l) => l.name).filter((name) => name.startsWith('tidings/'));
    });
    assert.deepEqual(locks, [], 'no lock held or queued');
    await streamsAre(0);
  } finally {
    await tabs.end(t);
  }
  tabs.assertClean();
});

test('shareConnection: false, or a browser without Web Locks: each tab has its own stream', { timeout: 60_000 }, async (t) => {
  const tabs = new Tabs();
  try {
    const list = await createList('Own streams');
    const pages = [
      await tabs.open(`list=${list.id}&own`, 'own'),
      await tabs.open(`list=${list.id}&nolocks`, 'no-locks'),
      await tabs.open(`list=${list.id}`, 'shared'),
    ];
    for (const page of pages) await waitFor(page, 'open', () => tab.status?.state === 'open');
    assert.deepEqual(await Promise.all(pages.map(roleOf)), ['own', 'own', 'leader']);
    await streamsAre(3);
    await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'to all' });
    await allEqualTheServer(pages, list.id);
  } finally {
    await tabs.end(t);
  }
  tabs.assertClean();
});
