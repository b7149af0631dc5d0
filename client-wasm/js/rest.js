// REST calls of src/http.rs (which documents them, and access tokens): fetch with JSON in and
// out, every failure a TidingsError (resources.js) with the server's code and status when it
// answered.
import { message, sleep, tidingsError } from './resources.js';

// The `accessToken` option's value for one request (the connection's too): the string
// itself, or what the function gives (awaited); `refresh` after the server refused the last
// one. A function that throws, rejects or gives no non-empty string: `unauthorized`.
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

// The error a non-2xx response stands for, from its JSON error body when it has one.
export const httpError = async (res) => {
  const error = (await res.json().catch(() => null))?.error ?? {};
  return tidingsError(
    typeof error.code === 'string' ? error.code : `http_${res.status}`,
    typeof error.message === 'string' ? error.message : res.statusText,
    res.status,
  );
};

export class Rest {
  // `headers`: [[name, value], …] sent with every request.
  constructor(base, headers, withCredentials, token) {
    Object.assign(this, { _base: base, _headers: headers, _credentials: withCredentials, _token: token });
  }

  // The parsed JSON body of a 2xx answer (`undefined` for 204); rejects with a TidingsError.
  // Every request asks the `accessToken` function for a token; a 401 once more, with refresh.
  async send(method, path, body, signal) {
    let res;
    for (let refresh = false; ; refresh = true) {
      res = await this._fetch(method, path, body, signal, refresh);
      if (res.status !== 401 || refresh || typeof this._token !== 'function') break;
    }
    if (!res.ok) throw await httpError(res);
    if (res.status === 204) return undefined;
    try {
      return await res.json();
    } catch (e) {
      throw tidingsError('decode_error', `could not decode ${path}: ${message(e)}`);
    }
  }

  async _fetch(method, path, body, signal, refresh) {
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

  // POST `body` to `path`, re-sent after a network failure 250 ms and then 1 s later: the
  // body carries a client-chosen id, so the server creates it at most once.
  async create(path, body) {
    for (const wait of [250, 1000]) {
      try {
        return await this.send('POST', path, body);
      } catch (error) {
        if (error.code !== 'network_error') throw error;
      }
      await sleep(wait);
    }
    return this.send('POST', path, body);
  }
}
