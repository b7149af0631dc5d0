// What the end-to-end tests share: the browser, a server serving the built demo, pages that
// record every console problem, screenshots, and waits on conditions (never on time).
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { TidingsServer } from '../support/tidings.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The built demo the server serves at `/`. */
export const staticDir = resolve(process.env.TIDINGS_STATIC_DIR ?? join(root, 'demo/build'));
export const artifacts = join(root, 'tests/e2e/artifacts');

/** How fast a change must reach another tab. */
export const LIVE_MS = 1000;

/** Debian's Chromium, as RECIPE.md says (Playwright's own browser downloads fail here). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
      '--disable-quic',
    ],
  });
}

/** A server on a free port with a temporary database, serving the demo; `env` adds settings. */
export async function startServer(env = {}) {
  if (!existsSync(join(staticDir, 'index.html'))) {
    throw new Error(`no demo build in ${staticDir}: run scripts/build-demo.sh first`);
  }
  return new TidingsServer({ env: { TIDINGS_STATIC_DIR: staticDir, ...env } }).start();
}

/**
 * The pages of one test. Each page gets its own browser context (a separate "user": no shared
 * cache or storage) and a record of console errors, warnings and uncaught errors.
 */
export class Session {
  constructor(browser, server, name) {
    this.browser = browser;
    this.server = server;
    this.name = name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
    this.pages = [];
    this.problems = [];
    this.tolerated = [];
    this.toleratedSeen = [];
    this.network = new Map();
  }

  /**
   * Open the demo at `path` in a new context. Resolves once the badge says Live, unless
   * `live: false`. `network: true` records the page's event streams and every Server-Sent
   * Event it receives, from the first one (see `eventsOf`, `streamsOf`).
   */
  async open(path, label, { live = true, network = false, viewport = { width: 1100, height: 720 } } = {}) {
    const context = await this.browser.newContext({ viewport, baseURL: this.server.url });
    const page = await context.newPage();
    this.pages.push({ label, page, context });
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      const text = msg.text();
      if (this.tolerated.some((pattern) => pattern.test(text))) {
        this.toleratedSeen.push(`[${label}] ${text}`);
      } else {
        this.problems.push(`[${label}] console.${msg.type()}: ${text} (at ${msg.location().url})`);
      }
    });
    // Uncaught exceptions and unhandled rejections: application errors, never tolerated.
    page.on('pageerror', (error) => this.problems.push(`[${label}] uncaught: ${error.stack ?? error}`));
    await page.addInitScript(() => {
      window.addEventListener('unhandledrejection', (event) =>
        console.error(`unhandled rejection: ${event.reason?.stack ?? event.reason}`),
      );
    });
    if (network) this.network.set(label, await recordNetwork(page));
    await page.goto(path);
    if (live) await waitForBadge(page, /^Live$/);
    return page;
  }

  /** The Server-Sent Events the page opened as `label` with `network: true` received. */
  eventsOf(label) {
    return this.network.get(label).events;
  }

  /** The `/api/events` requests of the page opened as `label` with `network: true`:
   * `{url, ended, canceled}`, `ended` a `performance.now()` time or null while open. */
  streamsOf(label) {
    return this.network.get(label).streams();
  }

  /**
   * Accept console lines matching `patterns` until `stop()` is called. Only for lines the
   * browser itself prints about a failed request; the caller says why in a comment.
   */
  tolerate(...patterns) {
    this.tolerated.push(...patterns);
    return () => {
      this.tolerated = this.tolerated.filter((p) => !patterns.includes(p));
    };
  }

  /** Save a screenshot of `page` now, as `<test>-<suffix>.png` in tests/e2e/artifacts. */
  async screenshot(page, suffix) {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, `${this.name}-${suffix}.png`), fullPage: true });
  }

  /** Screenshot every page into tests/e2e/artifacts, close them, and report what was seen. */
  async end(t) {
    mkdirSync(artifacts, { recursive: true });
    for (const { label, page, context } of this.pages) {
      await page
        .screenshot({ path: join(artifacts, `${this.name}-${label}.png`), fullPage: true })
        .catch((e) => this.problems.push(`[${label}] screenshot failed: ${e.message}`));
      await context.close();
    }
    this.pages = [];
    if (this.toleratedSeen.length) {
      t.diagnostic(`tolerated ${this.toleratedSeen.length} browser network line(s), e.g. ${this.toleratedSeen[0]}`);
    }
    for (const problem of this.problems) t.diagnostic(problem);
  }

  /** Fail if any page logged an error or warning, or threw. */
  assertClean() {
    if (this.problems.length) {
      throw new Error(`console problems:\n  ${this.problems.join('\n  ')}`);
    }
  }
}

