// Options as JavaScript passes them, read and checked (src/options.rs documents them):
// every field optional, partial objects allowed. Throws a TidingsError `invalid_input`.
import { tidingsError } from './resources.js';

const invalid = (text) => tidingsError('invalid_input', text);
const present = (v) => v !== undefined && v !== null;
const isObject = (v) => typeof v === 'object' && v !== null;
const number = (v, what) => {
  if (!present(v)) return undefined;
  if (typeof v !== 'number') throw invalid(what);
  return v;
};

export function readOptions(value) {
  const o = present(value) ? value : {};
  if (!isObject(o)) throw invalid('options must be an object');
  let lists = null;
  if (present(o.lists)) {
    if (!Array.isArray(o.lists) || o.lists.some((l) => typeof l !== 'string')) {
      throw invalid('`lists` must be an array of list ids');
    }
    if (!o.lists.length) throw invalid('`lists` is empty: omit it to follow every list');
    lists = [...o.lists];
  }
  // Absent backoff fields are NaN: connection.js's `sanitize` puts the defaults there.
  const b = present(o.backoff) ? o.backoff : {};
  const what = '`backoff` fields must be numbers';
  const backoff = ['initialMs', 'maxMs', 'factor', 'jitter'].map((k) => number(b[k], what) ?? NaN);
  const heartbeat = number(o.heartbeatTimeoutMs, '`heartbeatTimeoutMs` must be a positive number');
  if (heartbeat !== undefined && !(Number.isFinite(heartbeat) && heartbeat > 0)) {
    throw invalid('`heartbeatTimeoutMs` must be a positive number');
  }
  if (present(o.shareConnection) && typeof o.shareConnection !== 'boolean') {
    throw invalid('`shareConnection` must be a boolean');
  }
  if (present(o.accessToken) && typeof o.accessToken !== 'string' && typeof o.accessToken !== 'function') {
    throw invalid('`accessToken` must be a string or a function');
  }
  const headers = [];
  if (present(o.headers)) {
    const what = '`headers` must be an object of strings';
    if (!isObject(o.headers)) throw invalid(what);
    for (const pair of Object.entries(o.headers)) {
      if (typeof pair[1] !== 'string') throw invalid(what);
      headers.push(pair);
    }
  }
  return {
    lists,
    backoff,
    heartbeat,
    credentials: !!o.withCredentials,
    token: present(o.accessToken) ? o.accessToken : undefined,
    headers,
    share: o.shareConnection ?? true,
    initial: present(o.initial) ? o.initial : undefined,
  };
}
