#!/usr/bin/env node
// Run the shipped nginx.conf for tests and local clusters: rendered into a private prefix
// (pid, logs and temp files inside it, `daemon off;`), on a free loopback port, in front of the
// given tidings processes, and stopped again afterwards.
//
// As a module:  const nginx = await startNginx({ upstreams: ['127.0.0.1:8001'] });
//               ... nginx.url ...; await nginx.stop();
// As a command: node deploy/nginx/launch.mjs --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002
//               [--port 8080] [--host 127.0.0.1] [--prefix DIR] [--set 'keepalive_timeout=5s']
//               prints one line `nginx listening on http://HOST:PORT (prefix DIR)`, runs until
//               SIGINT/SIGTERM, then stops nginx and removes the prefix it made.
//
// Rendering changes only what a private instance must change (listen address, upstream servers,
// file paths, no `user` switch) plus the directives the caller overrides, and fails if any of
// them is not found, so the file under test is the file users copy.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The config users copy. */
export const shippedConf = join(dirname(fileURLToPath(import.meta.url)), 'nginx.conf');

/** The nginx binary: `NGINX_BIN`, else Debian's /usr/sbin/nginx (not on a user's PATH), else PATH. */
export const nginxBin = process.env.NGINX_BIN ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx');

/** A rendering step that did not find what it must change. */
export class RenderError extends Error {}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Replace every `^<ws>key ...;` directive with `key value;`; throw if there is none. */
function setDirective(text, key, value) {
  const re = new RegExp(`^([ \\t]*)${escape(key)}(?:[ \\t][^;]*)?;`, 'gm');
  let n = 0;
  const out = text.replace(re, (_, indent) => {
    n += 1;
    return value === null ? `${indent}# (${key} removed by launch.mjs)` : `${indent}${key} ${value};`;
  });
  if (n === 0) throw new RenderError(`no \`${key}\` directive in the config`);
  return out;
}

/**
 * The shipped config made runnable as a private instance.
 * - `listen`: `host:port`; replaces every `listen` directive.
 * - `upstreams`: `host:port` strings; replace the `server` lines of `upstream tidings`, keeping
 *   the parameters (max_fails, …) of its first one.
 * - `prefix`: directory for the pid file, logs and temp files.
 * - `overrides`: `{ 'directive [first arg]': 'value' }`, e.g. `{ 'limit_conn per_addr': '4' }`;
 *   every matching directive gets the value, `null` removes it.
 * - `replace`: `[[from, to], …]` exact text replacements (for tests that change a location).
 * - `source`: the file `text` came from, named in the rendered file's first line.
 */
