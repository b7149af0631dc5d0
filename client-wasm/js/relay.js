// @ts-check
// The tab relay: one stream for the tabs of an origin whose feeds follow the same server and
// lists, as the same user. They elect a leader with the Web Locks API; the leader holds the
// connection and relays every change it applies over a BroadcastChannel, and every `presence`
// message its stream receives. This is the plumbing (the election, the channel, the ring of
// frames, the last presence of each list, liveness); what a tab applies, and
// why that is gap-free, is decided in Rust (src/session.rs, src/chain.rs), which drives it
// through src/relay.rs. The messages are the `RELAY_` codes (codes.js).
/** @import { AccessToken } from './api.js' */
/** @import { Status } from './connection.js' */
import {
  RELAY_ALONE,
  RELAY_FRAME,
  RELAY_HELLO,
  RELAY_LEAD,
  RELAY_NEED,
  RELAY_PING,
  RELAY_PRESENCE,
  RELAY_RELOAD,
  RELAY_REPLAY,
  RELAY_STATUS,
} from './codes.js';
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

/**
 * A message on the channel, or from the relay to Rust: `t` is its `RELAY_` code, the other
 * fields are that code's (codes.js).
 * @typedef {{t: string, [field: string]: any}} Message
 */

/**
 * A change this tab applied, kept for the gaps of others and relayed when leading.
 * @typedef {{t: string, prev: number, id: number, name: string, data: string}} Frame
 */

/**
 * Tabs of different users must not share a stream; the key holds only a hash of the user.
 * @param {string} text
 */
