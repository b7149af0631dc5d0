// Start and stop a real tidings-server for tests: its own temporary SQLite database, a free
// loopback port, and a restart on the same port and database.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The server binary: `TIDINGS_SERVER_BIN`, or the debug build in the workspace target. */
export const serverBin = process.env.TIDINGS_SERVER_BIN ?? join(root, 'target/debug/tidings-server');

/**
 * A site as an app serves the package: `pkg/` as `make pkg` built it and `page` (a path from
 * the repository root) as `index.html`, in a new temporary directory (for
 * `TIDINGS_STATIC_DIR`, so the page has the API's origin). Remove it with `rmSync`.
 */
export function packageSite(page, prefix) {
  const pkg = join(root, 'pkg');
  if (!existsSync(join(pkg, 'tidings_client_bg.wasm'))) {
    throw new Error('no package in pkg/: run `make pkg` (scripts/build-pkg.sh) first');
  }
  const site = mkdtempSync(join(tmpdir(), prefix));
  cpSync(pkg, join(site, 'pkg'), { recursive: true });
  copyFileSync(join(root, page), join(site, 'index.html'));
  return site;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * A tidings server under test. `env` adds TIDINGS_* / ROCKET_* settings; `nofile` runs it with
 * that many file descriptors at most (soft and hard limit, through util-linux `prlimit`).
 */
export class TidingsServer {
  constructor({ port, env = {}, dir, nofile } = {}) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'tidings-test-'));
    this.ownsDir = !dir;
    this.port = port;
    this.env = env;
    this.nofile = nofile;
    this.child = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get databaseUrl() {
    return `sqlite://${join(this.dir, 'tidings.db')}`;
  }

  /** Start and resolve once the server answers `/health`. */
  async start() {
    if (this.child) throw new Error('already running');
    this.port ??= await freePort();
    // prlimit sets the limit and execs the server: the child's PID is the server's.
    const [command, args] = this.nofile
      ? ['prlimit', [`--nofile=${this.nofile}:${this.nofile}`, '--', serverBin]]
      : [serverBin, []];
    const child = spawn(command, args, {
      env: {
        ...process.env,
        ROCKET_ADDRESS: '127.0.0.1',
        ROCKET_PORT: String(this.port),
        ROCKET_LOG_LEVEL: 'critical',
        ROCKET_CLI_COLORS: 'false',
        TIDINGS_DATABASE_URL: this.databaseUrl,
        // Tests write fast from one address; a test of the write budget sets its own.
        TIDINGS_WRITE_RATE: '0',
        ...this.env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((res) => child.once('exit', res));
    this.exited = exited;
    // Launch is signalled by /health answering; a crash by the process exiting first.
    const deadline = Date.now() + 15000;
    for (;;) {
      const up = await fetch(`${this.url}/health`).then((r) => r.ok, () => false);
      if (up) return this;
      if (child.exitCode !== null) throw new Error(`tidings-server exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`tidings-server did not start: ${stderr}`);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
  }

  /** SIGTERM and wait for the process to exit. */
  async stop() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stop, and delete the database unless it was given. */
  async dispose() {
    await this.stop();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A REST call; resolves with the parsed body (or null), rejects on a non-2xx status. */
  async api(method, path, body) {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const value = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return value;
  }
}
