// @ts-check
// The package's classes, TodoFeed and EventStream (declared in api.d.ts): JavaScript around
// the Rust core (src/feed.rs, FeedCore), which holds the replica and the session. Here:
// options, stores and their laziness, REST calls, snapshot loads and their retries, the
// status a feed shows. `bind` receives the wasm module's exports (the build's entry module
// passes them), so this file imports nothing of the generated glue.
/** @import * as api from './api.js' */
/** @import { FeedCore, Hook } from './core.js' */
/** @import { Problem, Status } from './connection.js' */
import {
  EFFECT_LISTS,
  EFFECT_TODOS,
  HOOK_PRESENCE,
  HOOK_RESYNC,
  HOOK_STATUS,
  OP_BEGIN_LOAD,
  OP_CLOSE,
  OP_CURSOR,
  OP_INSTALL,
  OP_IS_LOADING,
  OP_STOP,
} from './codes.js';
import { capAttempt, Connection, delay, sanitize } from './connection.js';
import { readOptions } from './options.js';
import { Outbox } from './outbox.js';
import { overlayLists, overlayTodos, slug } from './overlay.js';
import { hash, userOf } from './relay.js';
import { Rest, token } from './rest.js';
import { message, tidingsError, timeout } from './resources.js';
import { LiveStore } from './store.js';

const GRACE_MS = 1000; // how long a feed without subscribers stays connected
/** @type {readonly never[]} */
const EMPTY = Object.freeze([]);
/**
 * @template T
 * @param {T} v
 * @returns {T}
 */
const freeze = (v) => (typeof v === 'object' && v !== null ? Object.freeze(v) : v);
const path = encodeURIComponent;

/**
 * When an owner's stores are wanted. Lazy like a Svelte `readable`: the owner wakes when the
 * first subscriber arrives on any of its stores and sleeps GRACE_MS after the last one left,
 * so a page navigation that unsubscribes and resubscribes keeps the connection. While
 * anything is subscribed, the stores' hooks keep the owner reachable; after that it may be
 * garbage-collected.
 */
class Demand {
  /**
   * @param {() => void} wake
   * @param {() => void} sleep
   */
  constructor(wake, sleep) {
    this._wake = wake;
    this._sleep = sleep;
    this._count = 0;
    this._awake = false;
    this._closed = false;
    /** @type {(() => void) | null} cancels the grace period's timer */
    this._grace = null;
    /** @type {LiveStore<any>[]} */
    this._stores = [];
    this._start = () => this._acquire();
    this._stop = () => this._release();
  }

  /**
   * A store of this owner.
   * @template T
   * @param {NoInfer<T>} value its first value
   * @returns {LiveStore<T>}
   */
  store(value) {
    const store = new LiveStore(value, this._start, this._stop);
    this._stores.push(store);
    return store;
  }

  _acquire() {
    if (this._closed) return;
    this._count++;
    this._grace?.();
    this._grace = null;
    if (this._count === 1 && !this._awake) {
      this._awake = true;
      this._wake();
    }
  }

  _release() {
    this._count = Math.max(0, this._count - 1);
    if (this._count || this._closed) return;
    this._grace = timeout(GRACE_MS, () => {
      this._grace = null;
      if (this._count || !this._awake) return;
      this._awake = false;
      this._sleep();
    });
  }

