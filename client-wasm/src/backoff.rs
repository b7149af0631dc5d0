//! Reconnect delays' settings: exponential growth up to a cap, with jitter so that clients
//! cut off together do not come back together. The delays themselves are computed where the
//! retries run, in `js/connection.js` (which also makes nonsense settings safe: negative, NaN,
//! a factor below 1, jitter outside 0..=1).

/// Backoff settings (`backoff` option). Partial objects are filled from [`Backoff::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay, in milliseconds.
    pub initial_ms: f64,
    /// Largest delay, in milliseconds.
    pub max_ms: f64,
    /// Growth of the ceiling per attempt (≥ 1).
    pub factor: f64,
    /// Share of the ceiling that is random: 1 is "full jitter" (uniform in `(0, ceiling]`),
    /// 0 is none.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial_ms: 1000.0, max_ms: 30_000.0, factor: 2.0, jitter: 1.0 }
    }
}

impl Backoff {
    /// The settings as JavaScript passes them (`[initialMs, maxMs, factor, jitter]`, NaN or
    /// absent for a default).
    pub fn from_numbers(numbers: &[f64]) -> Self {
        let at = |i: usize| numbers.get(i).copied().unwrap_or(f64::NAN);
        Backoff { initial_ms: at(0), max_ms: at(1), factor: at(2), jitter: at(3) }
    }

    /// The settings as `js/connection.js` takes them.
    pub fn numbers(&self) -> [f64; 4] {
        [self.initial_ms, self.max_ms, self.factor, self.jitter]
    }
}
