// @ts-check
// The outbox: a feed's writes, from the moment they are made until the server has them. Kept
// in IndexedDB (one database per server and user, so per origin too), in order; sent one at a
// time, each with the idempotency key it was stored with, by one tab of the browser (the
// holder of a Web Lock), so a write resent after a crash, a reload or a lost answer is applied
// once. The tabs of one user tell each other on a BroadcastChannel what was added and what the
// server answered, so each shows every pending write. README "Instant and offline writes".
//
// IndexedDB commits later than a page may go away: a transaction still open when the user
// reloads or closes the tab is aborted. So each write is also journaled in localStorage,
// which writes at once, until its IndexedDB transaction has committed; whoever loads the
// outbox next moves what the journal holds into IndexedDB. (Where IndexedDB is missing, the
// journal is the outbox.)
/** @import * as api from './api.js' */
/** @import { Rest } from './rest.js' */
import { delay } from './connection.js';
import { held, listen, timeout, tidingsError } from './resources.js';

/**
 * A write in the outbox, as IndexedDB keeps it; `ev` (in memory only) is the event id of its
 * answer, once the server has it.
 * @typedef {{-readonly [K in keyof api.PendingWrite]: api.PendingWrite[K]} & {n: number, ev?: number}} Entry
 */

/**
 * A message between the tabs: `a` a write was added (`w`); `k` the server has write `key`
 * (`ev`, `value`: its answer); `r` the server refused it for good (`error`).
 * @typedef {{t: 'a', w: Entry} | {t: 'k', key: string, ev: number, value: unknown}
 *   | {t: 'r', key: string, error: {code: string, message: string, status?: number}}} Message
 */

const STORE = 'w';
const path = encodeURIComponent;

/**
 * The request a write stands for.
 * @param {Entry} w
 * @returns {[string, string]} method and path
 */
const route = ({ kind, id = '', list = '', user = '' }) => {
  const todo = `/api/todos/${path(id)}`;
  const ofList = `/api/lists/${path(list)}`;
  const member = `${ofList}/members/${path(user)}`;
  return /** @type {Record<string, [string, string]>} */ ({
    create: ['POST', `${ofList}/todos`],
    update: ['PATCH', todo],
    remove: ['DELETE', todo],
    createList: ['POST', '/api/lists'],
    deleteList: ['DELETE', ofList],
    addMember: ['PUT', member],
    removeMember: ['DELETE', member],
    renameList: ['PATCH', ofList],
    move: ['PATCH', todo],
    leaveList: ['DELETE', member],
    clearCompleted: ['DELETE', `${ofList}/todos?done=true`],
  })[kind];
};

/**
 * Whether sending again may succeed: no answer, a server error, 408, 429, or no token to
 * send (the application may sign in again). Any other 4xx is final.
 * @param {api.TidingsError} e
 */
const transient = (e) =>
  e.status ? e.status >= 500 || e.status === 408 || e.status === 429 : e.code === 'network_error' || e.code === 'unauthorized';

/**
 * An IndexedDB request as a promise.
 * @template T
 * @param {IDBRequest<T>} r
 * @returns {Promise<T>}
 */
const done = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

let last = 0; // the order of the last write made in this tab

/** The outbox of one feed: its part of the writes of one server and user. */
export class Outbox {
  /**
   * @param {Rest} rest sends the writes
   * @param {number[]} backoff the feed's (sanitized): the wait between attempts
   * @param {() => Promise<string>} scope names the database, the lock and the channel
   *   (asked at `start`)
   * @param {() => Promise<string | undefined>} me the user, whom `leaveList` removes (asked
   *   when it is sent)
   * @param {(online?: boolean) => void} changed the writes or the browser's network state
   *   changed (`online`: the browser is back online)
   * @param {(write: api.PendingWrite, error: api.TidingsError) => void} refused a write was
   *   refused for good (in whichever tab sent it)
   */
  constructor(rest, backoff, scope, me, changed, refused) {
    /** @type {Entry[]} every write not yet applied by the feed's stream, in order */
    this.writes = [];
    this._rest = rest;
    this._backoff = backoff;
    this._scope = scope;
    this._me = me;
    this._changed = changed;
    this._refused = refused;
    /** @type {Map<string, {resolve: (value: any) => void, reject: (error: any) => void}>} */
    this._promises = new Map();
    /** @type {Promise<IDBDatabase | null> | null} the database, once started (null: memory only) */
    this._db = null;
    /** @type {BroadcastChannel | null} */
    this._ch = null;
    /** @type {string | null} the database's name, once known */
    this._name = null;
    /** @type {(() => void)[]} releases what it holds */
    this._drop = [];
    this._lead = false; // this tab sends
    this._busy = false;
    this._closed = false;
    this._attempt = 0;
    /** @type {(() => void) | null} ends the wait before the next attempt */
    this._now = null;
  }

