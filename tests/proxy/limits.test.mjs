// Per-address limits and nginx's own errors: one address cannot take every slot, and whatever
// nginx refuses by itself it refuses with tidings' JSON error shape.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Raw, Sse, attacks, proxied, request } from './support.mjs';

const PER_ADDR = 4;
const STREAMS_PER_ADDR = 2;
const WRITE_BURST = 3;

function assertJsonError(res, status, code) {
  assert.equal(res.status, status, res.body);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.equal(JSON.parse(res.body).error.code, code);
}

/** Retry `attempt` until it resolves truthy, for at most `ms` (a freed slot is seen by nginx soon). */
async function eventually(attempt, ms) {
  const until = performance.now() + ms;
  for (;;) {
    const value = await attempt();
    if (value || performance.now() > until) return value;
    await new Promise((r) => setImmediate(r));
  }
}

describe('per-address limits and nginx errors', { concurrency: true }, () => {
  let stack;
  before(async () => {
    stack = await proxied({
      overrides: {
        'limit_conn per_addr': String(PER_ADDR),
        'limit_conn streams_per_addr': String(STREAMS_PER_ADDR),
        // A slow refill, so that the refusal below does not depend on how fast the test runs.
        limit_req_zone: '$write_addr zone=writes:10m rate=6r/m',
        limit_req: `zone=writes burst=${WRITE_BURST} nodelay`,
      },
    });
  });
  after(() => stack?.dispose());

  test('the development login is not reachable through the proxy', async () => {
    const res = await request(`${stack.url}/api/dev/token`, { method: 'POST', body: { user: 'alice' } });
    assertJsonError(res, 404, 'not_found');
  });

  test(`an address holding ${PER_ADDR} unfinished bodies gets 429 for more; other addresses do not`, async () => {
    const attacker = '127.0.0.5';
    const slow = await Promise.all(
      Array.from({ length: PER_ADDR }, async () => {
        const raw = await Raw.open(stack.port, { localAddress: attacker });
        await attacks['a chunked body that never ends'].start(raw);
        return raw;
      }),
    );
    try {
      // nginx counts a request once its headers are in: wait until all four are counted.
      const refused = await eventually(async () => {
        const res = await request(`${stack.url}/health`, { localAddress: attacker });
        return res.status === 429 ? res : null;
      }, 2000);
      assert.ok(refused, `a ${PER_ADDR + 1}th request from one address was not refused`);
      assertJsonError(refused, 429, 'too_many_connections');
      assert.equal(refused.headers['retry-after'], '5');
      const other = await request(`${stack.url}/health`, { localAddress: '127.0.0.6' });
      assert.equal(other.status, 200, 'another address was refused too');
    } finally {
      for (const raw of slow) raw.destroy();
    }
  });

  test(`an address may hold ${STREAMS_PER_ADDR} event streams; past that 429, and a closed stream frees its slot`, async () => {
    const client = '127.0.0.7';
    const url = `${stack.url}/api/events?list=inbox`;
    const streams = [];
    try {
      for (let i = 0; i < STREAMS_PER_ADDR; i += 1) {
        const sse = await Sse.open(url, { localAddress: client });
        streams.push(sse);
        assert.equal(sse.status, 200);
        assert.equal((await sse.next(1000)).event, 'connected');
      }
      const refused = await request(url, { localAddress: client });
      assertJsonError(refused, 429, 'too_many_connections');
      const elsewhere = await Sse.open(url, { localAddress: '127.0.0.8' });
      streams.push(elsewhere);
      assert.equal(elsewhere.status, 200, 'another address was refused a stream');

      streams.shift().close();
      const again = await eventually(async () => {
        const sse = await Sse.open(url, { localAddress: client });
        if (sse.status === 200) return sse;
        sse.close();
        return null;
      }, 2000);
      assert.ok(again, 'the slot of a closed stream was not freed within 2 s');
      streams.push(again);
    } finally {
      for (const sse of streams) sse.close();
    }
  });

  test(`an address gets 1 + ${WRITE_BURST} writes at once, then 429 write_rate_limited; reads and other addresses go on`, async () => {
    const writer = '127.0.0.9';
    const write = (localAddress) =>
      request(`${stack.url}/api/lists/inbox/todos`, { method: 'POST', body: { title: 'a write' }, localAddress });
    // nginx's `burst` is what may exceed the rate: the first write, then the burst.
    for (let i = 0; i <= WRITE_BURST; i += 1) assert.equal((await write(writer)).status, 201);
    const refused = await write(writer);
    assertJsonError(refused, 429, 'write_rate_limited');
    assert.equal(refused.headers['retry-after'], '1');
    const read = await request(`${stack.url}/api/lists/inbox/todos`, { localAddress: writer });
    assert.equal(read.status, 200, 'a read was refused');
    assert.equal((await write('127.0.0.10')).status, 201, 'another address was refused');
  });

  test('the access log has paths without their query: no token lands in it', async () => {
    const secret = 'eyJhbGciOiJIUzI1NiJ9.not-a-real-token.sig';
    const sse = await Sse.open(`${stack.url}/api/events?list=inbox&access_token=${secret}`, { localAddress: '127.0.0.11' });
    assert.equal(sse.status, 200);
    sse.close();
    const res = await request(`${stack.url}/api/lists/inbox/todos?access_token=${secret}`);
    assert.equal(res.status, 200);
    // nginx writes a request's line when it is done; the stream's when nginx has closed it.
    const logged = await eventually(() => {
      const log = stack.nginx.accessLog();
      return /GET \/api\/events /.test(log) && /GET \/api\/lists\/inbox\/todos /.test(log) ? log : null;
    }, 5000);
    assert.ok(logged, `both requests are logged:\n${stack.nginx.accessLog()}`);
    assert.ok(!logged.includes(secret) && !logged.includes('access_token'), logged);
  });

  test('nginx refuses a body over client_max_body_size with a JSON 413, before tidings sees it', async () => {
    const res = await request(`${stack.url}/api/lists/inbox/todos`, { method: 'POST', body: { title: 'x'.repeat(20_000) } });
    assertJsonError(res, 413, 'payload_too_large');
    assert.match(stack.nginx.errorLog(), /client intended to send too large body/);
  });

  test('an unparsable request line and an oversized URI get JSON errors too', async () => {
    for (const [text, status, code] of [
      ['GARBAGE\r\n\r\n', 400, 'bad_request'],
      [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 414, 'uri_too_long'],
      [`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`, 400, 'bad_request'],
    ]) {
      const raw = await Raw.open(stack.port);
      await raw.send(text);
      await raw.gone;
      const [head, body] = raw.received.split('\r\n\r\n');
      assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), raw.received);
      assert.match(head, /\r\nContent-Type: application\/json/i);
      assert.equal(JSON.parse(body).error.code, code);
    }
  });
});