export function renderConfig(text, { listen, upstreams, prefix, overrides = {}, replace = [], source = shippedConf }) {
  if (!upstreams?.length) throw new RenderError('at least one upstream is needed');
  for (const [from, to] of replace) {
    if (!text.includes(from)) throw new RenderError(`text not found in the config: ${from}`);
    text = text.split(from).join(to);
  }

  const block = /^([ \t]*)upstream[ \t]+tidings[ \t]*\{([\s\S]*?)^[ \t]*\}/m.exec(text);
  if (!block) throw new RenderError('no `upstream tidings { … }` block in the config');
  const servers = [...block[2].matchAll(/^([ \t]*)server[ \t]+\S+([^;]*);/gm)];
  if (!servers.length) throw new RenderError('no `server` line in `upstream tidings`');
  // The new servers take the place of the first one (balancing directives stay before them).
  const [first, indent, params] = servers[0];
  const lines = upstreams.map((u) => `${indent}server ${u}${params};`).join('\n');
  let body = block[2].replace(first, '\0');
  body = body.replace(/^[ \t]*server[ \t]+[^;]*;\n?/gm, '').replace('\0', lines);
  text = text.replace(block[2], () => body);

  // The first `listen` becomes ours, the others (IPv6, TLS) go.
  let listens = 0;
  text = text.replace(/^([ \t]*)listen[ \t][^;]*;/gm, (_, indent) =>
    listens++ === 0 ? `${indent}listen ${listen};` : `${indent}# (listen removed by launch.mjs)`,
  );
  if (listens === 0) throw new RenderError('no `listen` directive in the config');
  // No `user` switch to www-data: as root, workers then run as nobody (the prefix is made
  // readable for them); as anyone else, nginx would only warn that it cannot switch.
  if (/^[ \t]*user[ \t]/m.test(text)) text = setDirective(text, 'user', null);
  text = setDirective(text, 'pid', join(prefix, 'nginx.pid'));
  text = text.replace(/^([ \t]*)error_log[ \t]+[^\s;]+/gm, `$1error_log ${join(prefix, 'error.log')}`);
  text = text.replace(/^([ \t]*)access_log[ \t]+(?!off\b)[^\s;]+/gm, `$1access_log ${join(prefix, 'access.log')}`);
  for (const [key, value] of Object.entries(overrides)) text = setDirective(text, key, value);

  // Debian's build puts temp files under /var/lib/nginx: keep them in the prefix instead.
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `    ${kind}_temp_path ${join(prefix, 'temp', kind)};\n`)
    .join('');
  if (!/^http[ \t]*\{\n/m.test(text)) throw new RenderError('no `http {` block in the config');
  text = text.replace(/^http[ \t]*\{\n/m, `http {\n${temp}`);
  return `# Rendered by deploy/nginx/launch.mjs from ${source}\ndaemon off;\n${text}`;
}

/** A free TCP port on `host` (the kernel's choice; nginx cannot bind port 0 and report it). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set();
// A test runner that exits without stopping us must not leave nginx behind: the master stops
// its workers on SIGTERM.
process.on('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

function accepts(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The PIDs of a process's children (nginx's workers), read before the master may be killed. */
function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A running private nginx. */
export class Nginx {
  constructor({ child, host, port, prefix, ownsPrefix, stderr }) {
    this.child = child;
    this.host = host;
    this.port = port;
    this.prefix = prefix;
    this.ownsPrefix = ownsPrefix;
    this.stderr = stderr;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** `http://host:port` */
  get url() {
    return `http://${this.host}:${this.port}`;
  }

  /** The master's PID. */
  get pid() {
    return this.child.pid;
  }

  /** The rendered config it runs. */
  get confPath() {
    return join(this.prefix, 'nginx.conf');
  }

  /** The access log so far. */
  accessLog() {
    try {
      return readFileSync(join(this.prefix, 'access.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** The error log so far (warnings about limits and timeouts land here). */
  errorLog() {
    try {
      return readFileSync(join(this.prefix, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Fast shutdown (SIGTERM: open connections, event streams included, are closed at once) and
   * wait for the master to exit; SIGKILL the master and its workers if it has not within 5 s.
   * Removes the prefix if this launcher made it.
   */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const workers = childrenOf(this.child.pid);
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        for (const pid of [this.child.pid, ...workers]) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, 5000);
      await this.exited;
      clearTimeout(timer);
    }
    running.delete(this.child);
    if (this.ownsPrefix) rmSync(this.prefix, { recursive: true, force: true });
  }
}

/**
 * Render the config and start nginx on it. Options: `upstreams` (required), `host`
 * (127.0.0.1), `port` (a free one if absent; retried if another process takes it first),
 * `prefix` (a new temp dir if absent, removed by `stop()`), `overrides`, `replace`, `conf`.
 */
export async function startNginx({ upstreams, host = '127.0.0.1', port, prefix, overrides, replace, conf = shippedConf }) {
  const ownsPrefix = !prefix;
  prefix ??= mkdtempSync(join(tmpdir(), 'tidings-nginx-'));
  // Workers run as an unprivileged user when nginx starts as root: they must reach the prefix.
  chmodSync(prefix, 0o755);
  mkdirSync(join(prefix, 'temp'), { recursive: true });
  const text = readFileSync(conf, 'utf8');
  const wantedPort = port;

  for (let attempt = 0; ; attempt += 1) {
    const p = wantedPort ?? (await freePort(host));
    const listen = host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`;
    const confPath = join(prefix, 'nginx.conf');
    writeFileSync(confPath, renderConfig(text, { listen, upstreams, prefix, overrides, replace, source: conf }));

    const child = spawn(nginxBin, ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(child);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const spawnError = new Promise((resolve) => child.once('error', resolve));
    const nginx = new Nginx({ child, host, port: p, prefix, ownsPrefix, stderr: () => stderr });

    const deadline = Date.now() + 10_000;
    for (;;) {
      const failed = await Promise.race([
        spawnError,
        nginx.exited.then(() => 'exited'),
        new Promise((resolve) => setTimeout(resolve, 20, null)),
      ]);
      if (failed) {
        running.delete(child);
        const log = `${stderr}${nginx.errorLog()}`;
        if (failed !== 'exited') throw new Error(`cannot run ${nginxBin}: ${failed.message} (scripts/setup.sh nginx installs it)`);
        if (wantedPort === undefined && attempt < 5 && /Address already in use/.test(log)) break;
        if (ownsPrefix) rmSync(prefix, { recursive: true, force: true });
        throw new Error(`nginx exited at start:\n${log}`);
      }
      if (await accepts(host, p)) return nginx;
      if (Date.now() > deadline) {
        await nginx.stop();
        throw new Error(`nginx did not accept connections on ${listen} within 10 s:\n${stderr}${nginx.errorLog()}`);
      }
    }
  }
}

// --- command line ------------------------------------------------------------------------------
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    options: {
      upstream: { type: 'string', multiple: true },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      prefix: { type: 'string' },
      set: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.upstream?.length) {
    console.error('usage: launch.mjs --upstream HOST:PORT [--upstream …] [--port N] [--host H] [--prefix DIR] [--set directive=value …]');
    process.exit(values.help ? 0 : 2);
  }
  const overrides = Object.fromEntries(
    (values.set ?? []).map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) {
        console.error(`--set wants directive=value, got ${kv}`);
        process.exit(2);
      }
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  let nginx;
  try {
    nginx = await startNginx({
      upstreams: values.upstream,
      host: values.host,
      port: values.port === undefined ? undefined : Number(values.port),
      prefix: values.prefix,
      overrides,
    });
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
  console.log(`nginx listening on ${nginx.url} (prefix ${nginx.prefix})`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await nginx.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  nginx.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`nginx exited (${signal ?? code}):\n${nginx.errorLog()}`);
    process.exit(1);
  });
}
