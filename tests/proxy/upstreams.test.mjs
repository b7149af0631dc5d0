// The upstream block with several tidings processes: streams are spread over them by open
// connections, a process that is down is skipped, and with none up clients get a JSON 503.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { freePort, startNginx } from '../../deploy/nginx/launch.mjs';
import { TidingsServer } from '../support/tidings.mjs';
import { Sse, request, testDeadlines } from './support.mjs';

const cleanup = [];
after(async () => {
  for (const dispose of cleanup.reverse()) await dispose();
});

async function server() {
  const s = await new TidingsServer().start();
  cleanup.push(() => s.dispose());
  return s;
}

async function nginxFor(upstreams) {
  const nginx = await startNginx({ upstreams, overrides: testDeadlines });
  cleanup.push(() => nginx.stop());
  return nginx;
}

const openStreams = async (s) => JSON.parse((await request(`${s.url}/health`)).body).open_streams;

test('event streams are balanced over the processes by open connections (least_conn)', async () => {
  const [a, b] = await Promise.all([server(), server()]);
  const nginx = await nginxFor([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
  const streams = [];
  try {
    for (let i = 0; i < 6; i += 1) {
      const sse = await Sse.open(`${nginx.url}/api/events?list=inbox`);
      streams.push(sse);
      assert.equal((await sse.next(1000)).event, 'connected');
    }
    assert.deepEqual([await openStreams(a), await openStreams(b)], [3, 3]);
  } finally {
    for (const sse of streams) sse.close();
  }
});

test('a process that is down is skipped, for REST and streams alike', async () => {
  const live = await server();
  const dead = await freePort();
  const nginx = await nginxFor([`127.0.0.1:${dead}`, `127.0.0.1:${live.port}`]);
  for (let i = 0; i < 4; i += 1) {
    const res = await request(`${nginx.url}/api/lists`);
    assert.equal(res.status, 200, res.body);
  }
  const sse = await Sse.open(`${nginx.url}/api/events?list=inbox`);
  try {
    assert.equal(sse.status, 200);
    assert.equal((await sse.next(1000)).event, 'connected');
  } finally {
    sse.close();
  }
});

test('with every process down, REST and streams get a JSON 503 with Retry-After', async () => {
  const nginx = await nginxFor([`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`]);
  for (const path of ['/api/lists', '/api/events?list=inbox', '/health']) {
    const res = await request(`${nginx.url}${path}`);
    assert.equal(res.status, 503, `${path}: ${res.body}`);
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.equal(JSON.parse(res.body).error.code, 'unavailable');
    assert.equal(res.headers['retry-after'], '2');
  }
});
