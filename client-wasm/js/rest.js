// @ts-check
// REST calls: `fetch` with JSON in and out, and the `accessToken` option. In JavaScript
// because a `fetch` with a few headers is a few lines here and several kilobytes of wasm
// (README "Package size"); src/http.rs is Rust's handle on it (the Rust API).
//
// Every failure is a TidingsError (resources.js): `invalid_input` (a header, body or URL the
// browser refuses), `network_error` (no answer: server down, network gone, CORS refused), the
// server's own `code` and `status` from its JSON error body (`http_<status>` without one),
// `decode_error` (a 2xx answer that is not JSON), `unauthorized` (no token to send).
/** @import { AccessToken } from './api.js' */
import { message, tidingsError } from './resources.js';

/**
 * The `accessToken` option's value for one request or one connect (connection.js). A
 * function is asked every time, so an application that refreshes its tokens never has to
 * tell the client; `refresh` is `true` when the server has just refused the token it gave
 * (a 401), so a cached token must not be given again, and the refused request is sent once
 * more with the fresh one.
 * @param {AccessToken} source
 * @param {boolean} refresh
 * @returns {Promise<string>}
 * @throws {TidingsError} `unauthorized` when a function throws, rejects or gives something
 *   other than a non-empty string
 */
export async function token(source, refresh) {
  let value;
  try {
    value = typeof source === 'function' ? await source({ refresh }) : source;
  } catch (e) {
    throw tidingsError('unauthorized', `accessToken gave no token: ${message(e)}`);
  }
  if (typeof value !== 'string' || !value) throw tidingsError('unauthorized', 'accessToken gave no token');
  return value;
}

/**
 * The error a non-2xx response stands for, from its JSON error body when it has one.
 * @param {Response} res
 */
export const httpError = async (res) => {
  const error = (await res.json().catch(() => null))?.error ?? {};
  return tidingsError(
    typeof error.code === 'string' ? error.code : `http_${res.status}`,
    typeof error.message === 'string' ? error.message : res.statusText,
    res.status,
  );
};

/** Requests to one server, with the options a feed gives all of them. */
export class Rest {
  /**
   * @param {string} base the server (`""`: the page's origin)
   * @param {[string, string][]} headers sent with every request (the `headers` option)
   * @param {boolean} withCredentials cookies cross-origin too
   * @param {AccessToken | undefined} accessToken sent as `Authorization: Bearer`
   */
  constructor(base, headers, withCredentials, accessToken) {
    this._base = base;
    this._headers = headers;
    this._credentials = withCredentials;
    this._token = accessToken;
  }

  /**
   * `method path`, with `body` as JSON. A token function is asked for a token for each
   * request; a 401 asks it once more (`refresh`) and resends.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {AbortSignal} [signal]
   * @returns {Promise<any>} the parsed JSON body of a 2xx answer (`undefined` for 204)
   * @throws {TidingsError}
   */
  async send(method, path, body, signal) {
    return (await this.write(method, path, body, undefined, signal)).value;
  }

  /**
   * `send`, with an `Idempotency-Key`; also says which event the write produced.
   * @param {string} method
   * @param {string} path
   * @param {unknown} body
   * @param {string} [key] the `Idempotency-Key`
   * @param {AbortSignal} [signal]
   * @returns {Promise<{value: any, ev: number}>} the answer's body, and its
   *   `Tidings-Event-Id` (0 without one)
   * @throws {TidingsError} with `retryAfter` (seconds) when the answer has `Retry-After`
   */
  async write(method, path, body, key, signal) {
    let res;
    for (let refresh = false; ; refresh = true) {
      res = await this._fetch(method, path, body, signal, refresh, key);
      if (res.status !== 401 || refresh || typeof this._token !== 'function') break;
    }
    if (!res.ok) {
      const error = await httpError(res);
      const after = Number(res.headers.get('retry-after'));
      if (after > 0) error.retryAfter = after;
      throw error;
    }
    const ev = Number(res.headers.get('tidings-event-id')) || 0;
    if (res.status === 204) return { value: undefined, ev };
    try {
      return { value: await res.json(), ev };
    } catch (e) {
      throw tidingsError('decode_error', `could not decode ${path}: ${message(e)}`);
    }
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} body
   * @param {AbortSignal | undefined} signal
   * @param {boolean} refresh
   * @param {string} [key]
   */
  async _fetch(method, path, body, signal, refresh, key) {
    let request;
    const url = this._base + path;
    const bearer = this._token == null ? null : await token(this._token, refresh);
    try {
      const headers = new Headers({ accept: 'application/json' });
      for (const [name, value] of this._headers) {
        try {
          headers.set(name, value);
        } catch (e) {
          throw tidingsError('invalid_input', `header \`${name}\`: ${message(e)}`);
        }
      }
      if (bearer) headers.set('authorization', `Bearer ${bearer}`);
      if (key) headers.set('idempotency-key', key);
      /** @type {RequestInit} */
      const init = { method, headers, signal, credentials: this._credentials ? 'include' : 'same-origin' };
      if (body !== undefined) {
        headers.set('content-type', 'application/json');
        try {
          init.body = JSON.stringify(body);
        } catch (e) {
          throw tidingsError('invalid_input', `body is not JSON: ${message(e)}`);
        }
      }
      request = new Request(url, init);
    } catch (e) {
      throw e.code ? e : tidingsError('invalid_input', `bad request to \`${url}\`: ${message(e)}`);
    }
    try {
      return await fetch(request);
    } catch (e) {
      throw tidingsError('network_error', `network error: ${message(e)}`);
    }
  }
}
