//! Latency histograms (HdrHistogram, microseconds) that can cross a process boundary, and the
//! median used to summarise repeated runs.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Highest latency recorded without clamping: two minutes, in microseconds.
const HIGHEST_US: u64 = 120_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    /// Record one latency given in nanoseconds (clamped to the histogram's range).
    pub fn record_nanos(&mut self, nanos: u64) {
        self.0.saturating_record((nanos / 1000).clamp(1, HIGHEST_US));
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.value_at_quantile(quantile) as f64 / 1000.0
        }
    }

    /// The largest value in milliseconds; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.max() as f64 / 1000.0
        }
    }

    /// Forget every value.
    pub fn clear(&mut self) {
        self.0.reset();
    }
}

// Sent between processes as (value, count) pairs: small, and needs no codec feature.
impl Serialize for Latencies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> =
            self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Latencies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = Latencies::default();
        for (value, count) in pairs {
            h.0.saturating_record_n(value.clamp(1, HIGHEST_US), count);
        }
        Ok(h)
    }
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty or
/// when any value is missing.
pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().collect::<Option<Vec<f64>>>()?;
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_serialization_and_merges() {
        let mut a = Latencies::default();
        for ms in 1..=100u64 {
            a.record_nanos(ms * 1_000_000);
        }
        let json = serde_json::to_string(&a).unwrap();
        let b: Latencies = serde_json::from_str(&json).unwrap();
        assert_eq!(b.count(), 100);
        assert!((b.quantile_ms(0.5) - 50.0).abs() < 0.1);
        let mut c = Latencies::default();
        c.merge(&a);
        c.merge(&b);
        assert_eq!(c.count(), 200);
        assert!((c.max_ms() - 100.0).abs() < 0.1);
    }

    #[test]
    fn median_of_odd_even_and_missing() {
        assert_eq!(median(&[Some(3.0), Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median(&[Some(4.0), Some(1.0)]), Some(2.5));
        assert_eq!(median(&[Some(1.0), None]), None);
        assert_eq!(median(&[]), None);
    }
}
