// What the reverse-proxy tests share: tidings behind the shipped nginx config, raw sockets that
// misbehave on purpose, a deadline-bounded wait for a connection to be closed, plain HTTP
// requests from a chosen source address, and an SSE reader that sees each event as it arrives.
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { createGunzip } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { shippedConf, startNginx } from '../../deploy/nginx/launch.mjs';
import { TidingsServer } from '../support/tidings.mjs';

/**
 * The deadlines the tests configure (shortened from the shipped 5 s / 5 s / 30 s so the tests can
 * watch them fire), each different so that a close can be told apart by when it happens.
 */
export const HEADER_MS = 1500;
export const BODY_MS = 2000;
export const IDLE_MS = 2500;

/** How much later than its bound a deadline may fire on a shared 2-core machine. */
export const SLACK_MS = 1500;

/** nginx overrides for the deadlines above; this machine's hard limit is 20 000 descriptors. */
export const testDeadlines = {
  client_header_timeout: `${HEADER_MS}ms`,
  client_body_timeout: `${BODY_MS}ms`,
  keepalive_timeout: `${IDLE_MS}ms`,
  worker_rlimit_nofile: '16384',
};

/**
 * A time directive of the shipped config, in ms: its first occurrence inside the block that
 * starts with `block` (e.g. `location = /api/events`), or in the whole file.
 */
