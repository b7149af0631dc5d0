// @ts-check
// The options of `TodoFeed` and `EventStream` (FeedOptions, StreamOptions in api.d.ts) as
// JavaScript passes them, read and checked: every field optional, partial objects allowed.
/** @import { AccessToken, FeedOptions, TodosSnapshot } from './api.js' */
import { tidingsError } from './resources.js';

/**
 * Options as the scripts and `FeedCore` take them.
 * @typedef {object} Options
 * @property {string[] | null} lists the lists to follow; `null`: every list
 * @property {number[]} backoff `[initialMs, maxMs, factor, jitter]`, NaN where absent
 *   (connection.js's `sanitize` puts the defaults there)
 * @property {number | undefined} heartbeat `heartbeatTimeoutMs`
 * @property {boolean} credentials `withCredentials`
 * @property {AccessToken | undefined} token `accessToken`
 * @property {[string, string][]} headers `headers`, as pairs
 * @property {boolean} share `shareConnection`
 * @property {TodosSnapshot | undefined} initial
 */

/** @param {string} text */
const invalid = (text) => tidingsError('invalid_input', text);
/** @param {unknown} v */
const present = (v) => v !== undefined && v !== null;
/**
 * @param {unknown} v
 * @returns {v is Record<string, any>}
 */
const isObject = (v) => typeof v === 'object' && v !== null;
/**
 * @param {unknown} v
 * @param {string} what the error's message when `v` is there but not a number
 */
const number = (v, what) => {
  if (!present(v)) return undefined;
  if (typeof v !== 'number') throw invalid(what);
  return v;
};

/**
 * Read the options argument of a constructor; `FeedOptions` is the wider of the two.
 * @param {unknown} value as the application passed it
 * @returns {Options}
 * @throws {TidingsError} `invalid_input`, saying which option is wrong
 */
export function readOptions(value) {
  const o = /** @type {FeedOptions} */ (present(value) ? value : {});
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
  const b = /** @type {Record<string, unknown>} */ (present(o.backoff) ? o.backoff : {});
  const notNumbers = '`backoff` fields must be numbers';
  const backoff = ['initialMs', 'maxMs', 'factor', 'jitter'].map((k) => number(b[k], notNumbers) ?? NaN);
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
  /** @type {[string, string][]} */
  const headers = [];
  if (present(o.headers)) {
    const notStrings = '`headers` must be an object of strings';
    if (!isObject(o.headers)) throw invalid(notStrings);
    for (const pair of Object.entries(o.headers)) {
      if (typeof pair[1] !== 'string') throw invalid(notStrings);
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