/** The rows a page shows, in order: what a user sees. */
export function rows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('li.todo')].map((li) => ({
      id: li.dataset.todoId,
      title: li.querySelector('.title')?.textContent ?? null,
      done: li.querySelector('input[type=checkbox]')?.checked ?? null,
    })),
  );
}

/**
 * Wait until the page shows exactly `expected` (titles and done flags, in order); resolves
 * with how long that took. The error says what the page showed instead.
 */
export async function waitForRows(page, expected, timeout = LIVE_MS) {
  const start = performance.now();
  try {
    await page.waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll('li.todo')].map((li) => ({
          title: li.querySelector('.title')?.textContent ?? null,
          done: li.querySelector('input[type=checkbox]')?.checked ?? null,
        }));
        return JSON.stringify(got) === JSON.stringify(want);
      },
      expected,
      { timeout, polling: 'raf' },
    );
    return Math.round(performance.now() - start);
  } catch (error) {
    const got = await rows(page).catch(() => 'unknown');
    throw new Error(
      `within ${timeout} ms, expected rows ${JSON.stringify(expected)}\n  but the page shows ${JSON.stringify(got)}`,
      { cause: error },
    );
  }
}

/** Wait until the connection badge's text matches `pattern`. */
export async function waitForBadge(page, pattern, timeout = 10_000) {
  const badge = page.getByRole('status');
  try {
    await page.waitForFunction(
      ([source, flags]) =>
        new RegExp(source, flags).test(document.querySelector('[role=status]')?.textContent?.trim() ?? ''),
      [pattern.source, pattern.flags],
      { timeout },
    );
  } catch (error) {
    const text = await badge.textContent().catch(() => null);
    throw new Error(`badge never matched ${pattern} within ${timeout} ms (it says ${JSON.stringify(text?.trim())})`, {
      cause: error,
    });
  }
}

/**
 * Watch the page's event streams as the browser's devtools see them: every Server-Sent Event
 * received (`events`), and every `/api/events` request with when it ended (`streams`).
 */
async function recordNetwork(page) {
  const events = [];
  const streams = new Map();
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.eventSourceMessageReceived', ({ eventName, eventId, data }) => {
    let parsed = null;
    try {
      parsed = data ? JSON.parse(data) : null;
    } catch {
      parsed = data;
    }
    events.push({ name: eventName, id: eventId, data: parsed });
  });
  cdp.on('Network.requestWillBeSent', ({ requestId, request }) => {
    if (new URL(request.url).pathname === '/api/events') {
      streams.set(requestId, { url: request.url, ended: null, canceled: false });
    }
  });
  const end = ({ requestId, canceled = false }) => {
    const stream = streams.get(requestId);
    if (stream && stream.ended === null) Object.assign(stream, { ended: performance.now(), canceled });
  };
  cdp.on('Network.loadingFailed', end);
  cdp.on('Network.loadingFinished', end);
  await cdp.send('Network.enable');
  return { events, streams: () => [...streams.values()] };
}

/** Poll `check` (in Node) until it returns true; fail with `what` after `timeout` ms. */
export async function until(check, what, timeout = 5000) {
  const deadline = performance.now() + timeout;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The todo row showing `title`. */
export function row(page, title) {
  return page.locator('li.todo', { has: page.locator('.title', { hasText: new RegExp(`^${escape(title)}$`) }) });
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
