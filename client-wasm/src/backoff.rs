//! Reconnect delays: exponential growth up to a cap, with jitter so that clients cut off
//! together do not come back together.

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
    /// The same settings with nonsense (negative, NaN, factor below 1, jitter outside 0..=1)
    /// replaced by defaults or clamped, so a typo cannot cause a tight retry loop.
    pub fn sanitized(self) -> Self {
        let d = Backoff::default();
        let finite_pos =
            |v: f64, fallback: f64| if v.is_finite() && v >= 0.0 { v } else { fallback };
        let initial_ms = finite_pos(self.initial_ms, d.initial_ms);
        Backoff {
            initial_ms,
            max_ms: finite_pos(self.max_ms, d.max_ms).max(initial_ms),
            factor: if self.factor.is_finite() && self.factor >= 1.0 {
                self.factor
            } else {
                d.factor
            },
            jitter: if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { d.jitter },
        }
    }

    /// The settings JavaScript passed, as `js/options.js` reads them (`[initialMs, maxMs,
    /// factor, jitter]`, NaN or absent for a default), made safe.
    pub fn from_numbers(numbers: &[f64]) -> Self {
        let at = |i: usize| numbers.get(i).copied().unwrap_or(f64::NAN);
        Backoff { initial_ms: at(0), max_ms: at(1), factor: at(2), jitter: at(3) }.sanitized()
    }

    /// Upper bound of the delay before retry number `attempt` (1 is the first retry).
    pub fn ceiling(&self, attempt: u32) -> f64 {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        (self.initial_ms * self.factor.powi(exponent)).min(self.max_ms)
    }

    /// The delay before retry number `attempt`, given `random` uniform in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> f64 {
        let ceiling = self.ceiling(attempt);
        ceiling * (1.0 - self.jitter * random.clamp(0.0, 1.0))
    }

    /// The smallest attempt number whose ceiling is the cap: where a client that must not
    /// hammer the server (401/403) continues from.
    pub fn attempt_at_cap(&self) -> u32 {
        (1..=64).find(|&a| self.ceiling(a) >= self.max_ms).unwrap_or(64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_exponentially_to_the_cap() {
        let b = Backoff::default();
        let ceilings: Vec<f64> = (1..=7).map(|a| b.ceiling(a)).collect();
        assert_eq!(ceilings, [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 30000.0, 30000.0]);
        assert_eq!(b.ceiling(1000), 30000.0);
        assert_eq!(b.attempt_at_cap(), 6);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 0.0), 4000.0);
        assert!((b.delay(3, 0.999_999) - 0.004).abs() < 0.01);
        let none = Backoff { jitter: 0.0, ..b };
        assert_eq!(none.delay(3, 0.7), 4000.0);
        let half = Backoff { jitter: 0.5, ..b };
        assert_eq!(half.delay(3, 1.0), 2000.0);
    }

    #[test]
    fn nonsense_settings_are_made_safe() {
        let b =
            Backoff { initial_ms: -5.0, max_ms: f64::NAN, factor: 0.5, jitter: 7.0 }.sanitized();
        assert_eq!(b, Backoff { jitter: 1.0, ..Backoff::default() });
        let partial = Backoff::from_numbers(&[100.0, 800.0, f64::NAN]);
        assert_eq!(partial, Backoff { initial_ms: 100.0, max_ms: 800.0, ..Backoff::default() });
        let small_cap =
            Backoff { initial_ms: 500.0, max_ms: 100.0, ..Backoff::default() }.sanitized();
        assert_eq!(small_cap.max_ms, 500.0);
    }
}
