// `npm run screenshot`: docs/demo.png, the picture at the top of the README. A fresh server
// with a temporary database, a few realistic lists and todos, the demo at 1280x800.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, startServer, waitForBadge, waitForRows } from './harness.mjs';

const out = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/demo.png');

const content = {
  Work: [
    ['Review the reconnection PR', true],
    ['Write the 0.1 release notes', false],
    ['Book a room for the retro', false],
    ['Reply to Dana about the load test', true],
    ['Draft the SSE talk outline', false],
  ],
  Groceries: [
    ['Oat milk', false],
    ['Sourdough loaf', false],
    ['Lemons', true],
    ['Coffee beans', false],
  ],
};

const server = await startServer();
const browser = await launchBrowser();
try {
  await server.api('POST', '/api/lists/inbox/todos', { title: 'Renew the passport' });
  const lists = {};
  for (const [title, todos] of Object.entries(content)) {
    const list = await server.api('POST', '/api/lists', { title });
    lists[title] = list;
    for (const [todoTitle, done] of todos) {
      const todo = await server.api('POST', `/api/lists/${list.id}/todos`, { title: todoTitle });
      if (done) await server.api('PATCH', `/api/todos/${todo.id}`, { done: true });
    }
  }

  // Light theme, no motion: a still, deterministic picture.
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
    reducedMotion: 'reduce',
    baseURL: server.url,
  });
  const page = await context.newPage();
  await page.goto(`/lists/${lists.Work.id}`);
  await waitForBadge(page, /^Live$/);
  await waitForRows(page, content.Work.map(([title, done]) => ({ title, done })), 5000);
  await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  // Point at one row so its tools (move, rename, delete) show.
  await page.locator('li.todo', { hasText: 'Write the 0.1 release notes' }).hover();
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  await context.close();
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.dispose();
}
