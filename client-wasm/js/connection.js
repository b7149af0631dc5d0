// The reconnecting EventSource of src/connection.rs (which documents the behaviour): the
// browser plumbing in JavaScript, where it is a fraction of its size in wasm. Rust decides
// the retry delays (`delay(attempt)`, src/backoff.rs) and is told every message and status
// change; every browser resource held here is counted (resources.js).

const STABLE_MS = 5000; // open this long: the attempt counter starts over

import { held, listen, message, timeout } from './resources.js';

// `url` with `key=value` replacing any value of `key` in its query (relative stays relative).
export const withQuery = (url, key, value) => {
  const [rest, fragment] = url.split(/#(.*)/s);
  const [path, query = ''] = rest.split(/\?(.*)/s);
  const params = query.split('&').filter((p) => p && p !== key && !p.startsWith(`${key}=`));
  params.push(`${key}=${encodeURIComponent(value)}`);
  return `${path}?${params.join('&')}${fragment === undefined ? '' : `#${fragment}`}`;
};

export class Connection {
  constructor(url, withCredentials, token, heartbeatMs, names, capAttempt, delay, onMessage, onStatus) {
    Object.assign(this, { url, withCredentials, token, heartbeatMs, names, capAttempt, delay, onMessage, onStatus });
    this.phase = 'idle'; // idle | connecting | open | waiting | closed
    this.attempt = 0;
    this.everOpened = false;
    this.lastEventId = null;
    this.error = null; // {code, message, status?}
    this.gen = 0;
    this.drops = []; // releases of the current EventSource, its listeners and timers
    this.page = []; // releases of the page listeners
    this.activity = 0;
  }

  // --- called by Rust ---

  start() {
    if (this.phase !== 'idle') return;
    this.watchPage();
    this.open();
  }

  stop() {
    this.halt('idle');
  }

  close() {
    this.halt('closed');
  }

  running() {
    return this.phase !== 'idle' && this.phase !== 'closed';
  }

  closed() {
    return this.phase === 'closed';
  }

  // The status as a leading tab relays it (src/js.rs reads both the same way).
  status() {
    return { state: this.state(), attempt: this.attempt, error: this.error ?? undefined };
  }

  state() {
    const p = this.phase;
    if (p === 'open') return 'open';
    if (p === 'waiting') return 'reconnecting';
    if (p === 'connecting') return this.attempt || this.everOpened ? 'reconnecting' : 'connecting';
    return 'closed';
  }

  setHeartbeat(ms) {
    this.heartbeatMs = ms;
    this.armWatchdog();
  }

  listen(name) {
    if (this.names.includes(name)) return;
    this.names.push(name);
    if (this.es) this.listenFor(name, this.gen);
  }

  report(code, message, status) {
    this.error = { code, message, status };
    this.emit();
  }

  // --- the machine ---

  emit() {
    this.onStatus?.(this.status());
  }

  release() {
    this.gen++;
    this.es?.close();
    this.es = null;
    for (const drop of this.drops.splice(0)) drop();
    this.retry?.();
    this.watchdog?.();
    this.stable?.();
    this.retry = this.watchdog = this.stable = null;
  }

  halt(phase) {
    if (this.phase === 'closed' || (this.phase === phase && !this.es)) return;
    this.release();
    this.unwatchPage();
    this.phase = phase;
    this.emit();
  }

  resumeUrl() {
    let url = this.url;
    if (this.lastEventId !== null) url = withQuery(url, 'last_event_id', this.lastEventId);
    if (this.token != null) url = withQuery(url, 'access_token', this.token);
    return url;
  }

  open() {
    if (this.phase === 'closed') return;
    this.release();
    this.phase = 'connecting';
    this.activity = Date.now();
    const url = this.resumeUrl();
    const gen = this.gen;
    let es;
    try {
      es = new EventSource(url, { withCredentials: this.withCredentials });
    } catch (e) {
      // An unusable URL does not get better by retrying.
      this.error = { code: 'invalid_input', message: `cannot open an EventSource on \`${url}\`: ${message(e)}` };
      this.phase = 'closed';
      this.unwatchPage();
      this.emit();
      return;
    }
    this.es = es;
    held(1);
    this.drops.push(() => held(-1));
    const on = (name, f) => this.drops.push(listen(es, name, (e) => gen === this.gen && f(e)));
    on('open', () => this.opened(gen));
    on('error', () => this.failed());
    for (const name of this.names) this.listenFor(name, gen);
    this.armWatchdog();
    this.emit();
  }

  listenFor(name, gen) {
    this.drops.push(
      listen(this.es, name, (e) => {
        if (gen !== this.gen) return;
        this.activity = Date.now();
        if (e.lastEventId) this.lastEventId = e.lastEventId;
        this.onMessage?.(name, typeof e.data === 'string' ? e.data : '', e.lastEventId);
      }),
    );
  }

  opened(gen) {
    this.phase = 'open';
    this.everOpened = true;
    this.error = null;
    this.activity = Date.now();
    this.stable?.();
    this.stable = timeout(STABLE_MS, () => {
      this.stable = null;
      if (gen !== this.gen) return;
      this.attempt = 0;
      this.emit();
    });
    this.emit();
  }

  failed() {
    const ready = this.es.readyState;
    if (ready === EventSource.OPEN) return;
    this.stable?.();
    this.stable = null;
    this.attempt++;
    if (ready === EventSource.CONNECTING) {
      // The browser retries by itself and resends Last-Event-ID: let it.
      this.phase = 'connecting';
    } else {
      // It gave up (HTTP error, wrong content type, 204): ask why, then retry.
      this.release();
      this.phase = 'waiting';
      this.probe();
    }
    this.emit();
  }

  // The browser does not say why it gave up on an EventSource: ask the server with a plain
  // request (its body aborted at once), then retry accordingly.
  async probe() {
    const gen = this.gen;
    const abort = new AbortController();
    held(1);
    let settled = false;
    const drop = () => {
      if (settled) return;
      settled = true;
      abort.abort();
      held(-1);
    };
    this.drops.push(drop);
    let outcome;
    try {
      const res = await fetch(this.resumeUrl(), {
        credentials: this.withCredentials ? 'include' : 'same-origin',
        signal: abort.signal,
        headers: { accept: 'text/event-stream' },
      });
      outcome = await this.judge(res);
    } catch (e) {
      outcome = { error: { code: 'network_error', message: `network error: ${message(e)}` } };
    }
    if (gen !== this.gen) return;
    drop();
    if (outcome.stop) {
      this.error = { code: 'stopped_by_server', message: 'the server asked the client to stop (204)' };
      this.release();
      this.unwatchPage();
      this.phase = 'closed';
      this.emit();
      return;
    }
    if (outcome.error) {
      // A refusal continues at the cap: retrying sooner would only hammer the server.
      if (outcome.error.status === 401 || outcome.error.status === 403) {
        this.attempt = Math.max(this.attempt, this.capAttempt);
      }
      this.error = outcome.error;
    }
    this.scheduleRetry(outcome.notBefore ?? 0);
  }

  async judge(res) {
    const type = res.headers.get('content-type') ?? '';
    if (res.status === 200) {
      return type.startsWith('text/event-stream')
        ? {}
        : { error: { code: 'wrong_content_type', message: `expected text/event-stream, got \`${type}\`` } };
    }
    if (res.status === 204) return { stop: true };
    // Seconds (the HTTP-date form is not worth its parser here).
    const after = /^\s*\d+\s*$/.test(res.headers.get('retry-after') ?? '') ? res.headers.get('retry-after') * 1000 : 0;
    const body = await res.json().catch(() => null);
    const error = body?.error ?? {};
    return {
      notBefore: after,
      error: {
        code: typeof error.code === 'string' ? error.code : `http_${res.status}`,
        message: typeof error.message === 'string' ? error.message : res.statusText,
        status: res.status,
      },
    };
  }

  scheduleRetry(notBefore) {
    if (this.phase === 'closed' || this.phase === 'idle') return;
    this.phase = 'waiting';
    const gen = this.gen;
    this.retry?.();
    this.retry = timeout(Math.round(Math.max(this.delay(Math.max(this.attempt, 1)), notBefore)), () => {
      this.retry = null;
      if (gen === this.gen) this.open();
    });
    this.emit();
  }

  silentFor() {
    return Date.now() - this.activity;
  }

  armWatchdog() {
    this.watchdog?.();
    this.watchdog = null;
    const limit = this.heartbeatMs;
    if (!this.es || !(limit > 0 && Number.isFinite(limit))) return;
    const gen = this.gen;
    const wait = Math.max(limit - this.silentFor(), 0);
    this.watchdog = timeout(Math.ceil(wait) + 1, () => {
      this.watchdog = null;
      if (gen !== this.gen) return;
      if (this.silentFor() < limit) return this.armWatchdog(); // there was activity
      this.release();
      this.attempt++;
      this.error = { code: 'heartbeat_timeout', message: 'no message within the heartbeat timeout' };
      this.phase = 'waiting';
      this.scheduleRetry(0);
    });
  }

  // `online`, `pageshow` and a tab becoming visible: retry now if the connection is down.
  wake() {
    const overdue = this.heartbeatMs > 0 && this.silentFor() >= this.heartbeatMs;
    const p = this.phase;
    const down =
      p === 'waiting' ||
      (p === 'connecting' && (this.attempt > 0 || overdue)) ||
      (p === 'open' && (overdue || this.es?.readyState === EventSource.CLOSED));
    if (down) this.open();
  }

  watchPage() {
    const doc = globalThis.document;
    if (!globalThis.window || !doc) return; // workers, SSR: nothing to watch
    const wake = () => this.wake();
    this.page.push(listen(window, 'online', wake), listen(window, 'pageshow', wake));
    this.page.push(listen(doc, 'visibilitychange', () => doc.visibilityState === 'visible' && wake()));
  }

  unwatchPage() {
    for (const drop of this.page.splice(0)) drop();
  }
}
