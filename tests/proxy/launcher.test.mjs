// deploy/nginx/launch.mjs as `make cluster` uses it: a command that renders the shipped config,
// runs nginx in the foreground until SIGTERM, then stops it and removes its prefix; and a
// renderer that refuses an override it cannot apply rather than test a config nobody ships.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { RenderError, renderConfig, shippedConf } from '../../deploy/nginx/launch.mjs';
import { TidingsServer } from '../support/tidings.mjs';
import { request } from './support.mjs';

const launcher = fileURLToPath(new URL('../../deploy/nginx/launch.mjs', import.meta.url));
const cleanup = [];
after(async () => {
  for (const dispose of cleanup) await dispose();
});

test('the command serves tidings until SIGTERM, then exits 0 and leaves nothing behind', async () => {
  const server = await new TidingsServer().start();
  cleanup.push(() => server.dispose());
  const child = spawn(process.execPath, [launcher, '--upstream', `127.0.0.1:${server.port}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanup.push(() => child.exitCode === null && child.kill('SIGKILL'));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const [line] = await Promise.race([
    createInterface({ input: child.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value]),
    exited.then((status) => assert.fail(`launcher exited first: ${JSON.stringify(status)}`)),
  ]);
  const [, url, prefix] = /^nginx listening on (http:\/\/\S+) \(prefix (\S+)\)$/.exec(line) ?? assert.fail(line);
  const pid = Number(readFileSync(`${prefix}/nginx.pid`, 'utf8'));

  const res = await request(`${url}/health`);
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.body).status, 'ok');

  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
  assert.equal(existsSync(prefix), false, 'the prefix was left behind');
  assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the nginx master outlived the launcher');
});

test('rendering fails on an override or replacement that matches nothing', () => {
  const text = readFileSync(shippedConf, 'utf8');
  const base = { listen: '127.0.0.1:1', upstreams: ['127.0.0.1:2'], prefix: '/tmp/x' };
  assert.ok(renderConfig(text, { ...base, overrides: { keepalive_timeout: '1s' } }).includes('keepalive_timeout 1s;'));
  assert.throws(() => renderConfig(text, { ...base, overrides: { keepalive_timout: '1s' } }), RenderError);
  assert.throws(() => renderConfig(text, { ...base, replace: [['proxy_bufering off;', '']] }), RenderError);
  assert.throws(() => renderConfig(text, { ...base, upstreams: [] }), RenderError);
});
