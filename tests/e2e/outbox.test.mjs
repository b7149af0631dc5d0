// The demo's writes are instant and survive going offline (issue 18): a toggle shows before
// the server could have answered on a slow link; offline, new and changed todos show at once
// with a pending marker, the badge counts the changes waiting, and going back online sends
// them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Session, launchBrowser, row, startServer, waitForBadge, waitForRows } from './harness.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

const createList = (title) => server.api('POST', '/api/lists', { title });

test('with 300 ms of latency a toggle shows within 50 ms of the click', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const list = await createList('Slow link');
    const todo = await server.api('POST', `/api/lists/${list.id}/todos`, { title: 'Water the plants' });
    const page = await s.open(`/lists/${list.id}`, 'slow');
    await waitForRows(page, [{ title: 'Water the plants', done: false }]);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 300, downloadThroughput: -1, uploadThroughput: -1 });
    // Measured in the page: from the click to the row drawn as done (its `done` class comes
    // from the store, not from the checkbox's own state), and to the change confirmed by the
    // stream (the pending class gone), which takes the round trips: proof of the latency.
    const [shown, confirmed, flickered] = await page.evaluate(
      (id) =>
        new Promise((resolve) => {
          const li = document.querySelector(`li.todo[data-todo-id="${id}"]`);
          const start = performance.now();
          let shown = null;
          let flickered = false;
          const observer = new MutationObserver(() => {
            const done = li.classList.contains('done');
            if (shown === null && done) shown = performance.now() - start;
            if (shown !== null && !done) flickered = true; // back to the old state: a flicker
            if (shown === null || li.classList.contains('pending')) return;
            observer.disconnect();
            resolve([shown, performance.now() - start, flickered]);
          });
          observer.observe(li, { attributes: true, attributeFilter: ['class'] });
          li.querySelector('input[type=checkbox]').click();
        }),
      todo.id,
    );
    t.diagnostic(`the toggle showed ${shown.toFixed(1)} ms after the click, confirmed after ${confirmed.toFixed(0)} ms`);
    assert.ok(shown < 50, `the toggle showed after ${shown} ms`);
    assert.ok(confirmed >= 300, `confirmed after ${confirmed} ms: the latency was applied`);
    assert.equal(flickered, false, 'never drawn as not done again while confirming');
    assert.equal((await server.api('GET', `/api/lists/${list.id}/todos`)).todos[0].done, true);
  } finally {
    await s.end(t);
  }
  s.assertClean();
});

test('offline, changes show at once, marked pending, counted on the badge, and are sent back online', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const list = await createList('Train ride');
    const page = await s.open(`/lists/${list.id}`, 'offline');
    const other = await s.open(`/lists/${list.id}`, 'other');
    // The browser reports the requests it could not send while offline.
    const offline = s.tolerate(/net::ERR_INTERNET_DISCONNECTED/);
    await page.context().setOffline(true);
    await waitForBadge(page, /^Offline$/);
    const input = page.getByLabel('New todo in Train ride');
    await input.fill('Read a book');
    await input.press('Enter');
    await input.fill('Call home');
    await input.press('Enter');
    await waitForRows(page, [
      { title: 'Read a book', done: false },
      { title: 'Call home', done: false },
    ]);
    await page.getByRole('checkbox', { name: 'Read a book' }).click();
    await waitForRows(page, [
      { title: 'Read a book', done: true },
      { title: 'Call home', done: false },
    ]);
    await waitForBadge(page, /^Offline · 3 changes waiting$/);
    await row(page, 'Call home').getByText('saving…').waitFor();
    await s.screenshot(page, 'waiting');
    assert.deepEqual((await server.api('GET', `/api/lists/${list.id}/todos`)).todos, [], 'nothing sent yet');

    await page.context().setOffline(false);
    await waitForBadge(page, /^Live$/, 5000);
    offline();
    const want = [
      { title: 'Read a book', done: true },
      { title: 'Call home', done: false },
    ];
    await waitForRows(other, want, 5000);
    await page.locator('.pending-mark').first().waitFor({ state: 'detached', timeout: 5000 });
    const todos = (await server.api('GET', `/api/lists/${list.id}/todos`)).todos;
    assert.deepEqual(
      todos.map(({ title, done }) => ({ title, done })),
      want,
      'the server has each change once',
    );
  } finally {
    await s.end(t);
  }
  s.assertClean();
});
