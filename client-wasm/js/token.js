// The `accessToken` option's value for one request: the string itself, or what the function
// gives (awaited). Documented in src/token.rs.
export async function token(source, refresh) {
  const value = typeof source === 'function' ? await source({ refresh }) : source;
  if (typeof value !== 'string' || !value) throw new TypeError('accessToken must give a non-empty string');
  return value;
}
