// The demo in real browsers against a real server: changes reach every tab of a list within a
// second, and nothing else; refused requests and unknown lists show what went wrong.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  LIVE_MS,
  Session,
  launchBrowser,
  row,
  rows,
  startServer,
  until,
  waitForBadge,
  waitForRows,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

/** A fresh list for one test, so tests do not see each other's todos. */
function createList(title) {
  return server.api('POST', '/api/lists', { title });
}

async function todosOf(list) {
  const { todos } = await server.api('GET', `/api/lists/${list.id}/todos`);
  return todos;
}

test('two tabs on one list see every change within a second', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  const took = [];
  const live = async (what, page, expected) => took.push(`${what} ${await waitForRows(page, expected)} ms`);
  try {
    const home = await createList('Home');
    const work = await createList('Work');
    const a = await s.open(`/lists/${home.id}`, 'a');
    const b = await s.open(`/lists/${home.id}`, 'b');
    // A third tab on the list todos move to: a move must reach it too.
    const w = await s.open(`/lists/${work.id}`, 'work');
    await Promise.all([a, b, w].map((p) => p.getByText('Nothing to do in').waitFor()));

    // Add, with Enter.
    const input = a.getByLabel('New todo in Home');
    await input.fill('Buy oat milk');
    await input.press('Enter');
    await live('add', b, [{ title: 'Buy oat milk', done: false }]);
    await waitForRows(a, [{ title: 'Buy oat milk', done: false }]);
    assert.equal(await input.inputValue(), '', 'the input is cleared for the next todo');

    // Add, with the button, from the other tab.
    await b.getByLabel('New todo in Home').fill('Water the plants');
    await b.getByRole('button', { name: 'Add', exact: true }).click();
    await live('add (button)', a, [
      { title: 'Buy oat milk', done: false },
      { title: 'Water the plants', done: false },
    ]);

    // Toggle.
    await b.getByRole('checkbox', { name: 'Buy oat milk' }).check();
    await live('toggle', a, [
      { title: 'Buy oat milk', done: true },
      { title: 'Water the plants', done: false },
    ]);
    await waitForRows(b, [
      { title: 'Buy oat milk', done: true },
      { title: 'Water the plants', done: false },
    ]);

    // Rename: double-click, type, Enter.
    await row(a, 'Water the plants').locator('.title').dblclick();
    const editor = a.getByLabel('New title for “Water the plants”');
    assert.ok(await editor.evaluate((el) => el === document.activeElement), 'the editor has focus');
    await editor.fill('Water the ferns');
    await editor.press('Enter');
    const renamed = [
      { title: 'Buy oat milk', done: true },
      { title: 'Water the ferns', done: false },
    ];
    await live('rename', b, renamed);
    await waitForRows(a, renamed);

    // Escape cancels a rename: nothing is sent, the title stays.
    const patches = [];
    b.on('request', (request) => request.method() === 'PATCH' && patches.push(request.url()));
    await row(b, 'Water the ferns').locator('.title').dblclick();
    await b.getByLabel('New title for “Water the ferns”').fill('Something else entirely');
    await b.getByLabel('New title for “Water the ferns”').press('Escape');
    await waitForRows(b, renamed);
    assert.deepEqual(patches, [], 'Escape sends nothing');
    // Focus goes back to the row's Rename button, not to the page.
    assert.equal(
      await b.evaluate(() => document.activeElement?.getAttribute('aria-label')),
      'Rename “Water the ferns”',
    );

    // Rename from the keyboard path (the Rename button) works too.
    await b.getByRole('button', { name: 'Rename “Water the ferns”' }).click();
    await b.getByLabel('New title for “Water the ferns”').fill('Water the ferns and the basil');
    await b.getByLabel('New title for “Water the ferns”').press('Enter');
    await live('rename (button)', a, [
      { title: 'Buy oat milk', done: true },
      { title: 'Water the ferns and the basil', done: false },
    ]);

    // Move to Work: it leaves both Home tabs and arrives in the Work tab.
    await a.getByLabel('Move “Buy oat milk” to another list').selectOption({ label: 'Work' });
    await live('move (target tab)', w, [{ title: 'Buy oat milk', done: true }]);
    await live('move (other tab)', b, [{ title: 'Water the ferns and the basil', done: false }]);
    await waitForRows(a, [{ title: 'Water the ferns and the basil', done: false }]);
    assert.deepEqual(
      (await todosOf(work)).map((todo) => todo.title),
      ['Buy oat milk'],
      'the server has it in Work',
    );

    // Delete.
    await b.getByRole('button', { name: 'Delete “Water the ferns and the basil”' }).click();
    await live('delete', a, []);
    await waitForRows(b, []);
    await a.getByText('Nothing to do in Home.').waitFor({ timeout: LIVE_MS });
    assert.deepEqual(await todosOf(home), []);
    t.diagnostic(`reached the other tab in: ${took.join(', ')}`);
  } finally {
    await s.end(t);
  }
  s.assertClean();
});

