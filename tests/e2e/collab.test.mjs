// Collaboration in the demo (issue 20), with access control: two people in two browsers on
// one shared list. Each sees the other's initials (presence); one drags a todo to another
// place and the other sees it move; the other moves one with the keyboard; a rename and
// "clear completed" show in both; the one it was shared with leaves it, and it disappears
// from their sidebar, and their initials from the other's page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LIVE_MS, Session, launchBrowser, row, startServer, waitForBadge, waitForRows } from './harness.mjs';

let server;
let browser;

before(async () => {
  // A probe every second: a page that left a list is noticed soon (presence).
  [server, browser] = await Promise.all([startServer({ TIDINGS_AUTH_DEV_LOGIN: '1', TIDINGS_PROBE_SECS: '1' }), launchBrowser()]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

/** Open the demo in a browser of its own and sign in as `user`: resolves on their Inbox, live. */
async function signIn(s, user) {
  // How the demo learns that the server wants a sign-in: a 401, which the browser logs.
  const probe = s.tolerate(/status of 401/);
  const page = await s.open('/', user, { live: false });
  await page.getByLabel('Sign in as').fill(user);
  probe();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForBadge(page, /^Live$/);
  await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
  return page;
}

/** The sidebar's link to the list titled `title`. */
const sidebarLink = (page, title) => page.getByRole('navigation').getByRole('link', { name: new RegExp(`^${title}`) });

/** The initials of `user` among those the page shows viewing the list with its user. */
const viewing = (page, user) => page.getByTestId('presence').locator(`[title="${user}"]`);
/** How long presence may take: the server tells a change at most once a second per list. */
const PRESENCE_MS = 5000;

/** Rows of the given titles, none done but those in `done`. */
const todos = (titles, done = []) => titles.map((title) => ({ title, done: done.includes(title) }));

test('two users on one list: a drag, a keyboard move, a rename and "clear completed" show in both; leaving removes it', { timeout: 90_000 }, async (t) => {
  const s = new Session(browser, server, t.name);
  try {
    const alice = await signIn(s, 'alice');
    const bob = await signIn(s, 'bob');

    // Alice's list, shared with bob as an editor; both look at it.
    await alice.getByLabel('New list').fill('Chores');
    await alice.getByRole('button', { name: 'Add list' }).click();
    await alice.getByRole('heading', { level: 1, name: 'Chores' }).waitFor();
    await waitForBadge(alice, /^Live$/);
    for (const title of ['Sweep', 'Dust', 'Mop']) {
      await alice.getByLabel('New todo in Chores').fill(title);
      await alice.getByLabel('New todo in Chores').press('Enter');
    }
    await waitForRows(alice, todos(['Sweep', 'Dust', 'Mop']));
    await alice.getByRole('button', { name: 'Share', exact: true }).click();
    const dialog = alice.getByRole('dialog', { name: 'Share “Chores”' });
    await dialog.getByLabel('User to share with').fill('bob');
    await dialog.getByLabel('Role', { exact: true }).selectOption('editor');
    await dialog.getByRole('button', { name: 'Share', exact: true }).click();
    await dialog.getByLabel('Role of bob').waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await sidebarLink(bob, 'Chores').waitFor({ timeout: LIVE_MS });
    await sidebarLink(bob, 'Chores').click();
    await waitForRows(bob, todos(['Sweep', 'Dust', 'Mop']));

    // Each sees who else has the list open: the other's initials, named in the title; not
    // their own.
    await viewing(alice, 'bob').waitFor({ timeout: PRESENCE_MS });
    await viewing(bob, 'alice').waitFor({ timeout: PRESENCE_MS });
    assert.deepEqual([await viewing(alice, 'bob').textContent(), await viewing(bob, 'alice').textContent()], ['B', 'A']);
    assert.deepEqual([await viewing(alice, 'alice').count(), await viewing(bob, 'bob').count()], [0, 0], 'not oneself');
    await s.screenshot(alice, 'presence');
    assert.equal(await alice.getByRole('button', { name: 'Leave list' }).count(), 0, 'an owner cannot leave');

    // Alice drags "Mop" onto "Sweep" (a real drag: the mouse down, moved, released): while
    // over it, a line marks where it would go; dropped, it takes its place, first, at once for
    // her and within a moment for bob.
    await row(alice, 'Mop').hover();
    await alice.mouse.down();
    // (Chromium enters the target on the first move of a drag and sends `dragover` on the
    // moves after it.)
    const box = await row(alice, 'Sweep').boundingBox();
    await alice.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 2 });
    await alice.mouse.move(box.x + box.width / 2 + 4, box.y + box.height / 2, { steps: 2 });
    await row(alice, 'Sweep').and(alice.locator('[data-drop=before]')).waitFor({ timeout: 1000 });
    await s.screenshot(alice, 'dragging');
    await alice.mouse.up();
    await waitForRows(alice, todos(['Mop', 'Sweep', 'Dust']), 200);
    assert.equal(await alice.locator('[data-drop]').count(), 0, 'the mark goes with the drop');
    await waitForRows(bob, todos(['Mop', 'Sweep', 'Dust']));

    // Bob moves "Sweep" down with the keyboard.
    await bob.getByRole('button', { name: 'Move “Sweep” down' }).focus();
    await bob.keyboard.press('Enter');
    await waitForRows(bob, todos(['Mop', 'Dust', 'Sweep']), 200);
    await waitForRows(alice, todos(['Mop', 'Dust', 'Sweep']));
    assert.equal(await bob.getByRole('button', { name: 'Move “Mop” up', includeHidden: true }).isDisabled(), true, 'the first cannot go up');

    // Alice renames the list in place: bob's heading and sidebar follow.
    await alice.getByRole('button', { name: 'Rename list “Chores”' }).click();
    await alice.getByLabel('New name for “Chores”').fill('Weekend chores');
    await alice.getByLabel('New name for “Chores”').press('Enter');
    await alice.getByRole('heading', { level: 1, name: 'Weekend chores' }).waitFor({ timeout: 200 });
    await bob.getByRole('heading', { level: 1, name: 'Weekend chores' }).waitFor({ timeout: LIVE_MS });
    await sidebarLink(bob, 'Weekend chores').waitFor({ timeout: LIVE_MS });

    // Bob ticks two; alice clears the completed ones: gone for both.
    await bob.getByRole('checkbox', { name: 'Mop' }).click();
    await bob.getByRole('checkbox', { name: 'Sweep' }).click();
    await waitForRows(alice, todos(['Mop', 'Dust', 'Sweep'], ['Mop', 'Sweep']));
    await alice.getByRole('button', { name: 'Clear completed' }).click();
    await waitForRows(alice, todos(['Dust']), 200);
    await waitForRows(bob, todos(['Dust']));
    await alice.getByRole('button', { name: 'Clear completed' }).waitFor({ state: 'detached' });
    await s.screenshot(bob, 'before-leaving');

    // Bob leaves: the list is gone from his sidebar, and he is on his Inbox, with no notice.
    await bob.getByRole('button', { name: 'Leave list' }).click();
    await bob.getByRole('button', { name: 'Leave', exact: true }).click();
    await sidebarLink(bob, 'Weekend chores').waitFor({ state: 'detached', timeout: LIVE_MS });
    await bob.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor();
    assert.equal(await bob.getByRole('alert').count(), 0, 'no notice for the one who left');
    // Alice no longer sees him viewing it.
    await alice.getByTestId('presence').waitFor({ state: 'detached', timeout: PRESENCE_MS * 2 });
    // Alice's list has one member left: her.
    await alice.getByRole('button', { name: 'Share', exact: true }).click();
    const members = alice.getByRole('dialog', { name: 'Share “Weekend chores”' }).getByRole('list', { name: 'Members' }).getByRole('listitem');
    await members.first().waitFor();
    assert.deepEqual(await members.allInnerTexts().then((l) => l.map((x) => x.split(/\s+/)[0])), ['alice']);
    await waitForRows(alice, todos(['Dust']));
  } finally {
    await s.end(t);
  }
  s.assertClean();
});
