// Several tidings processes on one PostgreSQL database behind the shipped nginx config
// (issue 10's "deployment a user can copy"): a change made through whichever process nginx
// picks reaches streams on every process, and during a rolling restart a reader that loses its
// process resumes through nginx on another, with no gap and no duplicate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startNginx } from '../../deploy/nginx/launch.mjs';
import { TidingsServer } from '../support/tidings.mjs';
import { Sse, createTodo, testDeadlines } from './support.mjs';

const admin = process.env.TIDINGS_TEST_POSTGRES_URL;

/** A fresh database in the test cluster (scripts/with-postgres.sh provides it). */
function freshDatabase() {
  if (!admin) throw new Error('TIDINGS_TEST_POSTGRES_URL is not set: run through scripts/test-proxy.sh');
  const name = `proxy_${randomUUID().replaceAll('-', '')}`;
  execFileSync('psql', [admin, '-qc', `CREATE DATABASE ${name}`]);
  return admin.replace(/\/[^/]*$/, `/${name}`);
}

const openStreams = async (s) => (await s.api('GET', '/health')).open_streams;

describe('two processes on one PostgreSQL behind nginx', { concurrency: false }, () => {
  let servers;
  let nginx;
  before(async () => {
    const databaseUrl = freshDatabase();
    servers = [];
    for (let i = 0; i < 2; i += 1) {
      servers.push(await new TidingsServer({ env: { TIDINGS_DATABASE_URL: databaseUrl } }).start());
    }
    nginx = await startNginx({
      upstreams: servers.map((s) => `127.0.0.1:${s.port}`),
      overrides: testDeadlines,
    });
  });
  after(async () => {
    await nginx?.stop();
    for (const s of servers ?? []) await s.dispose();
  });

  test('a change made through either process reaches the streams of both', async () => {
    const streams = [];
    try {
      for (let i = 0; i < 4; i += 1) {
        const sse = await Sse.open(`${nginx.url}/api/events?list=inbox`);
        assert.equal((await sse.next(2000)).event, 'connected');
        streams.push(sse);
      }
      // least_conn spread them: both processes hold streams.
      assert.ok((await openStreams(servers[0])) >= 1 && (await openStreams(servers[1])) >= 1);
      const created = [];
      for (let i = 0; i < 10; i += 1) created.push(await createTodo(nginx.url, `through nginx ${i}`));
      for (const sse of streams) {
        const got = [];
        for (let i = 0; i < 10; i += 1) got.push((await sse.nextChange(5000)).data.todo);
        assert.deepEqual(got, created);
      }
    } finally {
      for (const sse of streams) sse.close();
    }
  });

  test('a rolling restart: the reader of a stopped process resumes on the other, nothing lost', async () => {
    let sse = await Sse.open(`${nginx.url}/api/events?list=inbox`);
    const connected = await sse.next(2000);
    let cursor = connected.id;
    const start = cursor;
    const held = (await openStreams(servers[0])) > 0 ? 0 : 1;
    const seen = [];
    const writes = (async () => {
      for (let i = 0; i < 40; i += 1) {
        // Through the other process, so the writer does not lose its own connection.
        await createTodo(servers[1 - held].url, `during the restart ${i}`);
      }
    })();
    // Stop the reader's process once it has carried a few changes.
    while (seen.length < 5) {
      const m = await sse.nextChange(5000);
      seen.push(m.id);
      cursor = m.id;
    }
    await servers[held].stop();
    await sse.ended;
    // As a browser does: reconnect (nginx skips the stopped process) with Last-Event-ID.
    sse = await Sse.open(`${nginx.url}/api/events?list=inbox`, { headers: { 'last-event-id': String(cursor) } });
    assert.equal(sse.status, 200);
    const resumed = await sse.next(2000);
    assert.equal(resumed.event, 'connected');
    assert.equal(resumed.data.resume_from, cursor);
    await writes;
    const head = (await servers[1 - held].api('GET', '/health')).last_event_id;
    while (cursor < head) {
      const m = await sse.nextChange(5000);
      seen.push(m.id);
      cursor = m.id;
    }
    sse.close();
    const expected = Array.from({ length: head - start }, (_, i) => start + 1 + i);
    assert.deepEqual(seen, expected, 'every id once, in order, across the restart');
    // The restart completes: the stopped process comes back on the same database.
    await servers[held].start();
    assert.equal((await servers[held].api('GET', '/health')).last_event_id, head);
  });
});
