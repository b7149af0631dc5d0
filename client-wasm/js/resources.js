// @ts-check
// What the package's JavaScript holds of the browser (event sources, listeners, timers,
// requests in flight), counted for `liveResources()`: a test closes everything and checks
// that nothing is left. The helpers return idempotent releases.
/** @import { TidingsError } from './api.js' */

let count = 0;

/**
 * Count `n` more resources held (negative: released) that the helpers below do not track.
 * @param {number} n
 */
export const held = (n) => {
  count += n;
};

/** How many resources the scripts hold right now (src/resources.rs adds Rust's own). */
export const jsResources = () => count;

/**
 * `setTimeout`, counted while pending.
 * @param {number} ms
 * @param {() => void} f
 * @returns {() => void} cancels it, if still pending
 */
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

/**
 * `addEventListener`, counted until removed.
 * @param {EventTarget} target
 * @param {string} name
 * @param {(event: any) => void} f
 * @returns {() => void} removes it
 */
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

/**
 * What a thrown value says.
 * @param {unknown} e
 */
export const message = (e) => (e instanceof Error ? e.message : typeof e === 'string' ? e : String(e));

/**
 * The package's error: an `Error` with a stable `code` and, when the server answered, its
 * HTTP `status`.
 * @param {string} code
 * @param {string} text
 * @param {number} [status]
 * @returns {TidingsError}
 */
export const tidingsError = (code, text, status) => {
  const error = /** @type {TidingsError} */ (new Error(text));
  error.code = code;
  if (status !== undefined) error.status = status;
  return error;
};
