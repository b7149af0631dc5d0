// Through the shipped nginx config, connections that never finish a request are closed at the
// configured deadline (not before it, and not much after), and never reach tidings.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BODY_MS,
  HEADER_MS,
  IDLE_MS,
  SLACK_MS,
  Raw,
  attacks,
  proxied,
} from './support.mjs';

/**
 * Assert a close `ms` after its start, within [bound, bound + slack] (less a little: our connect callback can run after nginx accepted),
 * and report the measurement.
 */
function assertClosedAt(t, ms, bound, what) {
  t.diagnostic(`${what}: closed ${ms.toFixed(0)} ms after its start (deadline ${bound} ms)`);
  assert.ok(ms >= bound - 200, `${what}: closed after ${ms.toFixed(0)} ms, before its ${bound} ms deadline`);
  assert.ok(ms <= bound + SLACK_MS, `${what}: closed after ${ms.toFixed(0)} ms, deadline ${bound} ms`);
}

describe('slow and idle clients through nginx', { concurrency: true }, () => {
  let stack;
  before(async () => {
    stack = await proxied();
  });
  after(() => stack?.dispose());

  const bounds = { header: HEADER_MS, body: BODY_MS, idle: IDLE_MS };
  const directive = { header: 'client_header_timeout', body: 'client_body_timeout', idle: 'keepalive_timeout' };
  for (const [what, attack] of Object.entries(attacks)) {
    test(`${what}: closed at ${directive[attack.deadline]}`, async (t) => {
      const raw = await Raw.open(stack.port);
      const since = await attack.start(raw);
      const bound = bounds[attack.deadline];
      assertClosedAt(t, await raw.closedWithin(since, bound + SLACK_MS), bound, what);
      if (attack.deadline === 'header') assert.equal(raw.received, '', 'nginx answers nothing to a request it never got');
    });
  }

  test('headers trickled a line at a time get no more time: the deadline is for all of them', async (t) => {
    const raw = await Raw.open(stack.port);
    await raw.send('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // A new header line every 200 ms: a per-read timeout would keep this open for ever.
    const trickle = setInterval(() => raw.send('X-Slow: still here\r\n').catch(() => {}), 200);
    try {
      assertClosedAt(t, await raw.closedWithin(raw.openedAt, HEADER_MS + SLACK_MS), HEADER_MS, 'trickled headers');
    } finally {
      clearInterval(trickle);
    }
  });

  test('on a kept-alive connection, the next request gets client_header_timeout from its first byte', async (t) => {
    const raw = await Raw.open(stack.port);
    await raw.send('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await raw.responseReceived();
    const started = await raw.send('GET /hea');
    assertClosedAt(t, await raw.closedWithin(started, HEADER_MS + SLACK_MS), HEADER_MS, 'half second request');
  });
});
