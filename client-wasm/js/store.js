// @ts-check
// A readable store with the Svelte store contract (the `Readable<T>` of api.d.ts), which
// feed.js sets.
/** @import { Readable } from './api.js' */

/**
 * `subscribe(run)` calls `run` at once with the current value and returns an unsubscribe
 * function, so `$store` works in Svelte and `useSyncExternalStore(store.subscribe, store.get)`
 * works in React. The first subscriber calls `start`, the last one to leave calls `stop`:
 * that is how a feed opens its stream lazily. After `detach` (the feed is closed) the store
 * keeps its last value and never calls back.
 * @template T
 * @implements {Readable<T>}
 */
export class LiveStore {
  /**
   * @param {T} value
   * @param {(() => void) | null} start
   * @param {(() => void) | null} stop
   */
  constructor(value, start, stop) {
    this._value = value;
    /** @type {Set<{run: (value: T) => void}>} */
    this._subs = new Set();
    this._start = start;
    this._stop = stop;
    this.subscribe = this.subscribe.bind(this);
    this.get = this.get.bind(this);
  }

  get() {
    return this._value;
  }

  /**
   * @param {(value: T) => void} run
   * @returns {() => void}
   */
  subscribe(run) {
    if (typeof run !== 'function') {
      throw new TypeError('subscribe(run): run must be a function');
    }
    const sub = { run };
    this._subs.add(sub);
    if (this._subs.size === 1 && this._start) this._start();
    if (this._subs.has(sub)) call(sub, this._value);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this._subs.delete(sub);
      if (this._subs.size === 0 && this._stop) this._stop();
    };
  }

  /** @param {T} value */
  set(value) {
    this._value = value;
    // A subscriber may unsubscribe others (or itself) while we call them.
    for (const sub of Array.from(this._subs)) {
      if (this._subs.has(sub)) call(sub, value);
    }
  }

  get subscriberCount() {
    return this._subs.size;
  }

  /** For good: the store keeps its value and no longer calls `start` or `stop`. */
  detach() {
    this._start = null;
    this._stop = null;
  }
}

/**
 * A subscriber that throws must not break the stream or the other subscribers: report it
 * the way the browser reports an exception in an event listener.
 * @template T
 * @param {{run: (value: T) => void}} sub
 * @param {T} value
 */
function call(sub, value) {
  try {
    sub.run(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