  /** How many writes the server does not have yet. */
  get pending() {
    return this.writes.reduce((n, w) => n + (w.ev === undefined ? 1 : 0), 0);
  }

  /** Open the database, the channel and the lock (once; at a feed's wake or first write). */
  start() {
    if (this._db || this._closed) return;
    /** @param {Event} e */
    const net = (e) => {
      const online = e.type === 'online';
      if (online) this._now?.();
      this._changed(online);
    };
    if (globalThis.window) this._drop.push(listen(window, 'online', net), listen(window, 'offline', net));
    // (Not thrown at the caller: without a browser, as during SSR, the outbox is memory.)
    this._db = Promise.resolve()
      .then(this._scope)
      .then((name) => this._join(name))
      .catch(() => null);
  }

  /**
   * Queue a write: shown at once (the feed's overlay), sent when this tab leads.
   * @param {Omit<api.PendingWrite, 'key' | 'at'>} write
   * @param {string} key its idempotency key
   * @returns {Promise<any>} the server's answer, or its refusal
   */
  add(write, key) {
    this.start();
    const now = Date.now();
    last = Math.max(now, last + 0.001);
    /** @type {Entry} */
    const w = { ...write, key, at: now, n: last };
    const promise = new Promise((resolve, reject) => this._promises.set(key, { resolve, reject }));
    this._insert(w);
    this._journal(w);
    this._changed();
    /** @type {Promise<IDBDatabase | null>} */ (this._db)
      .then((db) => db && done(db.transaction(STORE, 'readwrite').objectStore(STORE).put(w)).then(() => this._unjournal(key)))
      .catch(() => undefined) // refused (quota): it stays in the journal, or in memory
      .then(() => {
        this._post({ t: 'a', w });
        this._flush();
      });
    return promise;
  }

  /**
   * Forget the writes the feed's stream has applied (their event id is at most `cursor`).
   * @param {number} cursor
   * @returns {boolean} whether any was forgotten
   */
  prune(cursor) {
    const before = this.writes.length;
    this.writes = this.writes.filter((w) => !(w.ev !== undefined && w.ev <= cursor));
    return this.writes.length !== before;
  }

