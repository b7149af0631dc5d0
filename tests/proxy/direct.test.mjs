// What tidings on Rocket 0.5.2 does on its own against the same clients (the README's "Limits
// and failure behaviour" table states it): nothing times out, so descriptors run out. If one of
// these starts failing, the server has gained a deadline and the README must say so.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TidingsServer } from '../support/tidings.mjs';
import { BODY_MS, HEADER_MS, IDLE_MS, Raw, attacks, request } from './support.mjs';

/** Twice the longest deadline the proxy tests hold nginx to. */
const WATCH_MS = 2 * Math.max(HEADER_MS, BODY_MS, IDLE_MS);

describe('tidings without a proxy', { concurrency: true }, () => {
  let server;
  before(async () => {
    server = await new TidingsServer().start();
  });
  after(() => server?.dispose());

  for (const [what, attack] of Object.entries(attacks)) {
    test(`${what}: still open ${WATCH_MS} ms later`, async () => {
      const raw = await Raw.open(server.port);
      const since = await attack.start(raw);
      await assert.rejects(raw.closedWithin(since, WATCH_MS), /still open/);
    });
  }

  test('ROCKET_KEEP_ALIVE=0 (the one related Rocket setting) closes a connection after each response', async () => {
    const noKeepAlive = await new TidingsServer({ env: { ROCKET_KEEP_ALIVE: '0' } }).start();
    try {
      const raw = await Raw.open(noKeepAlive.port);
      await raw.send('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const answered = await raw.responseReceived();
      assert.match(raw.received, /^HTTP\/1\.1 200 /);
      assert.ok((await raw.closedWithin(answered, 1000)) < 1000);
      // ... but a request that never finishes is still held: the setting is no deadline.
      const slow = await Raw.open(noKeepAlive.port);
      await attacks['a half-sent request line'].start(slow);
      await assert.rejects(slow.closedWithin(slow.openedAt, 2 * HEADER_MS), /still open/);
    } finally {
      await noKeepAlive.dispose();
    }
  });
});

test('1 100 half-sent requests exhaust a server allowed 1 024 descriptors: /health stops answering until they go', async (t) => {
  const server = await new TidingsServer({ nofile: 1024 }).start();
  const held = [];
  try {
    for (let i = 0; i < 1100; i += 100) {
      held.push(
        ...(await Promise.all(
          Array.from({ length: 100 }, async () => {
            const raw = await Raw.open(server.port);
            await attacks['a half-sent request line'].start(raw);
            return raw;
          }),
        )),
      );
    }
    await assert.rejects(request(`${server.url}/health`, { timeoutMs: 2000 }), /no response within/);
    t.diagnostic('/health: no answer within 2 s while 1 100 half-sent requests are open');
    for (const raw of held) raw.destroy();
    const started = performance.now();
    let health;
    while (!health && performance.now() - started < 5000) {
      health = await request(`${server.url}/health`, { timeoutMs: 1000 }).catch(() => null);
    }
    assert.equal(health?.status, 200, 'the server did not recover after the connections closed');
    t.diagnostic(`/health answered again ${(performance.now() - started).toFixed(0)} ms after they closed`);
  } finally {
    for (const raw of held) raw.destroy();
    await server.dispose();
  }
});