test('a tab on another list receives nothing from the first list', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const errands = await createList('Errands');
    const garden = await createList('Garden');
    const a = await s.open(`/lists/${errands.id}`, 'errands');
    const g = await s.open(`/lists/${garden.id}`, 'garden', { network: true });

    // Every kind of change in Errands.
    const input = a.getByLabel('New todo in Errands');
    for (const title of ['Post the parcel', 'Pick up dry cleaning', 'Return library books']) {
      await input.fill(title);
      await input.press('Enter');
      await row(a, title).waitFor({ timeout: LIVE_MS });
    }
    await a.getByRole('checkbox', { name: 'Post the parcel' }).check();
    await row(a, 'Pick up dry cleaning').locator('.title').dblclick();
    await a.getByLabel('New title for “Pick up dry cleaning”').fill('Pick up the suit');
    await a.getByLabel('New title for “Pick up dry cleaning”').press('Enter');
    await a.getByRole('button', { name: 'Delete “Return library books”' }).click();
    await waitForRows(a, [
      { title: 'Post the parcel', done: true },
      { title: 'Pick up the suit', done: false },
    ]);

    // A change in Garden after all of them: the Garden stream delivers in commit order, so
    // once this arrives, anything from Errands would have arrived before it.
    await server.api('POST', `/api/lists/${garden.id}/todos`, { title: 'Plant the tulip bulbs' });
    await waitForRows(g, [{ title: 'Plant the tulip bulbs', done: false }]);

    const changes = s.eventsOf('garden').filter((event) => event.name.startsWith('todo_'));
    assert.deepEqual(
      changes.map((event) => [event.name, event.data.todo?.list_id ?? event.data.list_id]),
      [['todo_created', garden.id]],
      'the Garden tab received exactly one change, its own',
    );
    assert.ok(s.eventsOf('garden').some((event) => event.name === 'connected'));
  } finally {
    await s.end(t);
  }
  s.assertClean();
});

