// The tab relay's plumbing: Web Locks election, the BroadcastChannel, the ring of frames,
// liveness. Documented in src/relay.rs (the messages, and why a leader answers pings from its
// interval): the comments live there so that the shipped file stays small.
import { RELAY_ALONE, RELAY_FRAME, RELAY_LEAD, RELAY_NEED, RELAY_PING, RELAY_RELOAD, RELAY_REPLAY, RELAY_STATUS } from './codes.js';
import { token } from './rest.js';

const TICK_MS = 250; // how often a follower checks on the leader
const QUIET_MS = 250; // silence after which it pings
const PATIENCE_MS = 600; // an unanswered ping this old (plus up to 400 ms) means: take over
const HIDDEN_PATIENCE_MS = 2500; // the same, for a leader in a hidden tab
const BOTH_HIDDEN_PATIENCE_MS = 65_000; // the same, when this tab is hidden too
const RING = 256; // frames a tab keeps

// Channels, timers, locks and lifecycle listeners held (five per open relay), for
// liveResources().
let live = 0;
export const relayResources = () => live;

// Tabs of different users must not share a stream; the key holds only a hash of the user.
const hash = (text) => {
  let h = 5381;
  for (let i = 0; i < text.length; i++) h = (h * 33 + text.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
};

// The user a token names: a JWT's `sub` (not verified: the server does that), else the token.
const userOf = (token) => {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub ?? token;
  } catch {
    return token;
  }
};

export class Relay {
  // A relay for the stream of `lists` (null: every list) on the server at `base` as the user
  // of `tok` (the `accessToken` option; a function is asked for a token first), or null
  // where tabs cannot share (no Web Locks or BroadcastChannel, an opaque origin).
  static open(base, lists, credentials, tok, on) {
    try {
      if (typeof BroadcastChannel !== 'function' || !navigator.locks?.request) return null;
      const url = new URL(`${base}/api/events`, location.href).href;
      const which = lists ? [...new Set(lists)].sort().join(' ') : '*';
      const relay = new Relay(on);
      const join = (t) => relay._join(`tidings/1 ${url} ${which} ${hash(`${credentials}:${t && userOf(t)}`)}`);
      if (typeof tok !== 'function') join(tok);
      // Without a token there is no user to share as: an own connection (which reports it).
      else token(tok, false).then(join, () => relay._on?.({ t: RELAY_ALONE }));
      return relay;
    } catch {
      return null;
    }
  }

  constructor(on) {
    this._on = on;
    this._id = Math.random().toString(36).slice(2);
    this._ring = [];
    this._at = 0;
    this._s = null;
    this._leading = false;
    this._heard = Date.now();
    this._pinged = 0;
    this._jitter = Math.random() * 400; // tabs do not all take over at once
    this._hidden = false; // whether the leader said its tab is hidden
  }

  _join(name) {
    if (!this._on) return; // closed meanwhile
    this._name = name;
    this._ch = new BroadcastChannel(name);
    this._ch.onmessage = (e) => this._receive(e.data);
    this._timer = setInterval(() => this._tick(), TICK_MS);
    // Before the browser freezes a (hidden) tab it says so: hand the stream over at once
    // rather than when the others notice; queue again after.
    this._onlife = (e) => {
      if (e.type === 'freeze') this._leave();
      else if (!this._abort) this._lock(false);
    };
    globalThis.document?.addEventListener('freeze', this._onlife);
    globalThis.document?.addEventListener('resume', this._onlife);
    live += 5;
    this._lock(false);
  }

  // Queue for the lock, or take it from a holder that stopped answering (`steal`).
  _lock(steal) {
    const mine = new AbortController();
    this._abort?.abort(); // our queued request must not be granted as well
    this._abort = mine;
    navigator.locks
      .request(this._name, steal ? { steal } : { signal: mine.signal }, () => {
        if (this._abort !== mine) return undefined; // closed or replaced meanwhile
        this._lead(true);
        return new Promise((release) => (this._release = release));
      })
      .catch(() => {
        // Our own abort (ignored), or another tab stole the lock because this one stopped
        // answering (frozen, busy): follow from now on.
        if (this._abort !== mine) return;
        if (this._leading) this._lead(false);
        this._lock(false);
      });
  }

