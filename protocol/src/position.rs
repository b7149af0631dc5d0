//! Positions: the keys that order a list's todos by hand.
//!
//! A position is a string of ASCII letters and digits, compared byte by byte (ties, which
//! the server avoids, are broken by todo id). There is always room between two positions,
//! so moving a todo rewrites that todo alone: its new key lies between its new neighbours'.
//! The price is length: each move into one gap adds about a sixth of a character, so the
//! server keeps keys within [`MAX_POSITION_LEN`] by re-spacing a crowded neighbourhood
//! ([`spread`]).
//!
//! A key is an integer part and a fraction. The integer part is a head byte that says how
//! many base-62 digits follow (`a` one, `b` two, …; `Z` one, `Y` two, … for the negative
//! integers, which sort before every positive one), then those digits; the fraction is more
//! digits, never ending in `0`. Appending a todo increments the integer, so a list that only
//! grows at its end has keys of a few bytes (`a0`, `a1`, …, `az`, `b00`, …) and a list made
//! by a million appends ends near `d4C92`. Placing between two keys with the same integer
//! uses the fraction.

/// The longest key the server stores, in bytes.
pub const MAX_POSITION_LEN: usize = 64;

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: usize = DIGITS.len();
const ZERO: u8 = b'0';
const TOP: u8 = b'z';

/// The key of the first todo of an empty list.
const FIRST: &str = "a0";

fn digit(c: u8) -> Option<usize> {
    DIGITS.iter().position(|&d| d == c)
}

/// How many integer digits follow `head`.
fn integer_digits(head: u8) -> Option<usize> {
    match head {
        b'a'..=b'z' => Some(usize::from(head - b'a') + 1),
        b'A'..=b'Z' => Some(usize::from(b'Z' - head) + 1),
        _ => None,
    }
}

/// `key` split into its integer part and its fraction; `None` when it is not a key.
fn split(key: &str) -> Option<(&str, &str)> {
    let bytes = key.as_bytes();
    let n = integer_digits(*bytes.first()?)?;
    if bytes.len() < n + 1 || !bytes[1..].iter().all(|&c| digit(c).is_some()) {
        return None;
    }
    let (integer, fraction) = key.split_at(n + 1);
    if fraction.ends_with('0') {
        return None;
    }
    Some((integer, fraction))
}

/// Whether `key` is a well-formed position.
pub fn is_valid(key: &str) -> bool {
    split(key).is_some()
}

/// The integer after `integer` (`a0` → `a1`, `az` → `b00`, `Zz` → `a0`); `None` past the
/// largest.
fn increment(integer: &str) -> Option<String> {
    let mut bytes = integer.as_bytes().to_vec();
    for i in (1..bytes.len()).rev() {
        if bytes[i] == TOP {
            bytes[i] = ZERO;
        } else {
            bytes[i] = DIGITS[digit(bytes[i])? + 1];
            return String::from_utf8(bytes).ok();
        }
    }
    // Every digit carried: one more digit for a positive integer, one fewer for a negative.
    let head = bytes[0];
    let n = bytes.len() - 1;
    let (head, n) = match head {
        b'z' => return None,
        b'Z' => (b'a', 1),
        b'a'..=b'y' => (head + 1, n + 1),
        _ => (head + 1, n - 1),
    };
    let mut out = vec![head];
    out.resize(n + 1, ZERO);
    String::from_utf8(out).ok()
}

/// The integer before `integer` (`a1` → `a0`, `a0` → `Zz`, `b00` → `az`); `None` before the
/// smallest.
fn decrement(integer: &str) -> Option<String> {
    let mut bytes = integer.as_bytes().to_vec();
    for i in (1..bytes.len()).rev() {
        if bytes[i] == ZERO {
            bytes[i] = TOP;
        } else {
            bytes[i] = DIGITS[digit(bytes[i])? - 1];
            return String::from_utf8(bytes).ok();
        }
    }
    let head = bytes[0];
    let n = bytes.len() - 1;
    let (head, n) = match head {
        b'A' => return None,
        b'a' => (b'Z', 1),
        b'b'..=b'z' => (head - 1, n - 1),
        _ => (head - 1, n + 1),
    };
    let mut out = vec![head];
    out.resize(n + 1, TOP);
    String::from_utf8(out).ok()
}

/// A fraction strictly between fractions `low` and `high` (`None`: no upper bound), given
/// `low < high` and neither ending in `0`.
fn midpoint(low: &[u8], high: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut low, mut high) = (low, high);
    if let Some(h) = high {
        // The common prefix, reading a missing digit of `low` as 0.
        let n = h
            .iter()
            .enumerate()
            .take_while(|&(i, &c)| low.get(i).copied().unwrap_or(ZERO) == c)
            .count();
        out.extend_from_slice(&h[..n]);
        low = low.get(n..).unwrap_or_default();
        high = Some(&h[n..]);
    }
    loop {
        let a = low.first().and_then(|&c| digit(c)).unwrap_or(0);
        let b = match high {
            Some(h) => h.first().and_then(|&c| digit(c)).unwrap_or(BASE),
            None => BASE,
        };
        if b - a > 1 {
            out.push(DIGITS[(a + b).div_ceil(2)]);
            return out;
        }
        // Consecutive digits: `high`'s first digit alone is between, if `high` goes on.
        if let Some(h) = high.filter(|h| h.len() > 1) {
            out.push(h[0]);
            return out;
        }
        out.push(DIGITS[a]);
        low = low.get(1..).unwrap_or_default();
        high = None;
    }
}