  /** For good: stores keep their last value and no longer call back. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._awake = false;
    this._grace?.();
    this._grace = null;
    for (const store of this._stores) store.detach();
  }
}

/**
 * A v4 UUID: `crypto.randomUUID()` where available (secure contexts), otherwise from
 * `random` (only ever an idempotency key).
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {string}
 */
export const uuid = (random = Math.random) => {
  if (random === Math.random && /** @type {Partial<Crypto> | undefined} */ (globalThis.crypto)?.randomUUID) {
    return crypto.randomUUID();
  }
  const b = Array.from({ length: 16 }, () => Math.floor(random() * 256));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = b.map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

/**
 * A problem as the connection or the leading tab reports it, as a TidingsError.
 * @param {Problem} e
 * @returns {api.TidingsError}
 */
const asError = (e) => (e instanceof Error ? e : tidingsError(e.code, e.message, e.status));

/**
 * The package's classes, on the wasm module's exports.
 * @param {{FeedCore: typeof FeedCore}} wasm
 * @returns {{TodoFeed: typeof api.TodoFeed, EventStream: typeof api.EventStream}}
 */
export function bind({ FeedCore }) {
  /**
   * The live todos of one or more lists, with REST helpers.
   *
   * A feed loads a snapshot (todos, then lists) when its stores are first wanted and applies
   * the changes after it; `initial` is shown at once instead, and only the lists are loaded.
   * A snapshot load is retried with the connection's backoff until it succeeds or the feed
   * sleeps; a refusal (401, 403, no token) continues at the cap. A feed stops, until its next
   * wake, when a list it follows does not exist (404) or goes away (`list_deleted`,
   * `list_unshared`); a feed of every list reloads when a list is shared with its user (the
   * event does not carry the list's todos).
   */
  class TodoFeed {
    /**
     * @param {string} baseUrl
     * @param {api.FeedOptions | null} [options]
     */
    constructor(baseUrl, options) {
      const o = readOptions(options);
      const base = String(baseUrl ?? '').replace(/\/+$/, '');
      const core = new FeedCore(base, o.lists ?? undefined, o.credentials, o.token, o.backoff, o.heartbeat, o.share);
      this._core = core;
      this._o = o;
      this._backoff = sanitize(o.backoff);
      this._rest = new Rest(base, o.headers, o.credentials, o.token);
      /**
       * The snapshot load in progress.
       * @type {{reload: boolean, attempt: number, error: api.TidingsError | undefined,
       *   retry: (() => void) | null} | null}
       */
      this._load = null;
      /** @type {AbortController | null} its request (or the lists' request after `initial`) */
      this._abort = null;
      /** @type {api.TidingsError | null} why loading stopped for good (until the next wake) */
      this._failed = null;
      this._gen = 0; // bumped to make a load's late answers stale
      this._closed = false;
      this._initial = false;
      if (o.initial !== undefined) {
        try {
          core.snapshot(o.initial, undefined, 'initial');
        } catch (e) {
          core.free();
          throw tidingsError('invalid_input', e.message);
        }
        this._initial = true; // shown at once; the session starts there on the first wake
      }
      const demand = new Demand(
        () => this._wake(),
        () => this._sleep(),
      );
      this._demand = demand;
      /** @type {LiveStore<readonly api.Todo[]>} */
      this._todos = demand.store(this._initial ? core.todos() : EMPTY);
      /** @type {LiveStore<readonly api.List[]>} */
      this._lists = demand.store(EMPTY);
      // (The core's status before it starts has no error to make a TidingsError.)
      /** @type {LiveStore<api.ConnectionStatus>} */
      this._status = demand.store(
        Object.freeze({ .../** @type {api.ConnectionStatus} */ (core.status()), state: 'connecting' }),
      );
      /** @type {LiveStore<api.TodoEvent | null>} */
      this._events = demand.store(null);
      /** @type {LiveStore<number>} */
      this._pending = demand.store(0);
      /** @type {LiveStore<Readonly<Record<string, api.Presence>>>} */
      this._presence = demand.store(Object.freeze({}));
      /** @type {LiveStore<readonly api.RejectedWrite[]> & api.Rejections} */
      const rejected = Object.assign(demand.store(/** @type {readonly api.RejectedWrite[]} */ (EMPTY)), {
        clear: () => rejected.set(EMPTY),
      });
      this._rejected = rejected;
      /** @param {string} list */
      this._follows = (list) => !o.lists || o.lists.includes(list);
      this._shown = false; // whether the stores show pending writes
      const tok = o.token;
      /** The token's user (its JWT's `sub`), if any: who `leaveList` removes. */
      const me = () =>
        (typeof tok === 'function' ? token(tok, false).catch(() => undefined) : Promise.resolve(tok)).then((t) => t && userOf(t));
      this._outbox = new Outbox(
        this._rest,
        this._backoff,
        // One outbox per server and user (hashed, as the relay's group).
        () => me().then((u) => `tidings/outbox ${new URL(`${base}/api`, location.href).href} ${hash(`${o.credentials}:${u}`)}`),
        me,
        (online) => {
          if (online) this._retryNow();
          this._show(false, false);
          this._publishStatus();
        },
        (write, error) => rejected.set(Object.freeze([...rejected.get(), Object.freeze({ write, error })])),
      );
      /**
       * What FeedCore tells while started (it holds it only then): a change, a resync (the
       * changes since our snapshot cannot be had: start over from a new one), a status, who
       * is on a list (kept until the next message of that list replaces it, also while
       * disconnected: the last known is the best guess, and the stream tells the current
       * presence as soon as it is back).
       * @type {Hook}
       */
      this._hook = (what, effect, event) => {
        if (what === HOOK_RESYNC) return this._loadSnapshot(true);
        if (what === HOOK_PRESENCE) {
          const { list_id: list, users, anonymous } = event;
          return this._presence.set(freeze({ ...this._presence.get(), [list]: freeze({ users: freeze(users), anonymous }) }));
        }
        if (what === HOOK_STATUS) {
          // The stream was refused with 404: a followed list is gone (deleted while this
          // feed was away). Retrying cannot help, as with a snapshot's 404: stop, saying so.
          const error = core.status().error;
          if (error?.status === 404 && !this._failed) this._stop(asError(error));
          return this._publishStatus();
        }
        const { type, list_id: id, list } = event;
        const followed = o.lists?.includes(id);
        // A feed of every list gets no todos with a list newly shared: load them.
        const shared = type === 'list_shared' && !o.lists && !this._lists.get().some((l) => l.id === list.id);
        this._show(effect & EFFECT_TODOS, effect & EFFECT_LISTS);
        this._events.set(event);
        // A followed list went away: stop, saying why (a later wake tries again from scratch).
        if (followed && type === 'list_deleted') this._stop(tidingsError(type, 'this list was deleted'));
        else if (followed && type === 'list_unshared') this._stop(tidingsError(type, 'this list is no longer shared with you'));
        else if (shared) this._loadSnapshot(true);
      };
    }

    // --- the API: api.d.ts says what each member does ---

    get todos() {
      return this._todos;
    }

    get lists() {
      return this._lists;
    }

    get status() {
      return this._status;
    }

    get events() {
      return this._events;
    }

    get lastEventId() {
      return Math.max(this._core.op(OP_CURSOR), 0);
    }

    get pending() {
      return this._pending;
    }

    get rejected() {
      return this._rejected;
    }

    get presence() {
      return this._presence;
    }

    /**
     * @param {string} title
     * @param {api.CreateOptions | null} [options]
     */
    create(title, options) {
      const list = options?.list ?? this._o.lists?.[0] ?? 'inbox';
      const id = options?.id ?? uuid();
      return this._write({ kind: 'create', list, id, body: { title, id } });
    }

    /**
     * @param {string} id
     * @param {api.TodoPatch} patch
     */
    update(id, patch) {
      return this._write({ kind: 'update', id, body: patch });
    }

    /** @param {string} id */
    remove(id) {
      return this._write({ kind: 'remove', id });
    }

    /**
     * @param {string} title
     * @param {string | null} [id]
     */
    createList(title, id) {
      return this._write({ kind: 'createList', list: id ?? slug(String(title)), body: id == null ? { title } : { title, id } });
    }

    /** @param {string} list */
    deleteList(list) {
      return this._write({ kind: 'deleteList', list });
    }

    /**
     * @param {string} list
     * @param {string} title
     */
    renameList(list, title) {
      return this._write({ kind: 'renameList', list, body: { title } });
    }

    /**
     * @param {string} id
     * @param {api.MoveTo} to
     */
    move(id, { after, list }) {
      return this._write({ kind: 'move', id, body: { after, list_id: list ?? undefined } });
    }

    /** @param {string} list */
    leaveList(list) {
      return this._write({ kind: 'leaveList', list });
    }

    /** @param {string} list */
    clearCompleted(list) {
      return this._write({ kind: 'clearCompleted', list }).then((v) => v.deleted);
    }

    /** @param {string} list */
    members(list) {
      return this._rest.send('GET', `/api/lists/${path(list)}/members`).then((v) => v.members);
    }

    /**
     * @param {string} list
     * @param {string} user
     * @param {api.MemberRole} role
     */
    addMember(list, user, role) {
      return this._write({ kind: 'addMember', list, user, body: { role } });
    }

    /**
     * @param {string} list
     * @param {string} user
     */
    removeMember(list, user) {
      return this._write({ kind: 'removeMember', list, user });
    }

    close() {
      this._cancelLoad();
      this._outbox.close();
      this._core.op(OP_CLOSE);
      this._demand.close();
      this._closed = true;
      this._publishStatus();
    }

    free() {
      this._cancelLoad();
      this._outbox.close();
      this._demand.close();
      this._core.free();
    }

    [Symbol.dispose]() {
      this.free();
    }

    // --- writes ---

    /**
     * Into the outbox: shown at once, sent in order, retried until the server answers.
     * @param {Omit<api.PendingWrite, 'key' | 'at'>} write
     * @returns {Promise<any>}
     */
    _write(write) {
      if (this._closed) return Promise.reject(tidingsError('closed', 'this feed is closed'));
      return this._outbox.add(write, uuid());
    }

    /**
     * Publish the todos (when `todos`, or when pending writes change them) and the lists
     * (likewise), each with the pending writes over what the stream applied; forget the
     * writes the stream has applied first, and publish how many are pending.
     * @param {number | boolean} todos
     * @param {number | boolean} lists
     */
    _show(todos, lists) {
      const core = this._core;
      const box = this._outbox;
      const pruned = box.prune(core.op(OP_CURSOR));
      const over = box.writes.length > 0;
      const all = pruned || over || this._shown;
      this._shown = over;
      if (todos || all) this._todos.set(overlayTodos(core.todos(), box.writes, this._follows));
      if (lists || all) this._lists.set(overlayLists(core.lists(), box.writes));
      const n = box.pending;
      if (n !== this._pending.get()) this._pending.set(n);
    }

    /** Back online: a snapshot load waiting for its retry tries now. */
    _retryNow() {
      const load = this._load;
      if (!load?.retry) return;
      load.retry();
      load.retry = null;
      this._attempt();
    }

    // --- lifecycle ---

    /** The first subscriber arrived: connect, loading a snapshot first unless the core can resume. */
    _wake() {
      const core = this._core;
      this._outbox.start();
      if (this._initial) {
        this._initial = false;
        // The replica already holds its todos (see the constructor); the lists come first,
        // then it is installed.
        core.op(OP_BEGIN_LOAD);
        core.start(this._hook);
        this._loadLists(true);
      } else if (core.op(OP_CURSOR) >= 0 && !core.op(OP_IS_LOADING) && !this._failed) {
        core.start(this._hook);
      } else {
        // Listen first, then read the snapshot: src/session.rs says why this order closes
        // every gap.
        core.op(OP_BEGIN_LOAD);
        core.start(this._hook);
        this._loadSnapshot(false);
      }
      this._publishStatus();
    }

    /** The last subscriber left a while ago: disconnect, keeping the cursor. */
    _sleep() {
      this._cancelLoad();
      this._core.op(OP_STOP);
      this._publishStatus();
    }

    /** The status store's value: the session's, or the snapshot load's while loading. */
    _publishStatus() {
      // Its error is made a TidingsError first thing.
      const s = /** @type {api.ConnectionStatus} */ (this._core.status());
      if (s.error) s.error = asError(s.error);
      const load = this._load;
      if (load) {
        s.state = load.attempt === 0 && !load.reload ? 'connecting' : 'reconnecting';
        s.attempt = load.attempt;
        if (load.error) s.error = load.error;
        else delete s.error;
      } else if (this._failed) {
        s.state = 'closed';
        s.error = this._failed;
      } else if (this._closed) {
        s.state = 'closed';
      }
      if (s.state !== 'closed' && globalThis.navigator?.onLine === false) s.state = 'offline';
      this._status.set(Object.freeze(s));
    }

    _cancelLoad() {
      this._gen++;
      this._load?.retry?.();
      this._load = null;
      this._abort?.abort();
      this._abort = null;
    }

    _snapshotPath() {
      const lists = this._o.lists;
      if (lists?.length === 1) return `/api/lists/${path(lists[0])}/todos`;
      return lists ? `/api/todos?${lists.map((l) => `list=${path(l)}`).join('&')}` : '/api/todos';
    }

    /**
     * Fetch the snapshot (todos, then lists) and install it in the core, which keeps what
     * arrives meanwhile. Retries until it succeeds or the feed sleeps.
     * @param {boolean} reload a snapshot was shown before (the status says `reconnecting`)
     */
    _loadSnapshot(reload) {
      this._cancelLoad();
      this._failed = null;
      this._core.op(OP_BEGIN_LOAD);
      this._load = { reload, attempt: 0, error: undefined, retry: null };
      this._publishStatus();
      this._attempt();
    }

    async _attempt() {
      const gen = this._gen;
      const abort = new AbortController();
      this._abort = abort;
      const at = this._snapshotPath();
      let todos;
      let lists;
      try {
        // Todos first, then lists: the lists are then at least as new as the todos, and the
        // changes after the todos' id, applied on top, make both exact (src/feed.rs).
        todos = await this._rest.send('GET', at, undefined, abort.signal);
        lists = await this._rest.send('GET', '/api/lists', undefined, abort.signal);
      } catch (error) {
        if (gen === this._gen) this._retryLoad(error);
        return;
      }
      if (gen !== this._gen) return;
      this._abort = null;
      let listsChanged;
      try {
        listsChanged = this._core.snapshot(todos, lists, at);
      } catch (error) {
        this._retryLoad(error);
        return;
      }
      this._load = null;
      this._show(true, listsChanged);
      // Applies what arrived while loading (publishing as it goes), then streams.
      this._core.op(OP_INSTALL);
      this._publishStatus();
    }

    /** @param {api.TidingsError} error */
    _retryLoad(error) {
      this._abort = null;
      const load = this._load;
      if (!load) return;
      if (error.status === 404) {
        // A list that does not exist: retrying cannot help. Say so and stop; a later wake
        // tries again. The sidebar still gets its lists.
        this._load = null;
        this._stop(error);
        this._loadLists(false);
        return;
      }
      load.attempt++;
      // A refusal (or no token to send) continues at the cap: retrying sooner would only
      // hammer the server.
      if (error.status === 401 || error.status === 403 || error.code === 'unauthorized') {
        load.attempt = Math.max(load.attempt, capAttempt(this._backoff));
      }
      load.error = error;
      this._publishStatus();
      const gen = this._gen;
      load.retry = timeout(delay(this._backoff, load.attempt), () => {
        load.retry = null;
        if (gen === this._gen) this._attempt();
      });
    }

    /**
     * Stopped for good, until the next wake.
     * @param {api.TidingsError} error why
     */
    _stop(error) {
      this._failed = error;
      this._core.op(OP_STOP);
      this._publishStatus();
    }

    /**
     * The lists alone: when the todos came from `initial` (which has none; the core holds
     * back changes meanwhile and is then installed), or for the sidebar of a feed whose lists
     * do not exist. Aborted like a load.
     * @param {boolean} install then install the core's snapshot
     */
    _loadLists(install) {
      const gen = this._gen;
      const abort = new AbortController();
      this._abort = abort;
      this._rest
        .send('GET', '/api/lists', undefined, abort.signal)
        .catch(() => undefined)
        .then((value) => {
          if (gen !== this._gen) return;
          this._abort = null;
          // Without lists (an error) the feed goes on: they are the sidebar's, not the todos'.
          if (value && this._core.setLists(value)) this._show(false, true);
          if (install) {
            this._core.op(OP_INSTALL);
            this._publishStatus();
          }
        });
    }
  }

  /** Any Server-Sent Events endpoint, with the same reconnection, as stores of parsed JSON. */
  class EventStream {
    /**
     * @param {string} url
     * @param {api.StreamOptions | null} [options]
     */
    constructor(url, options) {
      const o = readOptions(options);
      /** @type {Map<string, LiveStore<unknown>>} */
      this._selected = new Map();
      this._demand = new Demand(
        () => this._conn.start(),
        () => this._conn.stop(),
      );
      /** @type {LiveStore<api.ConnectionStatus>} */
      this._status = this._demand.store(
        Object.freeze({ state: 'closed', attempt: 0, lastEventId: null, role: 'own' }),
      );
      this._conn = new Connection(
        String(url),
        o.credentials,
        o.token,
        o.heartbeat,
        '',
        o.backoff,
        (name, data) =>
          name === undefined
            ? this._publish(/** @type {Status} */ (data))
            : this._message(name, /** @type {string} */ (data)),
      );
    }

    /** @param {string} name */
    select(name) {
      let store = this._selected.get(name);
      if (!store) {
        store = this._demand.store(null);
        this._selected.set(name, store);
        this._conn.listen(name);
      }
      return store;
    }

    get status() {
      return this._status;
    }

    get lastEventId() {
      return this._conn.lastEventId ?? undefined;
    }

    close() {
      this._conn.close();
      this._demand.close();
    }

    /**
     * @param {string} name
     * @param {string} data
     */
    _message(name, data) {
      const store = this._selected.get(name);
      if (!store) return;
      let value;
      try {
        value = JSON.parse(data);
      } catch (e) {
        const text = `could not decode ${name}: not JSON: ${message(e)}`;
        console.warn(`tidings: ${text}`);
        this._conn.report('decode_error', text);
        return;
      }
      store.set(freeze(value));
    }

    /** @param {Status} status the connection's */
    _publish({ state, attempt, error }) {
      /** @type {api.ConnectionStatus} */
      const s = { state, attempt, lastEventId: this._conn.lastEventId, role: 'own' };
      if (error) s.error = asError(error);
      this._status.set(Object.freeze(s));
    }
  }

  return { TodoFeed, EventStream };
}