  // Leave the election: drop our request or release the lock.
  _leave() {
    const mine = this._abort;
    this._abort = null;
    mine?.abort();
    this._release?.();
    if (this._leading) this._lead(false);
  }

  _lead(on) {
    this._leading = on;
    this._heard = Date.now();
    this._pinged = 0;
    this._on?.({ t: RELAY_LEAD, on });
  }

  _receive(m) {
    if (!this._on) return;
    if (this._leading) {
      // Frames and statuses of another "leader" (one replaced while frozen, that does not
      // know it yet) are not applied here: this tab has its own stream.
      if (m.t === RELAY_NEED) this._answer(m.from, m.by);
      else if (m.t === RELAY_PING) this._pingedMe = true; // answered by `tick`
      return;
    }
    if (m.t === RELAY_PING) {
      if (this._pinged <= this._heard) this._pinged = Date.now(); // another's ping counts as ours
      return;
    }
    if (m.t === RELAY_NEED) return;
    if (m.t === RELAY_STATUS) {
      this._heard = Date.now();
      this._hidden = m.h;
    }
    if (m.to && m.to !== this._id) return;
    if (m.t === RELAY_REPLAY) for (const f of m.frames) this._on?.(f);
    else this._on(m);
  }

  // A follower lacks what came after `from`: send it from the ring if the ring holds an
  // unbroken chain from `from` to this tab's cursor, or tell it to reload its snapshot.
  _answer(from, by) {
    if (this._at <= from) return;
    let i = this._ring.length;
    while (i && this._ring[i - 1].id > from) i--;
    const frames = this._ring.slice(i);
    const whole = frames.length && frames[0].prev <= from && this._ring.at(-1).id === this._at;
    this._post(whole ? { t: RELAY_REPLAY, to: by, frames } : { t: RELAY_RELOAD, to: by });
  }

  _announce() {
    this._post({ t: RELAY_STATUS, at: this._at, s: this._s, h: globalThis.document?.hidden });
  }

  _post(m) {
    if (this._on) this._ch?.postMessage(m);
  }

  // --- called by Rust ---

  // This tab applied a change: keep it (one unbroken chain: a new one starts after a
  // snapshot) and, when leading, relay it.
  applied(prev, id, name, data) {
    const f = { t: RELAY_FRAME, prev, id, name, data };
    if (this._ring.length && this._ring.at(-1).id !== prev) this._ring = [];
    if (this._ring.push(f) > RING) this._ring.shift();
    this._at = id;
    if (this._leading) this._post(f);
  }

  // `s`: this tab's status; its error travels as plain data (an Error's own fields do not
  // survive postMessage).
  status(at, s) {
    const e = s.error;
    this._at = at;
    this._s = e ? { ...s, error: { code: e.code, message: e.message, status: e.status } } : s;
    if (this._leading) this._announce();
  }

  // Ask the leader for what came after `from` (once per half second for the same `from`).
  need(from) {
    const now = Date.now();
    if (from === this._asked && now - this._askedAt < 500) return;
    this._asked = from;
    this._askedAt = now;
    this._post({ t: RELAY_NEED, from, by: this._id });
  }

  // The leader's stream said resync: every tab reloads its snapshot.
  resync() {
    this._ring = [];
    if (this._leading) this._post({ t: RELAY_RELOAD });
  }

  close() {
    if (!this._on) return;
    this._on = null; // before `leave`: Rust is closing and hears nothing more
    if (!this._ch) return; // it never joined
    this._leave();
    this._ch.close();
    clearInterval(this._timer);
    globalThis.document?.removeEventListener('freeze', this._onlife);
    globalThis.document?.removeEventListener('resume', this._onlife);
    live -= 5;
  }

  _tick() {
    if (this._leading) {
      if (this._pingedMe) this._announce();
      this._pingedMe = false;
      return;
    }
    const now = Date.now();
    if (this._pinged > this._heard) {
      const patience = !this._hidden
        ? PATIENCE_MS
        : globalThis.document?.hidden
          ? BOTH_HIDDEN_PATIENCE_MS
          : HIDDEN_PATIENCE_MS;
      if (now - this._pinged > patience + this._jitter) {
        // The leader holds the lock but does not answer: replace it.
        this._heard = now;
        this._pinged = 0;
        this._lock(true);
      }
    } else if (now - this._heard > QUIET_MS) {
      this._pinged = now;
      this._post({ t: RELAY_PING });
    }
  }
}