test('the sidebar switches lists, follows only the one shown, and lists appear live', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const books = await createList('Books');
    const films = await createList('Films');
    await server.api('POST', `/api/lists/${books.id}/todos`, { title: 'Read Piranesi' });
    await server.api('POST', `/api/lists/${films.id}/todos`, { title: 'Watch Alien' });
    const a = await s.open(`/lists/${books.id}`, 'a', { network: true });
    const b = await s.open(`/lists/${books.id}`, 'b');
    await waitForRows(a, [{ title: 'Read Piranesi', done: false }]);

    // Switch with the sidebar (a client-side navigation, no reload).
    const switched = performance.now();
    await a.getByRole('navigation', { name: 'Lists' }).getByRole('link', { name: 'Films' }).click();
    await waitForRows(a, [{ title: 'Watch Alien', done: false }]);
    assert.equal(new URL(a.url()).pathname, `/lists/${films.id}`);
    assert.equal(await a.getByRole('heading', { level: 1 }).textContent(), 'Films');
    assert.equal(await a.title(), 'Films · tidings');
    await waitForBadge(a, /^Live$/);
    // The Books feed was closed, not merely left without subscribers (the library would
    // then wait a second before closing it): its stream ends at once. Films' stays open.
    const stream = (list) => s.streamsOf('a').filter((st) => new URL(st.url).searchParams.get('list') === list.id);
    await until(() => stream(books).every((st) => st.ended !== null), 'the Books stream to end', LIVE_MS);
    const closedAfter = Math.max(...stream(books).map((st) => st.ended - switched));
    assert.ok(closedAfter < 800, `the Books stream ended ${Math.round(closedAfter)} ms after the switch`);
    t.diagnostic(`the Books stream ended ${Math.round(closedAfter)} ms after the click`);
    assert.deepEqual(stream(films).map((st) => st.ended), [null], 'one open Films stream');

    // Changes to Books no longer reach this tab; changes to Films do (and arrive after).
    await server.api('POST', `/api/lists/${books.id}/todos`, { title: 'Read Middlemarch' });
    await server.api('POST', `/api/lists/${films.id}/todos`, { title: 'Watch Paris, Texas' });
    await waitForRows(a, [
      { title: 'Watch Alien', done: false },
      { title: 'Watch Paris, Texas', done: false },
    ]);
    await waitForRows(b, [
      { title: 'Read Piranesi', done: false },
      { title: 'Read Middlemarch', done: false },
    ]);

    // A list made in one tab appears in the other tab's sidebar at once.
    const newList = a.getByLabel('New list');
    await newList.fill('Podcasts');
    await newList.press('Enter');
    await a.getByRole('heading', { level: 1, name: 'Podcasts' }).waitFor({ timeout: LIVE_MS });
    assert.equal(new URL(a.url()).pathname, '/lists/podcasts');
    await a.getByText('Nothing to do in Podcasts.').waitFor({ timeout: LIVE_MS });
    await b.getByRole('link', { name: 'Podcasts' }).waitFor({ timeout: LIVE_MS });

    // Back goes back to Films, live again.
    await a.goBack();
    await waitForRows(a, [
      { title: 'Watch Alien', done: false },
      { title: 'Watch Paris, Texas', done: false },
    ]);
    await waitForBadge(a, /^Live$/);
  } finally {
    await s.end(t);
  }
  s.assertClean();
});

test('a refused change shows the server’s message; an unknown list says so', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const notes = await createList('Notes');
    const a = await s.open(`/lists/${notes.id}`, 'refused');

    // The server refuses a 501-character title with 422. Chromium itself logs every non-2xx
    // response ("Failed to load resource: … 422"): that line is expected here, and only here.
    const stop = s.tolerate(/^Failed to load resource: the server responded with a status of 422 /);
    const long = 'x'.repeat(501);
    const input = a.getByLabel('New todo in Notes');
    await input.fill(long);
    await input.press('Enter');
    const alert = a.getByRole('alert');
    await alert.waitFor({ timeout: LIVE_MS });
    assert.equal(
      (await alert.textContent()).trim(),
      'Could not add the todo: title must be at most 500 characters, got 501',
    );
    assert.equal(await input.inputValue(), long, 'the refused text is given back to fix');
    await s.screenshot(a, 'alert');
    stop();
    assert.deepEqual(await rows(a), []);

    // The next success clears the message; Dismiss does too.
    await input.fill('Short enough');
    await input.press('Enter');
    await alert.waitFor({ state: 'detached', timeout: LIVE_MS });
    await waitForRows(a, [{ title: 'Short enough', done: false }]);

    // A list that does not exist: its snapshot answers 404, which the page explains (Chromium
    // logs each 404 response; the library keeps retrying it, see the report).
    s.tolerate(/^Failed to load resource: the server responded with a status of 404 /);
    const missing = await s.open('/lists/no-such-list', 'missing', { live: false });
    await missing.getByText('There is no list called “no-such-list”.').waitFor({ timeout: 5000 });
    await s.screenshot(missing, 'no-such-list');
    await missing.getByRole('link', { name: 'Go to the Inbox' }).click();
    await waitForBadge(missing, /^Live$/);
    assert.equal(new URL(missing.url()).pathname, '/lists/inbox');
    assert.equal(await missing.getByRole('heading', { level: 1 }).textContent(), 'Inbox');
  } finally {
    await s.end(t);
  }
  s.assertClean();
});
