// Reconnect delays: exponential growth up to a cap, with jitter so that clients cut off
// together do not come back together. Settings are `[initialMs, maxMs, factor, jitter]`
// (the `backoff` option; src/backoff.rs for the Rust API), made safe by `sanitize`.

const DEFAULTS = [1000, 30_000, 2, 1];

// Nonsense (negative, NaN, a factor below 1, jitter outside 0..1) replaced by the defaults or
// clamped, so a typo cannot cause a tight retry loop.
export const sanitize = ([initial, max, factor, jitter]) => {
  const ms = (v, d) => (Number.isFinite(v) && v >= 0 ? v : d);
  const i = ms(initial, DEFAULTS[0]);
  return [
    i,
    Math.max(ms(max, DEFAULTS[1]), i),
    Number.isFinite(factor) && factor >= 1 ? factor : DEFAULTS[2],
    Number.isFinite(jitter) ? Math.min(Math.max(jitter, 0), 1) : DEFAULTS[3],
  ];
};

// Upper bound of the delay before retry number `attempt` (1 is the first retry).
export const ceiling = ([initial, max, factor], attempt) =>
  Math.min(initial * factor ** Math.min(Math.max(attempt - 1, 0), 64), max);

// The delay before retry number `attempt` (at least 1), `random` uniform in [0, 1).
export const delay = (b, attempt, random = Math.random()) =>
  Math.round(ceiling(b, Math.max(attempt, 1)) * (1 - b[3] * Math.min(Math.max(random, 0), 1)));

// The smallest attempt whose ceiling is the cap: where a client that must not hammer the
// server (401/403) continues from.
export const capAttempt = (b) => {
  let a = 1;
  while (a < 64 && ceiling(b, a) < b[1]) a++;
  return a;
};
