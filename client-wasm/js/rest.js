// REST calls of src/http.rs (which documents them): fetch with JSON in and out, every failure
// a TidingsError (resources.js) with the server's code and status when it answered.
import { message, sleep, tidingsError } from './resources.js';

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
    Object.assign(this, { base, headers, withCredentials, token });
  }

  // The parsed JSON body of a 2xx answer (`undefined` for 204); rejects with a TidingsError.
  async send(method, path, body, signal) {
    let request;
    const url = this.base + path;
    try {
      const headers = new Headers({ accept: 'application/json' });
      for (const [name, value] of this.headers) {
        try {
          headers.set(name, value);
        } catch (e) {
          throw tidingsError('invalid_input', `header \`${name}\`: ${message(e)}`);
        }
      }
      if (this.token != null) headers.set('authorization', `Bearer ${this.token}`);
      const init = { method, headers, signal, credentials: this.withCredentials ? 'include' : 'same-origin' };
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
    let res;
    try {
      res = await fetch(request);
    } catch (e) {
      throw tidingsError('network_error', `network error: ${message(e)}`);
    }
    if (!res.ok) throw await httpError(res);
    if (res.status === 204) return undefined;
    try {
      return await res.json();
    } catch (e) {
      throw tidingsError('decode_error', `could not decode ${path}: ${message(e)}`);
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