export const hash = (text) => {
  let h = 5381;
  for (let i = 0; i < text.length; i++) h = (h * 33 + text.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
};

/**
 * The user a token names: a JWT's `sub` (not verified: the server does that), else the token.
 * @param {string} tok
 */
export const userOf = (tok) => {
  try {
    return JSON.parse(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub ?? tok;
  } catch {
    return tok;
  }
};

/**
 * This tab's membership in the group of tabs sharing one stream.
 *
 * The leading tab connects with its own `accessToken`; the others only apply what it
 * relays. So tabs share a stream only when their tokens name the same user: the group's
 * lock and channel are named by the stream's URL, its lists, and a hash of the credentials
 * mode and of the token's user (the JWT's `sub`, read without verifying it: the server
 * verifies; or the whole token when it is not a JWT). A token function is asked for a token
 * before joining, to learn the user; when it gives none, the relay tells Rust `ALONE`. A
 * feed's token function must therefore keep giving tokens of one user. Cookies are the
 * browser's, the same in every tab.
 *
 * Alive means: it can still run its timers. A frozen page (Chromium keeps delivering its
 * network and channel messages, and even runs timers set meanwhile, while the ones it had
 * stand still) or a blocked main thread cannot, and a leader whose timers stand still cannot
 * reconnect or watch its stream either. So a leader answers a ping from its long-running
 * interval, and only status messages count as signs of life. A follower pings after 250 ms
 * without one and takes the lock (`steal`) when the ping is unanswered after 600–1000 ms;
 * the old leader learns it lost the lock once it runs again, and follows. Browsers throttle
 * the timers of hidden tabs (to one a second; after minutes hidden, one a minute), hence
 * more patience with a hidden leader: 2.5 s when this tab is visible (it then takes over,
 * which is as well), over a minute when both are hidden. And before a browser freezes a
 * hidden tab it fires `freeze`: a leader then releases the lock at once, and queues again on
 * `resume`.
 */
export class Relay {
  /**
   * Join the group of `base` and `lists` as the user of `tok`.
   * @param {string} base the server
   * @param {string[] | null} lists `null`: every list
   * @param {boolean} credentials the `withCredentials` option
   * @param {AccessToken | undefined} tok the `accessToken` option
   * @param {(message: Message) => void} on hears each message for this tab: `FRAME`
   *   (also each frame of a `REPLAY`), `STATUS`, `RELOAD`, `PRESENCE`, `LEAD`, `ALONE`
   * @returns {Relay | null} `null` where tabs cannot share (no Web Locks or
   *   BroadcastChannel, an opaque origin)
   */
  static open(base, lists, credentials, tok, on) {
    try {
      if (typeof BroadcastChannel !== 'function' || !navigator.locks?.request) return null;
      const url = new URL(`${base}/api/events`, location.href).href;
      const which = lists ? [...new Set(lists)].sort().join(' ') : '*';
      const relay = new Relay(on);
      /** @param {string | undefined} t the token */
      const join = (t) => relay._join(`tidings/1 ${url} ${which} ${hash(`${credentials}:${t && userOf(t)}`)}`);
      if (typeof tok !== 'function') join(tok);
      // Without a token there is no user to share as: an own connection (which reports it).
      else token(tok, false).then(join, () => relay._on?.({ t: RELAY_ALONE }));
      return relay;
    } catch {
      return null;
    }
  }

  /** @param {(message: Message) => void} on */
  constructor(on) {
    /** @type {((message: Message) => void) | null} null once closed */
    this._on = on;
    this._id = Math.random().toString(36).slice(2);
    /** @type {Frame[]} the last frames applied, one unbroken chain */
    this._ring = [];
    /** @type {Map<string, string>} the last `presence` message of each list (its data) */
    this._who = new Map();
    this._at = 0; // this tab's cursor
    /** @type {Status | null} this tab's status, as it is relayed */
    this._s = null;
    this._leading = false;
    this._heard = Date.now();
    this._pinged = 0;
    this._jitter = Math.random() * 400; // tabs do not all take over at once
    this._hidden = false; // whether the leader said its tab is hidden
  }

  /** @param {string} name the group's lock and channel */
  _join(name) {
    if (!this._on) return; // closed meanwhile
    this._name = name;
    this._ch = new BroadcastChannel(name);
    this._ch.onmessage = (e) => this._receive(e.data);
    this._timer = setInterval(() => this._tick(), TICK_MS);
    // Before the browser freezes a (hidden) tab it says so: hand the stream over at once
    // rather than when the others notice; queue again after.
    this._onlife = (/** @type {Event} */ e) => {
      if (e.type === 'freeze') this._leave();
      else if (!this._abort) this._lock(false);
    };
    globalThis.document?.addEventListener('freeze', this._onlife);
    globalThis.document?.addEventListener('resume', this._onlife);
    live += 5;
    // The stream tells presence when it changes: a tab that joins late asks the leader for
    // the last ones (a leader of its own has its stream tell it).
    this._post({ t: RELAY_HELLO, by: this._id });
    this._lock(false);
  }

  /**
   * Queue for the lock, or take it from a holder that stopped answering.
   * @param {boolean} steal
   */
  _lock(steal) {
    const mine = new AbortController();
    this._abort?.abort(); // our queued request must not be granted as well
    this._abort = mine;
    navigator.locks
      .request(/** @type {string} */ (this._name), steal ? { steal } : { signal: mine.signal }, () => {
        if (this._abort !== mine) return undefined; // closed or replaced meanwhile
        this._lead(true);
        return new Promise((release) => (this._release = /** @type {() => void} */ (release)));
      })
      .catch(() => {
        // Our own abort (ignored), or another tab stole the lock because this one stopped
        // answering (frozen, busy): follow from now on.
        if (this._abort !== mine) return;
        if (this._leading) this._lead(false);
        this._lock(false);
      });
  }

  /** Leave the election: drop our request or release the lock. */
  _leave() {
    const mine = this._abort;
    this._abort = null;
    mine?.abort();
    this._release?.();
    if (this._leading) this._lead(false);
  }

  /** @param {boolean} on */
  _lead(on) {
    this._leading = on;
    this._heard = Date.now();
    this._pinged = 0;
    this._on?.({ t: RELAY_LEAD, on });
  }

  /** @param {Message} m */
  _receive(m) {
    if (!this._on) return;
    if (this._leading) {
      // Frames and statuses of another "leader" (one replaced while frozen, that does not
      // know it yet) are not applied here: this tab has its own stream.
      if (m.t === RELAY_NEED) this._answer(m.from, m.by);
      else if (m.t === RELAY_PING) this._pingedMe = true; // answered by `tick`
      else if (m.t === RELAY_HELLO) for (const data of this._who.values()) this._post({ t: RELAY_PRESENCE, to: m.by, data });
      return;
    }
    if (m.t === RELAY_PING) {
      if (this._pinged <= this._heard) this._pinged = Date.now(); // another's ping counts as ours
      return;
    }
    if (m.t === RELAY_NEED || m.t === RELAY_HELLO) return;
    if (m.t === RELAY_STATUS) {
      this._heard = Date.now();
      this._hidden = m.h;
    }
    if (m.to && m.to !== this._id) return;
    if (m.t === RELAY_REPLAY) for (const f of m.frames) this._on?.(f);
    else this._on(m);
  }

  /**
   * A follower lacks what came after `from`: send it from the ring if the ring holds an
   * unbroken chain from `from` to this tab's cursor, or tell it to reload its snapshot.
   * @param {number} from
   * @param {string} by the follower
   */
  _answer(from, by) {
    if (this._at <= from) return;
    let i = this._ring.length;
    while (i && this._ring[i - 1].id > from) i--;
    const frames = this._ring.slice(i);
    const whole = frames.length && frames[0].prev <= from && /** @type {Frame} */ (this._ring.at(-1)).id === this._at;
    this._post(whole ? { t: RELAY_REPLAY, to: by, frames } : { t: RELAY_RELOAD, to: by });
  }

  _announce() {
    this._post({ t: RELAY_STATUS, at: this._at, s: this._s, h: globalThis.document?.hidden });
  }

  /** @param {Message} m */
  _post(m) {
    if (this._on) this._ch?.postMessage(m);
  }

  // --- called by Rust ---

  /**
   * This tab applied a change: keep it (one unbroken chain: a new one starts after a
   * snapshot) and, when leading, relay it.
   * @param {number} prev this tab's cursor before it
   * @param {number} id
   * @param {string} name the SSE event name
   * @param {string} data the JSON data, as received
   */
  applied(prev, id, name, data) {
    const f = { t: RELAY_FRAME, prev, id, name, data };
    if (this._ring.length && /** @type {Frame} */ (this._ring.at(-1)).id !== prev) this._ring = [];
    if (this._ring.push(f) > RING) this._ring.shift();
    this._at = id;
    if (this._leading) this._post(f);
  }

  /**
   * This tab's cursor and status, announced when leading. Its error travels as plain data
   * (an Error's own fields do not survive postMessage).
   * @param {number} at
   * @param {Status} s
   */
  status(at, s) {
    const e = s.error;
    this._at = at;
    this._s = e ? { ...s, error: { code: e.code, message: e.message, status: e.status } } : s;
    if (this._leading) this._announce();
  }

  /**
   * Ask the leader for what came after `from` (once per half second for the same `from`).
   * @param {number} from
   */
  need(from) {
    const now = Date.now();
    if (from === this._asked && now - /** @type {number} */ (this._askedAt) < 500) return;
    /** @type {number | undefined} */
    this._asked = from;
    this._askedAt = now;
    this._post({ t: RELAY_NEED, from, by: this._id });
  }

  /**
   * A `presence` message: kept, the last of each list, for tabs that join later, and relayed
   * when leading. Not a frame: it has no id, and the next one replaces it.
   * @param {string} list
   * @param {string} data the JSON data, as received
   */
  presence(list, data) {
    this._who.set(list, data);
    if (this._leading) this._post({ t: RELAY_PRESENCE, data });
  }

  /** The leader's stream said resync: every tab reloads its snapshot. */
  resync() {
    this._ring = [];
    if (this._leading) this._post({ t: RELAY_RELOAD });
  }

  /** Leave for good; `on` hears nothing more. */
  close() {
    if (!this._on) return;
    this._on = null; // before `leave`: Rust is closing and hears nothing more
    if (!this._ch) return; // it never joined
    this._leave();
    this._ch.close();
    clearInterval(this._timer);
    globalThis.document?.removeEventListener('freeze', /** @type {EventListener} */ (this._onlife));
    globalThis.document?.removeEventListener('resume', /** @type {EventListener} */ (this._onlife));
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
