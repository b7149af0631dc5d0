// A readable store with the Svelte store contract, fed from Rust.
//
// `subscribe(run)` calls `run` at once with the current value and returns an unsubscribe
// function, so `$store` works in Svelte and `useSyncExternalStore(store.subscribe, store.get)`
// works in React. The first subscriber calls `start`, the last one to leave calls `stop`:
// that is how a feed opens its stream lazily. Rust calls `set` and, when the feed is
// dropped, `detach`, after which the store keeps its last value and never calls back.
export class LiveStore {
  constructor(value, start, stop) {
    this._value = value;
    this._subs = new Set();
    this._start = start;
    this._stop = stop;
    this.subscribe = this.subscribe.bind(this);
    this.get = this.get.bind(this);
  }

  get() {
    return this._value;
  }

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

  detach() {
    this._start = null;
    this._stop = null;
  }
}

// A subscriber that throws must not break the stream or the other subscribers: report it
// the way the browser reports an exception in an event listener.
function call(sub, value) {
  try {
    sub.run(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
