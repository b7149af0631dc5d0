// The demo with access control (the server's development login, as `make demo` runs it): two
// people in two browsers sign in, share a list, and see sharing, refusals, unsharing and
// deletion happen live in each other's window.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LIVE_MS, Session, launchBrowser, rows, startServer, waitForBadge, waitForRows } from './harness.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer({ TIDINGS_AUTH_DEV_LOGIN: '1' }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

/** Open the demo in a browser of its own and sign in as `user`: resolves on their Inbox, live. */
async function signIn(s, user) {
  const page = await signInScreen(s, user);
  await page.getByLabel('Sign in as').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForBadge(page, /^Live$/);
  await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
  return page;
}

/** The demo in a browser of its own, on its sign-in screen. */
async function signInScreen(s, label) {
  // How the demo learns that the server wants a sign-in: a 401, which the browser logs.
  const probe = s.tolerate(/status of 401/);
  const page = await s.open('/', label, { live: false });
  await page.getByLabel('Sign in as').waitFor();
  probe();
  return page;
}

/** The sidebar's link to the list titled `title`. */
const sidebarLink = (page, title) => page.getByRole('navigation').getByRole('link', { name: new RegExp(`^${title}`) });

test('two users share a list: it appears, changes role, refuses a viewer, disappears and is deleted live', { timeout: 90_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const alice = await signIn(s, 'alice');
    const bob = await signIn(s, 'bob');
    assert.match(await alice.locator('.who').textContent(), /Signed in as alice/);
    assert.match(await bob.locator('.who').textContent(), /Signed in as bob/);

    // Alice makes a list; bob cannot see it.
    await alice.getByLabel('New list').fill('Groceries');
    await alice.getByRole('button', { name: 'Add list' }).click();
    await alice.getByRole('heading', { level: 1, name: 'Groceries' }).waitFor();
    await waitForBadge(alice, /^Live$/);
    await alice.getByLabel('New todo in Groceries').fill('Milk');
    await alice.getByLabel('New todo in Groceries').press('Enter');
    await waitForRows(alice, [{ title: 'Milk', done: false }]);
    assert.equal(await sidebarLink(bob, 'Groceries').count(), 0);

    // Shared with bob as a viewer: it shows up in his sidebar, live, marked as such.
    await alice.getByRole('button', { name: 'Share', exact: true }).click();
    const dialog = alice.getByRole('dialog', { name: 'Share “Groceries”' });
    await dialog.getByLabel('User to share with').fill('bob');
    await dialog.getByLabel('Role', { exact: true }).selectOption('viewer');
    await dialog.getByRole('button', { name: 'Share', exact: true }).click();
    await dialog.getByLabel('Role of bob').waitFor();
    assert.deepEqual(await dialog.getByRole('list', { name: 'Members' }).getByRole('listitem').allInnerTexts().then((l) => l.map((x) => x.split(/\s+/)[0])), ['alice', 'bob']);
    await sidebarLink(bob, 'Groceries').waitFor({ timeout: LIVE_MS });
    assert.match(await sidebarLink(bob, 'Groceries').textContent(), /viewer/);

    // Bob opens it and reads it; his change is refused with the server's reason (the
    // browser logs the refused requests).
    const refusals = s.tolerate(/status of 403/);
    await sidebarLink(bob, 'Groceries').click();
    await waitForRows(bob, [{ title: 'Milk', done: false }]);
    await bob.getByText('view only').waitFor();
    await bob.getByLabel('New todo in Groceries').fill('Eggs');
    await bob.getByRole('button', { name: 'Add', exact: true }).click();
    const notice = bob.getByRole('alert');
    await notice.waitFor();
    assert.equal(await notice.textContent().then((x) => x.trim()), 'Could not add the todo: a viewer of `groceries` may not change it');
    await bob.getByRole('checkbox', { name: 'Milk' }).click();
    await notice.getByText('Could not update “Milk”: a viewer of `groceries` may not change it').waitFor();
    await waitForRows(bob, [{ title: 'Milk', done: false }]);
    await waitForRows(alice, [{ title: 'Milk', done: false }]);
    refusals();
    await s.screenshot(alice, 'sharing');
    await s.screenshot(bob, 'viewer');

    // Made an editor: his sidebar says so at once, and his change goes through.
    await dialog.getByLabel('Role of bob').selectOption('editor');
    await bob.getByText('view only').waitFor({ state: 'detached', timeout: LIVE_MS });
    assert.match(await sidebarLink(bob, 'Groceries').textContent(), /editor/);
    await bob.getByLabel('New todo in Groceries').fill('Eggs');
    await bob.getByLabel('New todo in Groceries').press('Enter');
    await waitForRows(alice, [
      { title: 'Milk', done: false },
      { title: 'Eggs', done: false },
    ]);

    // Unshared: gone from his sidebar, and the list he was looking at says so and hands
    // over to his Inbox.
    await dialog.getByRole('button', { name: 'Remove bob' }).click();
    await dialog.getByLabel('Role of bob').waitFor({ state: 'detached' });
    await sidebarLink(bob, 'Groceries').waitFor({ state: 'detached', timeout: LIVE_MS });
    await bob.getByRole('alert').getByText('“Groceries”: this list is no longer shared with you.').waitFor({ timeout: LIVE_MS });
    await bob.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    assert.deepEqual(await rows(bob), []);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'hidden' });

    // Shared again (live in his Inbox's sidebar), then deleted by alice while bob looks at
    // it: gone for both.
    await alice.getByRole('button', { name: 'Share', exact: true }).click();
    await dialog.getByLabel('User to share with').fill('bob');
    await dialog.getByRole('button', { name: 'Share', exact: true }).click();
    await dialog.getByLabel('Role of bob').waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await sidebarLink(bob, 'Groceries').waitFor({ timeout: LIVE_MS });
    await sidebarLink(bob, 'Groceries').click();
    await waitForRows(bob, [
      { title: 'Milk', done: false },
      { title: 'Eggs', done: false },
    ]);
    await alice.getByRole('button', { name: 'Delete list' }).click();
    await alice.getByRole('button', { name: 'Delete', exact: true }).click();
    await alice.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    assert.equal(await sidebarLink(alice, 'Groceries').count(), 0);
    assert.equal(await alice.getByRole('alert').count(), 0, 'no notice for the one who deleted it');
    await sidebarLink(bob, 'Groceries').waitFor({ state: 'detached', timeout: LIVE_MS });
    await bob.getByRole('alert').getByText('“Groceries”: this list was deleted.').waitFor({ timeout: LIVE_MS });
    await bob.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();

    // Signing out comes back to the sign-in screen.
    await bob.getByRole('button', { name: 'Sign out' }).click();
    await bob.getByLabel('Sign in as').waitFor();
  } finally {
    await s.end(t);
  }
  s.assertClean();
});

test('a name the server refuses is explained on the sign-in screen, and a list of another user does not exist', { timeout: 60_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const page = await signInScreen(s, 'carol');
    // The browser logs the refused request itself.
    const stop = s.tolerate(/status of 422/);
    await page.getByLabel('Sign in as').fill('x'.repeat(300));
    await page.getByRole('button', { name: 'Sign in' }).click();
    const notice = page.getByRole('alert');
    await notice.waitFor();
    assert.match(await notice.textContent(), /user/i);
    stop();
    await page.getByLabel('Sign in as').fill('carol');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await waitForBadge(page, /^Live$/);
    // Another user's list is not there for carol (the server answers 404, never 403).
    const unlisted = s.tolerate(/status of 404/);
    await page.goto('/lists/inbox-alice');
    await page.getByText('There is no list called “inbox-alice”.').waitFor();
    unlisted();
  } finally {
    await s.end(t);
  }
  s.assertClean();
});
