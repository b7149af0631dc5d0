// @ts-check
// The reconnecting EventSource (`Connection`, below) and its retry delays: the browser
// plumbing in JavaScript, where it is a fraction of its size in wasm (README "Package size").
// The session (src/session.rs) drives it through src/connection.rs, and `EventStream`
// (feed.js) directly.
/** @import { AccessToken, ConnectionState, TidingsError } from './api.js' */
import { held, listen, message, timeout } from './resources.js';
import { httpError, token } from './rest.js';

const STABLE_MS = 5000; // open this long: the attempt counter starts over

// Reconnect delays: exponential growth up to a cap, with jitter so that clients cut off
// together do not come back together. Here, where the retries run (feed.js's snapshot loads
// use them too; src/backoff.rs holds the settings for the Rust API).

/**
 * The `backoff` option as the scripts pass it: `[initialMs, maxMs, factor, jitter]`
 * (BackoffOptions in api.d.ts), NaN where absent.
 * @typedef {number[]} Backoff
 */

const DEFAULTS = [1000, 30_000, 2, 1];

/**
 * The settings, safe: nonsense (negative, NaN, a factor below 1, jitter outside 0..1)
 * replaced by the defaults or clamped, so a typo cannot cause a tight retry loop.
 * @param {Backoff} settings
 * @returns {Backoff}
 */
export const sanitize = ([initial, max, factor, jitter]) => {
  /**
   * @param {number} v
   * @param {number} d
   */
  const ms = (v, d) => (Number.isFinite(v) && v >= 0 ? v : d);
  const i = ms(initial, DEFAULTS[0]);
  return [
    i,
    Math.max(ms(max, DEFAULTS[1]), i),
    Number.isFinite(factor) && factor >= 1 ? factor : DEFAULTS[2],
    Number.isFinite(jitter) ? Math.min(Math.max(jitter, 0), 1) : DEFAULTS[3],
  ];
};

/**
 * The upper bound of the delay before retry number `attempt` (1 is the first retry).
 * @param {Backoff} settings sanitized
 * @param {number} attempt
 */
export const ceiling = ([initial, max, factor], attempt) =>
  Math.min(initial * factor ** Math.min(Math.max(attempt - 1, 0), 64), max);

/**
 * The delay before retry number `attempt` (at least 1).
 * @param {Backoff} b sanitized settings
 * @param {number} attempt
 * @param {number} [random] uniform in [0, 1)
 */
export const delay = (b, attempt, random = Math.random()) =>
  Math.round(ceiling(b, Math.max(attempt, 1)) * (1 - b[3] * Math.min(Math.max(random, 0), 1)));

/**
 * The smallest attempt whose ceiling is the cap: where a client that must not hammer the
 * server (401, 403, no token) continues from.
 * @param {Backoff} b sanitized settings
 */
export const capAttempt = (b) => {
  let a = 1;
  while (a < 64 && ceiling(b, a) < b[1]) a++;
  return a;
};

/**
 * `url` with `key=value` replacing any value of `key` in its query (relative stays relative).
 * @param {string} url
 * @param {string} key
 * @param {string} value
 */
