// The tab relay's plumbing: Web Locks election, the BroadcastChannel, the ring of frames,
// liveness. Documented in src/relay.rs (the messages, and why a leader answers pings from its
// interval): the comments live there so that the shipped file stays small.
import { token } from './token.js';

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
      const join = (t) => relay.join(`tidings/1 ${url} ${which} ${hash(`${credentials}:${t && userOf(t)}`)}`);
      if (typeof tok !== 'function') join(tok);
      // Without a token there is no user to share as: an own connection (which reports it).
      else token(tok, false).then(join, () => relay.on?.({ t: 'o' }));
      return relay;
    } catch {
      return null;
    }
  }

  constructor(on) {
    this.on = on;
    this.id = Math.random().toString(36).slice(2);
    this.ring = [];
    this.at = 0;
    this.s = null;
    this.leading = false;
    this.heard = Date.now();
    this.pinged = 0;
    this.jitter = Math.random() * 400; // tabs do not all take over at once
    this.hidden = false; // whether the leader said its tab is hidden
  }

  join(name) {
    if (!this.on) return; // closed meanwhile
    this.name = name;
    this.ch = new BroadcastChannel(name);
    this.ch.onmessage = (e) => this.receive(e.data);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    // Before the browser freezes a (hidden) tab it says so: hand the stream over at once
    // rather than when the others notice; queue again after.
    this.onlife = (e) => {
      if (e.type === 'freeze') this.leave();
      else if (!this.abort) this.lock(false);
    };
    globalThis.document?.addEventListener('freeze', this.onlife);
    globalThis.document?.addEventListener('resume', this.onlife);
    live += 5;
    this.lock(false);
  }

  // Queue for the lock, or take it from a holder that stopped answering (`steal`).
  lock(steal) {
    const mine = new AbortController();
    this.abort?.abort(); // our queued request must not be granted as well
    this.abort = mine;
    navigator.locks
      .request(this.name, steal ? { steal } : { signal: mine.signal }, () => {
        if (this.abort !== mine) return undefined; // closed or replaced meanwhile
        this.lead(true);
        return new Promise((release) => (this.release = release));
      })
      .catch(() => {
        // Our own abort (ignored), or another tab stole the lock because this one stopped
        // answering (frozen, busy): follow from now on.
        if (this.abort !== mine) return;
        if (this.leading) this.lead(false);
        this.lock(false);
      });
  }

  // Leave the election: drop our request or release the lock.
  leave() {
    const mine = this.abort;
    this.abort = null;
    mine?.abort();
    this.release?.();
    if (this.leading) this.lead(false);
  }

  lead(on) {
    this.leading = on;
    this.heard = Date.now();
    this.pinged = 0;
    this.on?.({ t: 'l', on });
  }

  receive(m) {
    if (!this.on) return;
    if (this.leading) {
      // Frames and statuses of another "leader" (one replaced while frozen, that does not
      // know it yet) are not applied here: this tab has its own stream.
      if (m.t === 'n') this.answer(m.from, m.by);
      else if (m.t === 'p') this.pingedMe = true; // answered by `tick`
      return;
    }
    if (m.t === 'p') {
      if (this.pinged <= this.heard) this.pinged = Date.now(); // another's ping counts as ours
      return;
    }
    if (m.t === 'n') return;
    if (m.t === 's') {
      this.heard = Date.now();
      this.hidden = m.h;
    }
    if (m.to && m.to !== this.id) return;
    if (m.t === 'r') for (const f of m.frames) this.on?.(f);
    else this.on(m);
  }

  // A follower lacks what came after `from`: send it from the ring if the ring holds an
  // unbroken chain from `from` to this tab's cursor, or tell it to reload its snapshot.
  answer(from, by) {
    if (this.at <= from) return;
    let i = this.ring.length;
    while (i && this.ring[i - 1].id > from) i--;
    const frames = this.ring.slice(i);
    const whole = frames.length && frames[0].prev <= from && this.ring.at(-1).id === this.at;
    this.post(whole ? { t: 'r', to: by, frames } : { t: 'x', to: by });
  }

  announce() {
    this.post({ t: 's', at: this.at, s: this.s, h: globalThis.document?.hidden });
  }

  post(m) {
    if (this.on) this.ch?.postMessage(m);
  }

  // --- called by Rust ---

  // This tab applied a change: keep it (one unbroken chain: a new one starts after a
  // snapshot) and, when leading, relay it.
  applied(prev, id, name, data) {
    const f = { t: 'f', prev, id, name, data };
    if (this.ring.length && this.ring.at(-1).id !== prev) this.ring = [];
    if (this.ring.push(f) > RING) this.ring.shift();
    this.at = id;
    if (this.leading) this.post(f);
  }

  status(at, s) {
    this.at = at;
    this.s = s;
    if (this.leading) this.announce();
  }

  // Ask the leader for what came after `from` (once per half second for the same `from`).
  need(from) {
    const now = Date.now();
    if (from === this.asked && now - this.askedAt < 500) return;
    this.asked = from;
    this.askedAt = now;
    this.post({ t: 'n', from, by: this.id });
  }

  // The leader's stream said resync: every tab reloads its snapshot.
  resync() {
    this.ring = [];
    if (this.leading) this.post({ t: 'x' });
  }

  close() {
    if (!this.on) return;
    this.on = null; // before `leave`: Rust is closing and hears nothing more
    if (!this.ch) return; // it never joined
    this.leave();
    this.ch.close();
    clearInterval(this.timer);
    globalThis.document?.removeEventListener('freeze', this.onlife);
    globalThis.document?.removeEventListener('resume', this.onlife);
    live -= 5;
  }

  tick() {
    if (this.leading) {
      if (this.pingedMe) this.announce();
      this.pingedMe = false;
      return;
    }
    const now = Date.now();
    if (this.pinged > this.heard) {
      const patience = !this.hidden
        ? PATIENCE_MS
        : globalThis.document?.hidden
          ? BOTH_HIDDEN_PATIENCE_MS
          : HIDDEN_PATIENCE_MS;
      if (now - this.pinged > patience + this.jitter) {
        // The leader holds the lock but does not answer: replace it.
        this.heard = now;
        this.pinged = 0;
        this.lock(true);
      }
    } else if (now - this.heard > QUIET_MS) {
      this.pinged = now;
      this.post({ t: 'p' });
    }
  }
}