/// A key strictly between `before` and `after` (`None`: that end is open), as short as the
/// two allow. `None` when an argument is not a key or `before >= after` (equal keys), which
/// a caller settles by re-spacing.
pub fn between(before: Option<&str>, after: Option<&str>) -> Option<String> {
    match (before, after) {
        (None, None) => Some(FIRST.to_owned()),
        (Some(low), None) => {
            let (integer, fraction) = split(low)?;
            increment(integer).or_else(|| Some(join(integer, &midpoint(fraction.as_bytes(), None))))
        }
        (None, Some(high)) => {
            let (integer, fraction) = split(high)?;
            if !fraction.is_empty() {
                return Some(integer.to_owned());
            }
            decrement(integer)
        }
        (Some(low), Some(high)) => {
            let ((li, lf), (hi, hf)) = (split(low)?, split(high)?);
            if low >= high {
                return None;
            }
            if li == hi {
                return Some(join(li, &midpoint(lf.as_bytes(), Some(hf.as_bytes()))));
            }
            match increment(li) {
                Some(next) if next.as_str() < high => Some(next),
                _ => Some(join(li, &midpoint(lf.as_bytes(), None))),
            }
        }
    }
}

fn join(integer: &str, fraction: &[u8]) -> String {
    let mut key = integer.to_owned();
    key.extend(fraction.iter().map(|&c| char::from(c)));
    key
}

/// `n` keys in order strictly between `before` and `after`, spread evenly so that each
/// gap between them has room again (by bisection: their length grows with log(n), not n).
/// `None` as [`between`].
pub fn spread(before: Option<&str>, after: Option<&str>, n: usize) -> Option<Vec<String>> {
    let mut keys = Vec::with_capacity(n);
    fill(before, after, n, &mut keys)?;
    Some(keys)
}

fn fill(before: Option<&str>, after: Option<&str>, n: usize, keys: &mut Vec<String>) -> Option<()> {
    if n == 0 {
        return Some(());
    }
    let mid = between(before, after)?;
    let left = n / 2;
    fill(before, Some(&mid), left, keys)?;
    keys.push(mid.clone());
    fill(Some(&mid), after, n - left - 1, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(keys: &[String]) -> bool {
        keys.windows(2).all(|w| w[0] < w[1]) && keys.iter().all(|k| is_valid(k))
    }

    #[test]
    fn appends_stay_short() {
        let mut keys = vec![between(None, None).unwrap()];
        for _ in 0..100_000 {
            keys.push(between(keys.last().map(String::as_str), None).unwrap());
        }
        assert!(ordered(&keys));
        assert_eq!(keys[..3], ["a0", "a1", "a2"]);
        assert!(keys.iter().all(|k| k.len() <= 4), "{}", keys.last().unwrap());
    }

    #[test]
    fn prepends_stay_short() {
        let mut keys = vec![between(None, None).unwrap()];
        for _ in 0..100_000 {
            keys.insert(0, between(None, Some(&keys[0])).unwrap());
        }
        assert!(ordered(&keys));
        assert!(keys.iter().all(|k| k.len() <= 4), "{}", keys[0]);
    }

    #[test]
    fn between_is_strictly_between() {
        let cases = [
            ("a0", "a1"),
            ("a0", "a0V"),
            ("a0V", "a1"),
            ("Zz", "a0"),
            ("az", "b00"),
            ("a01", "a02"),
            ("a0zzz", "a1"),
            ("a1", "b000001"),
        ];
        for (low, high) in cases {
            let mid = between(Some(low), Some(high)).unwrap();
            assert!(low < mid.as_str() && mid.as_str() < high, "{low} < {mid} < {high}");
            assert!(is_valid(&mid), "{mid}");
        }
        assert_eq!(between(Some("a1"), Some("a1")), None);
        assert_eq!(between(Some("a2"), Some("a1")), None);
        assert_eq!(between(Some("a10"), None), None, "a trailing 0 is not a key");
        assert_eq!(between(Some(""), None), None);
        assert_eq!(between(Some("a!"), None), None);
    }

    #[test]
    fn repeated_moves_into_one_gap_grow_about_a_byte_per_six() {
        let (low, mut high) = ("a0".to_owned(), "a1".to_owned());
        for _ in 0..60 {
            let mid = between(Some(&low), Some(&high)).unwrap();
            assert!(low < mid && mid < high);
            high = mid;
        }
        assert!((9..=14).contains(&high.len()), "{high}");
    }

    #[test]
    fn spread_keys_are_ordered_and_short() {
        for (before, after, n) in
            [(None, None, 1000), (Some("a0"), Some("a0000001"), 500), (Some("az"), None, 64)]
        {
            let keys = spread(before, after, n).unwrap();
            assert_eq!(keys.len(), n);
            assert!(ordered(&keys));
            assert!(before.is_none_or(|b| b < keys[0].as_str()));
            assert!(after.is_none_or(|a| keys[n - 1].as_str() < a));
            let longest = keys.iter().map(String::len).max().unwrap();
            let bound = before.map_or(0, str::len).max(after.map_or(0, str::len)) + 4;
            assert!(longest <= bound, "{before:?} {after:?}: {longest}");
        }
    }

    #[test]
    fn integers_carry_both_ways() {
        assert_eq!(increment("az").as_deref(), Some("b00"));
        assert_eq!(increment("Zz").as_deref(), Some("a0"));
        assert_eq!(increment("Yzz").as_deref(), Some("Z0"));
        assert_eq!(decrement("a0").as_deref(), Some("Zz"));
        assert_eq!(decrement("b00").as_deref(), Some("az"));
        assert_eq!(decrement("Z0").as_deref(), Some("Yzz"));
        assert!("Yzz" < "Z0" && "Zz" < "a0" && "az" < "b00");
    }
}
