// 1 100 connections that never finish a request, through the shipped nginx config with its own
// header and body deadlines: tidings (allowed 1 024 descriptors, as in issue 9) keeps answering,
// holds none of them, and nginx closes every one at its deadline.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Raw, SLACK_MS, attacks, proxied, request, shippedMs } from './support.mjs';

const CONNECTIONS = 1100;
/** The shipped deadlines, except keep-alive: 30 s shipped, 5 s here to keep the test short. */
const IDLE_MS = 5000;
const BOUND_MS = {
  header: shippedMs('client_header_timeout'),
  body: shippedMs('client_body_timeout'),
  idle: IDLE_MS,
};
/** Sources 127.0.0.2-12: a spread-out attack, each address within the per-address limit. */
const SOURCES = Array.from({ length: 11 }, (_, i) => `127.0.0.${i + 2}`);

let stack;
before(async () => {
  stack = await proxied({
    nofile: 1024,
    overrides: { client_header_timeout: undefined, client_body_timeout: undefined, keepalive_timeout: `${IDLE_MS}ms` },
  });
});
after(() => stack?.dispose());

const descriptors = (pid) => readdirSync(`/proc/${pid}/fd`).length;

test('the shipped deadlines close a half-sent request within a few seconds', () => {
  assert.ok(BOUND_MS.header <= 10_000, `client_header_timeout is ${BOUND_MS.header} ms`);
  assert.ok(BOUND_MS.body <= 10_000, `client_body_timeout is ${BOUND_MS.body} ms`);
  assert.ok(shippedMs('keepalive_timeout') <= 75_000, 'keepalive_timeout is above nginx\'s own default');
});

test(`${CONNECTIONS} slow connections: /health answers at once, tidings holds none of them, each is closed at its deadline`, async (t) => {
  const serverPid = stack.server.child.pid;
  const idle = descriptors(serverPid);
  const kinds = Object.values(attacks);

  const opened = [];
  for (let i = 0; i < CONNECTIONS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(i + 100, CONNECTIONS); j += 1) {
      const attack = kinds[j % kinds.length];
      batch.push(
        Raw.open(stack.port, { localAddress: SOURCES[j % SOURCES.length] }).then(async (raw) => ({
          raw,
          attack,
          since: await attack.start(raw),
        })),
      );
    }
    opened.push(...(await Promise.all(batch)));
  }
  const ready = performance.now();
  const firstOpened = Math.min(...opened.map((c) => c.raw.openedAt));
  t.diagnostic(`${CONNECTIONS} connections in place after ${(ready - firstOpened).toFixed(0)} ms`);

  const started = performance.now();
  const health = await request(`${stack.url}/health`, { timeoutMs: 2000 });
  const healthMs = performance.now() - started;
  t.diagnostic(`/health through nginx answered in ${healthMs.toFixed(1)} ms`);
  assert.equal(health.status, 200, health.body);
  const held = descriptors(serverPid) - idle;
  t.diagnostic(`tidings descriptors: ${idle} before, ${idle + held} with all ${CONNECTIONS} open`);
  const stillOpen = opened.filter((c) => c.raw.isOpen).length;
  assert.equal(stillOpen, CONNECTIONS, 'every slow connection was still open when /health answered');
  // What tidings may see is nginx's upstream keep-alive pool (32 idle connections per worker)
  // and a few being closed: a small fraction of the slow clients, whatever their number.
  assert.ok(held < CONNECTIONS / 10, `tidings holds ${held} more descriptors with the slow clients open`);

  const closes = await Promise.all(
    opened.map(async ({ raw, attack, since }) => ({
      attack,
      ms: await raw.closedWithin(since, BOUND_MS[attack.deadline] + SLACK_MS),
    })),
  );
  for (const [what, attack] of Object.entries(attacks)) {
    const times = closes.filter((c) => c.attack === attack).map((c) => c.ms);
    const min = Math.min(...times);
    const max = Math.max(...times);
    t.diagnostic(`${what}: ${times.length} closed ${min.toFixed(0)}-${max.toFixed(0)} ms after their start`);
    // 500 ms early at most: the connect callbacks of a batch of 100 run late in this process.
    assert.ok(min >= BOUND_MS[attack.deadline] - 500, `${what} closed before its deadline (${min} ms)`);
  }
});
