// What the package's JavaScript holds of the browser (event sources, listeners, timers,
// requests in flight), counted for `liveResources()`: a test closes everything and checks
// that nothing is left. The helpers return idempotent releases.

let count = 0;
export const held = (n) => {
  count += n;
};
export const jsResources = () => count;

export const timeout = (ms, f) => {
  count++;
  let live = true;
  const id = setTimeout(() => {
    live = false;
    count--;
    f();
  }, ms);
  return () => {
    if (!live) return;
    live = false;
    clearTimeout(id);
    count--;
  };
};

export const listen = (target, name, f) => {
  count++;
  let live = true;
  target.addEventListener(name, f);
  return () => {
    if (!live) return;
    live = false;
    target.removeEventListener(name, f);
    count--;
  };
};

export const message = (e) => (e instanceof Error ? e.message : typeof e === 'string' ? e : String(e));

export const sleep = (ms) => new Promise((resolve) => timeout(ms, resolve));

/** The package's error: an `Error` with a stable `code` and, when the server answered, its
 * HTTP `status` (the `TidingsError` of the TypeScript declarations). */
export const tidingsError = (code, text, status) => {
  const error = new Error(text);
  error.code = code;
  if (status !== undefined) error.status = status;
  return error;
};