export const withQuery = (url, key, value) => {
  const [rest, fragment] = url.split(/#(.*)/s);
  const [path, query = ''] = rest.split(/\?(.*)/s);
  const params = query.split('&').filter((p) => p && p !== key && !p.startsWith(`${key}=`));
  params.push(`${key}=${encodeURIComponent(value)}`);
  return `${path}?${params.join('&')}${fragment === undefined ? '' : `#${fragment}`}`;
};

/**
 * A problem, as the status carries it: a TidingsError, or its plain form.
 * @typedef {{code: string, message: string, status?: number}} Problem
 */

/**
 * The start of the status a feed shows (src/session.rs adds the rest).
 * @typedef {{state: ConnectionState, attempt: number, error?: Problem}} Status
 */

/**
 * What a connection tells its owner: `on(name, data, lastEventId)` for each message,
 * `on(undefined, status)` for each status change.
 * @callback Listener
 * @param {string | undefined} name the event's name; `undefined`: a status change
 * @param {string | Status} data the event's data (a string), or the status
 * @param {string} [lastEventId] the event's id (`""` when it has none)
 * @returns {void}
 */

/**
 * A reconnecting Server-Sent Events connection.
 *
 * - While the browser's own retry works (a dropped connection: `readyState` goes back to
 *   `CONNECTING`), it is left to it: it resends `Last-Event-ID` by itself.
 * - When the browser gives up (`CLOSED`: HTTP error, wrong content type, `204`), a probe
 *   request learns why, then a new `EventSource` is made after the backoff delay, resuming
 *   from the last id (the `last_event_id` query parameter). `204` stops; `401` and `403` jump
 *   to the cap; `Retry-After` (seconds) is honoured.
 * - A watchdog reconnects a connection that has been silent for longer than the heartbeat
 *   timeout (a dead TCP connection can look open for minutes).
 * - `online`, `pageshow` and a tab becoming visible retry at once when the connection is
 *   down; `online` after `offline` reopens an open connection too (it may be dead).
 * - The attempt counter resets after a connection has stayed open for 5 s.
 * - With a token, every EventSource gets a one-time stream ticket of its own (`POST
 *   /api/events/ticket` with the token, then `?ticket=`), so no bearer token is ever in a URL
 *   (proxies log URLs); a server without tickets (`404`) gets the token as `access_token`
 *   instead. A ticket is good once, and a token function's token may expire, so the
 *   connection reconnects by itself rather than let the browser resend the old URL, at once
 *   the first time after a stable connection. A 401 asks the function for a fresh token (`refresh`) and
 *   tries once more at once; a second 401 backs off like any refusal. The same takeover
 *   happens when the event log's `epoch` became known after the EventSource was made: the
 *   resume URL carries it from then on, so a server whose database was replaced answers
 *   `resync` instead of resuming at an id of another log.
 *
 * Everything it registers (EventSource, listeners, timers, the probe in flight) is released
 * by `stop` and `close`, and counted (resources.js).
 */
export class Connection {
  /**
   * Idle until `start`.
   * @param {string} url the stream, without resume parameters
   * @param {boolean} withCredentials send cookies cross-origin
   * @param {AccessToken | undefined} accessToken sent as the `access_token` query parameter
   *   (EventSource cannot send headers)
   * @param {number | undefined} heartbeatMs silence after which the connection counts as
   *   dead; none: no watchdog
   * @param {string} names the event names to listen for, separated by spaces
   * @param {Backoff} backoff the retry delays' settings
   * @param {Listener} on
   */
  constructor(url, withCredentials, accessToken, heartbeatMs, names, backoff, on) {
    this._url = url;
    this._withCredentials = withCredentials;
    this._token = accessToken;
    this._heartbeatMs = heartbeatMs;
    this._names = names.split(' ').filter(Boolean);
    this._backoff = sanitize(backoff);
    this._on = on;
    /** @type {'idle' | 'connecting' | 'open' | 'waiting' | 'closed'} */
    this._phase = 'idle';
    this._attempt = 0;
    this._everOpened = false;
    /** @type {string | null} the id the next connection resumes after */
    this.lastEventId = null;
    /** @type {string | null} the event log `lastEventId` belongs to, when known (set by Rust) */
    this.epoch = null;
    /** @type {string | null} the current EventSource's token */
    this._tok = null;
    /** @type {string | null} the current EventSource's stream ticket */
    this._ticket = null;
    /** no tickets (not a tidings stream, or a server without them: `404`): the token goes in
     * the URL */
    this._noTickets = !/\/api\/events(\?|$)/.test(url);
    /** @type {Problem | null} */
    this._error = null;
    this._gen = 0;
    /** @type {(() => void)[]} releases of the current EventSource, its listeners and timers */
    this._drops = [];
    /** @type {(() => void)[]} releases of the page listeners */
    this._page = [];
    this._activity = 0;
  }

  // --- called by Rust ---

  /** Open the connection if it is idle. */
  start() {
    if (this._phase !== 'idle') return;
    this._watchPage();
    this._open();
  }

  /** Release everything and go idle; `start` resumes from the last id. */
  stop() {
    this._halt('idle');
  }

  /** Release everything for good. */
  close() {
    this._halt('closed');
  }

  /** Whether it is doing anything (neither idle nor closed). */
  running() {
    return this._phase !== 'idle' && this._phase !== 'closed';
  }

  /** Whether `close` was called or the server said stop. */
  closed() {
    return this._phase === 'closed';
  }

  /** @returns {Status} a fresh object */
  status() {
    /** @type {Status} */
    const s = { state: this._state(), attempt: this._attempt };
    if (this._error) s.error = this._error;
    return s;
  }

  /** @returns {ConnectionState} */
  _state() {
    const p = this._phase;
    if (p === 'open') return 'open';
    if (p === 'waiting') return 'reconnecting';
    if (p === 'connecting') return this._attempt || this._everOpened ? 'reconnecting' : 'connecting';
    return 'closed';
  }

  /**
   * Change the watchdog's timeout (the server announces its heartbeat on connect).
   * @param {number | undefined} ms
   */
  setHeartbeat(ms) {
    this._heartbeatMs = ms;
    this._armWatchdog();
  }

  /**
   * Also deliver messages named `name`, from now on and after every reconnect.
   * @param {string} name
   */
  listen(name) {
    if (this._names.includes(name)) return;
    this._names.push(name);
    if (this._es) this._listenFor(name, this._gen);
  }

  /**
   * Put a problem the owner found (a malformed event) in the status.
   * @param {string} code
   * @param {string} text
   * @param {number} [status]
   */
  report(code, text, status) {
    this._error = { code, message: text, status };
    this._emit();
  }

  // --- the machine ---

  _emit() {
    this._on?.(undefined, this.status());
  }

  _release() {
    this._gen++;
    this._es?.close();
    this._es = null;
    for (const drop of this._drops.splice(0)) drop();
    this._retry?.();
    this._watchdog?.();
    this._stable?.();
    this._retry = this._watchdog = this._stable = null;
  }

  /** @param {'idle' | 'closed'} phase */
  _halt(phase) {
    if (this._phase === 'closed' || (this._phase === phase && !this._es)) return;
    this._release();
    this._unwatchPage();
    this._phase = phase;
    this._emit();
  }

  _resumeUrl() {
    let url = this._url;
    if (this.lastEventId != null) url = withQuery(url, 'last_event_id', this.lastEventId);
    if (this.epoch != null) url = withQuery(url, 'epoch', this.epoch);
    if (this._ticket != null) url = withQuery(url, 'ticket', this._ticket);
    else if (this._tok != null) url = withQuery(url, 'access_token', this._tok);
    return url;
  }

  /** Whether each EventSource needs credentials of its own (see the class comment). */
  _takesOver() {
    return typeof this._token === 'function' || (this._token != null && !this._noTickets);
  }

  /**
   * A stream ticket bought with `tok`; `null` when the server has none (`404`). Throws the
   * route's error (`401`: the token is refused).
   * @param {string} tok
   */
  async _buyTicket(tok) {
    if (this._noTickets) return null;
    const { signal, drop } = this._owned();
    try {
      const q = this._url.indexOf('?');
      const res = await fetch(`${q < 0 ? this._url : this._url.slice(0, q)}/ticket`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tok}` },
        credentials: this._withCredentials ? 'include' : 'same-origin',
        signal,
      });
      if (res.status === 404) {
        this._noTickets = true;
        return null;
      }
      if (!res.ok) throw await httpError(res);
      return /** @type {{ticket: string}} */ (await res.json()).ticket;
    } catch (e) {
      throw /** @type {any} */ (e)?.code ? e : { code: 'network_error', message: `network error: ${message(e)}` };
    } finally {
      drop();
    }
  }

  /**
   * A request of this connection's own: counted (resources.js) and aborted by `_release`
   * unless `drop` (idempotent) came first.
   */
  _owned() {
    const abort = new AbortController();
    held(1);
    let settled = false;
    const drop = () => {
      if (settled) return;
      settled = true;
      abort.abort();
      held(-1);
    };
    this._drops.push(drop);
    return { signal: abort.signal, drop };
  }

  /**
   * Connect now, resuming from the last id: with a token function once it gave a token,
   * otherwise at once.
   * @param {boolean} [refresh] the last token was refused (401)
   * @returns {Promise<void>}
   */
  async _open(refresh) {
    if (this._phase === 'closed') return;
    if (this._token == null) return this._openSource();
    this._release();
    this._phase = 'connecting';
    this._emit();
    const gen = this._gen;
    let tok;
    try {
      tok = await token(this._token, !!refresh);
    } catch (e) {
      if (gen !== this._gen) return;
      // No token to send: retrying sooner would not help.
      this._attempt = Math.max(this._attempt + 1, capAttempt(this._backoff));
      this._error = e;
      return this._scheduleRetry(0);
    }
    if (gen !== this._gen) return;
    this._tok = tok;
    try {
      this._ticket = await this._buyTicket(tok);
    } catch (e) {
      if (gen !== this._gen) return;
      return this._refused(/** @type {TidingsError | Problem} */ (e), 0, false);
    }
    if (gen !== this._gen) return;
    this._openSource();
  }

  /**
   * Retry after a refusal or a failure: a refused token is asked for once more (`refresh`),
   * a refusal waits at the backoff's cap, and `notBefore` (`Retry-After`) is honoured.
   * @param {TidingsError | Problem} error
   * @param {number} notBefore milliseconds
   * @param {boolean} counted the attempt was counted already (the EventSource failed)
   * @returns {void | Promise<void>}
   */
  _refused(error, notBefore, counted) {
    if (error.status === 401 && !this._refreshed && typeof this._token === 'function') {
      this._refreshed = true;
      return this._open(true);
    }
    // A refusal continues at the cap: retrying sooner would only hammer the server.
    if (error.status === 401 || error.status === 403) {
      this._attempt = Math.max(this._attempt, capAttempt(this._backoff));
    } else if (!counted) this._attempt++;
    this._error = error;
    this._scheduleRetry(notBefore);
  }

  _openSource() {
    if (this._phase === 'closed') return;
    this._release();
    this._phase = 'connecting';
    this._activity = Date.now();
    this._srcEpoch = this.epoch != null;
    const url = this._resumeUrl();
    const gen = this._gen;
    let es;
    try {
      es = new EventSource(url, { withCredentials: this._withCredentials });
    } catch (e) {
      // An unusable URL does not get better by retrying.
      this._error = { code: 'invalid_input', message: `cannot open an EventSource on \`${url}\`: ${message(e)}` };
      this._phase = 'closed';
      this._unwatchPage();
      this._emit();
      return;
    }
    this._es = es;
    held(1);
    this._drops.push(() => held(-1));
    /** @type {(name: string, f: () => void) => unknown} */
    const on = (name, f) => this._drops.push(listen(es, name, () => gen === this._gen && f()));
    on('open', () => this._opened(gen));
    on('error', () => this._failed());
    for (const name of this._names) this._listenFor(name, gen);
    this._armWatchdog();
    this._emit();
  }

  /**
   * @param {string} name
   * @param {number} gen the EventSource's generation
   */
  _listenFor(name, gen) {
    this._drops.push(
      listen(/** @type {EventSource} */ (this._es), name, (e) => {
        if (gen !== this._gen) return;
        this._activity = Date.now();
        if (e.lastEventId) this.lastEventId = e.lastEventId;
        this._on?.(name, typeof e.data === 'string' ? e.data : '', e.lastEventId);
      }),
    );
  }

  /** @param {number} gen */
  _opened(gen) {
    this._phase = 'open';
    this._everOpened = true;
    this._refreshed = false;
    this._error = null;
    this._activity = Date.now();
    this._stable?.();
    this._stable = timeout(STABLE_MS, () => {
      this._stable = null;
      if (gen !== this._gen) return;
      this._attempt = 0;
      this._emit();
    });
    this._emit();
  }

  _failed() {
    const ready = /** @type {EventSource} */ (this._es).readyState;
    if (ready === EventSource.OPEN) return;
    this._stable?.();
    this._stable = null;
    this._attempt++;
    const retrying = ready === EventSource.CONNECTING;
    // The browser retries by itself with this EventSource's URL, resending Last-Event-ID:
    // let it, unless its token may be stale (a function's) or the epoch became known since.
    if (retrying && !this._takesOver() && (this.epoch == null || this._srcEpoch)) {
      this._phase = 'connecting';
    } else {
      this._release();
      this._phase = 'waiting';
      // It gave up (HTTP error, wrong content type, 204): ask why, then retry. The first
      // reconnect after a stable connection (a token's expiry) goes at once.
      if (!retrying) this._probe();
      else if (this._attempt <= 1) this._open();
      else this._scheduleRetry(0);
    }
    this._emit();
  }

  /**
   * The browser does not say why it gave up on an EventSource: ask the server with a plain
   * request (its body aborted at once), then retry accordingly.
   */
  async _probe() {
    const gen = this._gen;
    const { signal, drop } = this._owned();
    let outcome;
    try {
      // The EventSource's ticket is spent: the probe needs one of its own.
      if (this._ticket != null && this._tok != null) this._ticket = await this._buyTicket(this._tok);
      const res = await fetch(this._resumeUrl(), {
        credentials: this._withCredentials ? 'include' : 'same-origin',
        signal,
        headers: { accept: 'text/event-stream' },
      });
      outcome = await this._judge(res);
    } catch (e) {
      // A refused ticket purchase says why itself; anything else is the network's.
      outcome = { error: /** @type {any} */ (e)?.code ? e : { code: 'network_error', message: `network error: ${message(e)}` } };
    }
    if (gen !== this._gen) return;
    drop();
    if (outcome.stop) {
      this._error = { code: 'stopped_by_server', message: 'the server asked the client to stop (204)' };
      this._release();
      this._unwatchPage();
      this._phase = 'closed';
      this._emit();
      return;
    }
    if (outcome.error) return this._refused(outcome.error, outcome.notBefore ?? 0, true);
    this._scheduleRetry(outcome.notBefore ?? 0);
  }

  /**
   * What a probe's response says.
   * @param {Response} res
   * @returns {Promise<{stop?: boolean, notBefore?: number, error?: TidingsError | Problem}>}
   */
  async _judge(res) {
    const type = res.headers.get('content-type') ?? '';
    if (res.status === 200) {
      return type.startsWith('text/event-stream')
        ? {}
        : { error: { code: 'wrong_content_type', message: `expected text/event-stream, got \`${type}\`` } };
    }
    if (res.status === 204) return { stop: true };
    // Seconds (the HTTP-date form is not worth its parser here).
    const after = /^\s*\d+\s*$/.test(res.headers.get('retry-after') ?? '')
      ? /** @type {any} */ (res.headers.get('retry-after')) * 1000 // digits: `*` makes them a number
      : 0;
    return { notBefore: after, error: await httpError(res) };
  }

  /** @param {number} notBefore the least delay, in milliseconds (`Retry-After`) */
  _scheduleRetry(notBefore) {
    if (this._phase === 'closed' || this._phase === 'idle') return;
    this._phase = 'waiting';
    const gen = this._gen;
    this._retry?.();
    this._retry = timeout(Math.max(delay(this._backoff, this._attempt), notBefore), () => {
      this._retry = null;
      if (gen === this._gen) this._open();
    });
    this._emit();
  }

  _silentFor() {
    return Date.now() - this._activity;
  }

  _armWatchdog() {
    this._watchdog?.();
    this._watchdog = null;
    const limit = /** @type {number} */ (this._heartbeatMs); // none fails `limit > 0`
    if (!this._es || !(limit > 0 && Number.isFinite(limit))) return;
    const gen = this._gen;
    const wait = Math.max(limit - this._silentFor(), 0);
    this._watchdog = timeout(Math.ceil(wait) + 1, () => {
      this._watchdog = null;
      if (gen !== this._gen) return;
      if (this._silentFor() < limit) return this._armWatchdog(); // there was activity
      this._release();
      this._attempt++;
      this._error = { code: 'heartbeat_timeout', message: 'no message within the heartbeat timeout' };
      this._phase = 'waiting';
      this._scheduleRetry(0);
    });
  }

  /** `online`, `pageshow` and a tab becoming visible: retry now if the connection is down. */
  _wake() {
    const limit = /** @type {number} */ (this._heartbeatMs); // none fails `limit > 0`
    const overdue = limit > 0 && this._silentFor() >= limit;
    const p = this._phase;
    const down =
      p === 'waiting' ||
      (p === 'connecting' && (this._attempt > 0 || overdue)) ||
      (p === 'open' && (overdue || this._es?.readyState === EventSource.CLOSED));
    if (down) this._open();
  }

  _watchPage() {
    const doc = globalThis.document;
    if (!globalThis.window || !doc) return; // workers, SSR: nothing to watch
    const wake = () => this._wake();
    // A stream open while the browser was offline may be dead without knowing it yet (the
    // heartbeat would tell, late): back online, it reopens at once, resuming.
    let away = false;
    const online = () => {
      if (away && this._phase === 'open') this._open();
      else wake();
      away = false;
    };
    this._page.push(listen(window, 'offline', () => (away = true)), listen(window, 'online', online));
    this._page.push(listen(window, 'pageshow', wake));
    this._page.push(listen(doc, 'visibilitychange', () => doc.visibilityState === 'visible' && wake()));
  }

  _unwatchPage() {
    for (const drop of this._page.splice(0)) drop();
  }
}
