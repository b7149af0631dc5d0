// The event stream through the shipped nginx config: unbuffered and uncompressed, kept open past
// nginx's read timeout by tidings' heartbeats, resumable with Last-Event-ID. The controls change
// one directive each and show that these tests notice when a proxy gets it wrong.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SLACK_MS, Sse, createList, createTodo, proxied, shippedMs } from './support.mjs';
import { TidingsServer } from '../support/tidings.mjs';

// Tests that run side by side on one server each use a list of their own.
const streamOf = (list) => `/api/events?list=${list}`;
const STREAM = streamOf('inbox');
/** nginx's proxy_read_timeout in these tests (shipped: 60 s). */
const READ_TIMEOUT_MS = 3000;
const readTimeout = { proxy_read_timeout: `${READ_TIMEOUT_MS}ms` };

/** Publish `count` todos one by one, each only after the previous one came out of `sse`. */
async function assertUnbuffered(base, sse, { count = 5, list = 'inbox' } = {}) {
  for (let i = 0; i < count; i += 1) {
    const todo = await createTodo(base, `event ${i}`, list);
    const message = await sse.nextChange(1000);
    assert.equal(message.event, 'todo_created');
    assert.deepEqual(message.data.todo, todo);
  }
}

describe('the event stream through nginx', { concurrency: true }, () => {
  let stack;
  before(async () => {
    stack = await proxied({ serverEnv: { TIDINGS_HEARTBEAT_SECS: '1' }, overrides: readTimeout });
    // Before any stream opens: every stream is told about every new list.
    for (const list of ['unbuffered', 'heartbeat', 'resume']) await createList(stack.url, list);
  });
  after(() => stack?.dispose());

  test('each event is readable before the next is published, and the stream is not gzipped', async () => {
    const sse = await Sse.open(`${stack.url}${streamOf('unbuffered')}`, { headers: { 'accept-encoding': 'gzip' } });
    try {
      assert.equal(sse.status, 200);
      assert.match(sse.headers['content-type'], /^text\/event-stream/);
      assert.equal(sse.headers['content-encoding'], undefined, 'nginx compressed the stream');
      assert.match(sse.headers['cache-control'], /no-cache/);
      assert.equal((await sse.next(1000)).event, 'connected');
      await assertUnbuffered(stack.url, sse, { list: 'unbuffered' });
    } finally {
      sse.close();
    }
  });

  test(`heartbeats keep a stream open well past proxy_read_timeout (${READ_TIMEOUT_MS} ms)`, async (t) => {
    const sse = await Sse.open(`${stack.url}${streamOf('heartbeat')}`);
    try {
      const connected = await sse.next(1000);
      assert.equal(connected.event, 'connected');
      let heartbeats = 0;
      // Read for 2.5 read timeouts; each message must come within two heartbeat periods.
      while (performance.now() - connected.at < 2.5 * READ_TIMEOUT_MS) {
        const message = await sse.next(2000);
        assert.equal(message.event, 'heartbeat');
        heartbeats += 1;
      }
      t.diagnostic(`${heartbeats} heartbeats in ${(performance.now() - connected.at).toFixed(0)} ms`);
      const todo = await createTodo(stack.url, 'still live', 'heartbeat');
      assert.deepEqual((await sse.nextChange(1000)).data.todo, todo);
    } finally {
      sse.close();
    }
  });

  test('Last-Event-ID (header, as the browser sends it, or query) resumes through nginx', async () => {
    const list = 'resume';
    // The ids of three changes, as a client saw them before it lost its connection.
    const seen = [];
    const first = await Sse.open(`${stack.url}${streamOf(list)}`);
    assert.equal((await first.next(1000)).event, 'connected');
    for (const title of ['one', 'two', 'three']) {
      const todo = await createTodo(stack.url, title, list);
      const message = await first.nextChange(1000);
      assert.deepEqual(message.data.todo, todo);
      seen.push(message);
    }
    first.close();

    const resumeFrom = seen[0].id;
    for (const how of ['header', 'query']) {
      const url = `${stack.url}${streamOf(list)}${how === 'query' ? `&last_event_id=${resumeFrom}` : ''}`;
      const headers = how === 'header' ? { 'last-event-id': String(resumeFrom) } : {};
      const sse = await Sse.open(url, { headers });
      try {
        const connected = await sse.next(1000);
        assert.equal(connected.event, 'connected');
        assert.equal(connected.data.resume_from, resumeFrom, `${how}: resume point`);
        // Exactly what was missed, in order, then live again.
        for (const missed of seen.slice(1)) {
          const message = await sse.nextChange(1000);
          assert.equal(message.id, missed.id, `${how}: replayed id`);
          assert.deepEqual(message.data, missed.data, `${how}: replayed event`);
        }
        const live = await createTodo(stack.url, `live after ${how}`, list);
        const message = await sse.nextChange(1000);
        assert.ok(message.id > seen.at(-1).id);
        assert.deepEqual(message.data.todo, live);
        seen.push(message); // missed by the next round, which resumes from the same point
      } finally {
        sse.close();
      }
    }
  });
});