  /** Release everything; writes not yet sent stay in the database for the next tab. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._now?.();
    for (const drop of this._drop.splice(0)) drop();
  }

  /**
   * @param {string} name
   * @returns {Promise<IDBDatabase | null>}
   */
  async _join(name) {
    this._name = name;
    for (const w of this.writes) this._journal(w); // made before the name was known
    /** @type {IDBDatabase | null} */
    let db = null;
    try {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: 'key' });
      db = await done(open);
    } catch {
      // No IndexedDB (some private modes, a sandboxed frame): the outbox lives in memory.
    }
    if (this._closed) {
      db?.close();
      return null;
    }
    if (db) {
      const d = db;
      this._drop.push(() => d.close());
    }
    await this._load(db).catch(() => undefined);
    if (this._closed) return null;
    if (typeof BroadcastChannel === 'function') {
      const ch = new BroadcastChannel(name);
      held(1);
      ch.onmessage = (e) => this._heard(e.data);
      this._ch = ch;
      this._drop.push(() => {
        ch.close();
        held(-1);
      });
    }
    const locks = globalThis.navigator?.locks;
    if (!locks?.request) {
      // Every tab sends: a write two tabs send is still applied once (its key).
      this._lead = true;
      this._flush();
      return db;
    }
    /** @type {(() => void) | null} leaves the lock or its queue */
    let leave = null;
    const queue = () => {
      const abort = new AbortController();
      /** @type {() => void} */
      let release = () => {};
      const hold = new Promise((resolve) => (release = () => resolve(undefined)));
      held(1);
      leave = () => {
        leave = null;
        this._lead = false;
        abort.abort();
        release();
        held(-1);
      };
      locks
        .request(name, { signal: abort.signal }, async () => {
          if (this._closed || !leave) return;
          this._lead = true;
          // What the last sender left unsent, or other tabs added meanwhile.
          await this._load(db).catch(() => undefined);
          this._flush();
          await hold;
        })
        .catch(() => undefined); // left before it was granted
    };
    queue();
    // Before the browser freezes a (hidden) tab it says so: another tab sends meanwhile.
    const doc = globalThis.document;
    if (doc) {
      this._drop.push(
        listen(doc, 'freeze', () => leave?.()),
        listen(doc, 'resume', () => leave || queue()),
      );
    }
    this._drop.push(() => leave?.());
    return db;
  }

  /**
   * Add what the database and the journal hold and memory does not; move the journal's
   * entries into the database.
   * @param {IDBDatabase | null} db
   */
  async _load(db) {
    const prefix = `${this._name}\n`;
    /** @type {Entry[]} */
    const journaled = [];
    try {
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (k?.startsWith(prefix)) journaled.push(JSON.parse(/** @type {string} */ (localStorage.getItem(k))));
      }
    } catch {
      // No localStorage (or a broken entry): IndexedDB alone.
    }
    const store = db?.transaction(STORE).objectStore(STORE);
    const stored = store ? /** @type {Entry[]} */ (await done(store.getAll())) : [];
    if (this._closed) return;
    for (const w of [...stored, ...journaled]) this._insert(w);
    if (db) {
      for (const w of journaled) {
        await done(db.transaction(STORE, 'readwrite').objectStore(STORE).put(w));
        this._unjournal(w.key);
      }
    }
    if (stored.length || journaled.length) this._changed();
  }

  /**
   * Keep `w` in localStorage until IndexedDB has it.
   * @param {Entry} w
   */
  _journal(w) {
    try {
      if (this._name && w.ev === undefined) localStorage.setItem(`${this._name}\n${w.key}`, JSON.stringify(w));
    } catch {
      // Full or missing: IndexedDB alone.
    }
  }

  /** @param {string} key */
  _unjournal(key) {
    try {
      localStorage.removeItem(`${this._name}\n${key}`);
    } catch {
      // Missing: nothing to remove.
    }
  }

  /** @param {Entry} w */
  _insert(w) {
    const writes = this.writes;
    if (writes.some((x) => x.key === w.key)) return;
    const at = writes.findIndex((x) => x.n > w.n);
    writes.splice(at < 0 ? writes.length : at, 0, w);
  }

  /** @param {Message} m */
  _post(m) {
    try {
      this._ch?.postMessage(m);
    } catch {
      // Closed meanwhile.
    }
  }

  /**
   * A message from another tab, or this tab's own outcome.
   * @param {Message} m
   */
  _heard(m) {
    if (this._closed) return;
    if (m.t === 'a') {
      this._insert(m.w);
      this._changed();
      this._flush();
      return;
    }
    const at = this.writes.findIndex((w) => w.key === m.key);
    const w = this.writes[at];
    const promise = this._promises.get(m.key);
    this._promises.delete(m.key);
    if (m.t === 'k') {
      // Kept, shown, until the stream has applied its event (the feed prunes it then).
      if (w && m.ev) w.ev = m.ev;
      else if (w) this.writes.splice(at, 1);
      promise?.resolve(m.value);
    } else {
      const { code, message, status } = m.error;
      const error = tidingsError(code, message, status);
      if (w) this.writes.splice(at, 1);
      promise?.reject(error);
      if (w) {
        const write = /** @type {Partial<Entry>} */ ({ ...w });
        delete write.n;
        delete write.ev;
        this._refused(/** @type {api.PendingWrite} */ (Object.freeze(write)), error);
      }
    }
    this._changed();
  }

  /** Send the writes in order, while this tab leads; one at a time. */
  async _flush() {
    if (this._busy || !this._lead || this._closed) return;
    this._busy = true;
    try {
      for (let w; this._lead && !this._closed && (w = this.writes.find((x) => x.ev === undefined)); ) {
        /** @type {Message} */
        let m;
        // The browser says it is offline: nothing to try until it says `online` (which ends
        // the pause), and no request that a half-applied offline state could still let out.
        if (globalThis.navigator?.onLine === false) {
          await this._pause(undefined);
          continue;
        }
        try {
          const [method, at] = route(w.kind === 'leaveList' ? { ...w, user: await this._me() } : w);
          const { value, ev } = await this._rest.write(method, at, w.body, w.key);
          m = { t: 'k', key: w.key, ev, value };
        } catch (e) {
          if (this._closed) return;
          if (transient(e)) {
            await this._pause(e.retryAfter);
            continue;
          }
          m = { t: 'r', key: w.key, error: { code: e.code, message: e.message, status: e.status } };
        }
        // Closed meanwhile: the write stays stored, and the next sender gets this answer again.
        if (this._closed) return;
        this._attempt = 0;
        try {
          const db = await this._db;
          if (db) await done(db.transaction(STORE, 'readwrite').objectStore(STORE).delete(w.key));
        } catch {
          // Closed meanwhile, or refused: resent later, answered again, as above.
        }
        this._unjournal(w.key);
        this._post(m);
        this._heard(m);
      }
    } finally {
      this._busy = false;
    }
  }

  /**
   * Wait before the next attempt: `Retry-After`, else the backoff; the `online` event and
   * `close()` end the wait at once.
   * @param {number | undefined} after seconds
   */
  _pause(after) {
    this._attempt = Math.min(this._attempt + 1, 64);
    const ms = after && after > 0 ? after * 1000 : delay(this._backoff, this._attempt);
    return new Promise((resolve) => {
      const cancel = timeout(ms, () => this._now?.());
      this._now = () => {
        this._now = null;
        cancel();
        resolve(undefined);
      };
    });
  }
}