export function shippedMs(directive, block) {
  let text = readFileSync(shippedConf, 'utf8').replace(/#.*$/gm, '');
  if (block) {
    const start = text.indexOf(`${block} {`);
    if (start < 0) throw new Error(`no \`${block}\` block in ${shippedConf}`);
    text = text.slice(start, text.indexOf('}', start));
  }
  const m = new RegExp(`^\\s*${directive}\\s+(\\d+)(ms|s|m|h)?\\s*;`, 'm').exec(text);
  if (!m) throw new Error(`no \`${directive}\` in ${block ?? shippedConf}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'];
}

/**
 * One tidings server (temp SQLite database) behind one nginx running the shipped config with
 * `testDeadlines` and `overrides` applied (see `renderConfig`).
 */
export async function proxied({ serverEnv = {}, nofile, overrides = {}, replace = [] } = {}) {
  const server = await new TidingsServer({ env: serverEnv, nofile }).start();
  let nginx;
  try {
    nginx = await startNginx({
      upstreams: [`127.0.0.1:${server.port}`],
      // An override of `undefined` keeps the shipped value.
      overrides: Object.fromEntries(
        Object.entries({ ...testDeadlines, ...overrides }).filter(([, value]) => value !== undefined),
      ),
      replace,
    });
  } catch (e) {
    await server.dispose();
    throw e;
  }
  return {
    server,
    nginx,
    url: nginx.url,
    port: nginx.port,
    async dispose() {
      await nginx.stop();
      await server.dispose();
    },
  };
}

/**
 * A raw TCP connection to `port` from `localAddress` (any 127.x.y.z: the proxy's per-address
 * limits see each as a different client), for sending broken requests on purpose.
 */
export class Raw {
  /** Resolves once connected. */
  static open(port, { localAddress = '127.0.0.1', host = '127.0.0.1' } = {}) {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, localAddress });
      socket.once('connect', () => resolve(new Raw(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.openedAt = performance.now();
    this.received = '';
    this.error = null;
    socket.setEncoding('latin1');
    socket.on('data', (d) => (this.received += d));
    // A reset (reset_timedout_connection) and an orderly close both end the connection.
    socket.on('error', (e) => (this.error = e.code));
    /** The time the connection ended, whoever ended it. */
    this.gone = new Promise((resolve) => socket.on('close', () => resolve(performance.now())));
    this.isOpen = true;
    this.gone.then(() => (this.isOpen = false));
  }

  /** Write; resolves once the bytes were handed to the kernel, with that time. */
  send(text) {
    return new Promise((resolve, reject) =>
      this.socket.write(text, 'latin1', (e) => (e ? reject(e) : resolve(performance.now()))),
    );
  }

  /**
   * Wait for the peer to close the connection, at most `deadlineMs` after `since`; resolves
   * with the time from `since` to the close. Rejects (and destroys the socket) at the deadline.
   */
  async closedWithin(since, deadlineMs) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error(`connection still open ${deadlineMs} ms later`));
      }, Math.max(0, since + deadlineMs - performance.now()));
    });
    try {
      return (await Promise.race([this.gone, late])) - since;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the time a whole response (with a Content-Length) has arrived. */
  responseReceived() {
    return new Promise((resolve, reject) => {
      const complete = () => {
        const end = this.received.indexOf('\r\n\r\n');
        if (end < 0) return false;
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(this.received.slice(0, end));
        return length && this.received.length >= end + 4 + Number(length[1]);
      };
      const onData = () => {
        if (!complete()) return;
        this.socket.off('data', onData);
        resolve(performance.now());
      };
      this.socket.on('data', onData);
      onData();
      this.gone.then(() => reject(new Error(`closed before a whole response: ${JSON.stringify(this.received)}`)));
    });
  }

  destroy() {
    this.socket.destroy();
  }
}

/**
 * One HTTP/1.1 request on a fresh connection from `localAddress`; resolves with
 * `{ status, headers, body }` (body as text). Rejects after `timeoutMs`.
 */
export function request(url, { method = 'GET', headers = {}, body, localAddress, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body: text });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url}: no response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) {
      req.setHeader('content-type', 'application/json');
      req.end(JSON.stringify(body));
    } else {
      req.end();
    }
  });
}

/** Create (or find again) the list `id` through `base`. */
export async function createList(base, id) {
  const res = await request(`${base}/api/lists`, { method: 'POST', body: { id, title: id } });
  if (res.status !== 201 && res.status !== 200) throw new Error(`create list: ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

/** Create a todo through `base` and return it. */
export async function createTodo(base, title, list = 'inbox') {
  const res = await request(`${base}/api/lists/${list}/todos`, { method: 'POST', body: { title } });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

/**
 * An event stream read as it arrives: `next()` resolves with the next message
 * (`{ id, event, data, at }`, data parsed as JSON) or rejects at its deadline; `ended` resolves
 * with the time the stream ended (cleanly or not).
 */
export class Sse {
  /** Resolves once the response head arrived; rejects if it has not within `timeoutMs`. */
  static open(url, { headers = {}, localAddress, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers }, localAddress, agent: false });
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        resolve(new Sse(req, res));
      });
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end();
    });
  }

  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    this.queue = [];
    this.waiters = [];
    /** The `presence` messages received, which `next()` leaves out. */
    this.presence = [];
    this.buffer = '';
    this.raw = '';
    this.ended = new Promise((resolve) => res.once('close', () => resolve(performance.now())));
    // A compressed stream (which the shipped config never sends) is read the way a browser
    // reads it: decompressed as it arrives, each flushed block as soon as it is complete.
    const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
    body.setEncoding('utf8');
    body.on('data', (chunk) => this.feed(chunk));
  }

  feed(chunk) {
    this.raw += chunk;
    this.buffer += chunk;
    let end;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const message = { id: null, event: 'message', data: '', at: performance.now() };
      let hasData = false;
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'id') message.id = Number(value);
        else if (field === 'event') message.event = value;
        else if (field === 'data') {
          message.data += (hasData ? '\n' : '') + value;
          hasData = true;
        }
      }
      if (!hasData) continue;
      message.data = JSON.parse(message.data);
      // Who is on a list comes and goes with other tests' streams: these tests are about
      // delivery through the proxy, and set presence messages aside (`presence`).
      if (message.event === 'presence') {
        this.presence.push(message);
        continue;
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    }
  }

  /** The next message, within `deadlineMs`. */
  next(deadlineMs = 5000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(onMessage), 1);
        reject(new Error(`no event within ${deadlineMs} ms (received so far: ${JSON.stringify(this.raw.slice(-300))})`));
      }, deadlineMs);
      const onMessage = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push(onMessage);
    });
  }

  /** The next message that is not a heartbeat. */
  async nextChange(deadlineMs = 5000) {
    const until = performance.now() + deadlineMs;
    for (;;) {
      const m = await this.next(Math.max(1, until - performance.now()));
      if (m.event !== 'heartbeat') return m;
    }
  }

  close() {
    this.req.destroy();
  }
}

/**
 * The four ways of holding a connection without finishing a request, each with the deadline
 * that should end it and `start(raw)`, which misbehaves and resolves with the time that
 * deadline counts from.
 */
export const attacks = {
  'a half-sent request line': {
    deadline: 'header',
    async start(raw) {
      await raw.send('GET /api/lis');
      return raw.openedAt;
    },
  },
  'unfinished headers': {
    deadline: 'header',
    async start(raw) {
      await raw.send('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      return raw.openedAt;
    },
  },
  'a chunked body that never ends': {
    deadline: 'body',
    start: (raw) =>
      raw.send(
        'POST /api/lists/inbox/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          'Transfer-Encoding: chunked\r\n\r\n9\r\n{"title":',
      ),
  },
  'an idle keep-alive connection': {
    deadline: 'idle',
    async start(raw) {
      await raw.send('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const answered = await raw.responseReceived();
      if (!/^HTTP\/1\.1 200 /.test(raw.received) || /\r\nconnection: close/i.test(raw.received)) {
        throw new Error(`expected a kept-alive 200, got ${JSON.stringify(raw.received)}`);
      }
      return answered;
    },
  },
};