test('the shipped proxy_read_timeout for the stream is at least three default heartbeats', async () => {
  const server = await new TidingsServer().start();
  try {
    const sse = await Sse.open(`${server.url}${STREAM}`);
    const { heartbeat_secs: heartbeatSecs } = (await sse.next(1000)).data;
    sse.close();
    const readTimeout = shippedMs('proxy_read_timeout', 'location = /api/events');
    assert.ok(readTimeout >= 3 * heartbeatSecs * 1000, `${readTimeout} ms for a ${heartbeatSecs} s heartbeat`);
  } finally {
    await server.dispose();
  }
});

describe('controls: what the tests above catch', { concurrency: true }, () => {
  test(`a heartbeat slower than proxy_read_timeout: nginx ends the stream after ${READ_TIMEOUT_MS} ms`, async (t) => {
    const stack = await proxied({ serverEnv: { TIDINGS_HEARTBEAT_SECS: '10' }, overrides: readTimeout });
    try {
      const sse = await Sse.open(`${stack.url}${STREAM}`);
      const connected = await sse.next(1000);
      const ended = await Promise.race([sse.ended, new Promise((r) => setTimeout(r, READ_TIMEOUT_MS + SLACK_MS, null))]);
      assert.ok(ended, `the silent stream outlived proxy_read_timeout by ${SLACK_MS} ms`);
      const ms = ended - connected.at;
      t.diagnostic(`silent stream ended ${ms.toFixed(0)} ms after connecting`);
      assert.ok(ms >= READ_TIMEOUT_MS - 200, `ended after ${ms} ms, before proxy_read_timeout`);
    } finally {
      await stack.dispose();
    }
  });

  // Measured on nginx 1.22: proxy_buffering on by itself does not hold events back (nginx
  // passes on what it has read while the client keeps up). What holds them is a compressing
  // proxy that is not told to flush: gzip keeps output until its buffer fills.
  const gzipStream = ['gzip off;', 'gzip on; gzip_types text/event-stream;'];
  const buffered = ['proxy_buffering off;', 'proxy_buffering on;'];
  const gzipHeaders = { headers: { 'accept-encoding': 'gzip' } };

  test('gzip and buffering on: each event is still flushed, because nginx honours X-Accel-Buffering: no', async () => {
    const stack = await proxied({ replace: [gzipStream, buffered] });
    try {
      const sse = await Sse.open(`${stack.url}${STREAM}`, gzipHeaders);
      assert.equal(sse.headers['content-encoding'], 'gzip', 'the gzip the first test rules out');
      assert.equal((await sse.next(1000)).event, 'connected');
      await assertUnbuffered(stack.url, sse, { count: 2 });
      sse.close();
    } finally {
      await stack.dispose();
    }
  });

  test('gzip and buffering on, X-Accel-Buffering ignored: nothing arrives (the buffering the first test rules out)', async () => {
    const ignored = [buffered[0], 'proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;'];
    const stack = await proxied({ replace: [gzipStream, ignored] });
    try {
      await assert.rejects(Sse.open(`${stack.url}${STREAM}`, { ...gzipHeaders, timeoutMs: 1500 }), /no response within/);
    } finally {
      await stack.dispose();
    }
  });
});
