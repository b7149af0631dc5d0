// The `accessToken` option's value for one request: the string itself, or what the function
// gives (awaited); `refresh` after the server refused the last one. Documented in
// src/http.rs. A function that throws, rejects or gives no non-empty string: `unauthorized`.
import { message, tidingsError } from './resources.js';

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
