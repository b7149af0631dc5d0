//! Building request URLs without a URL parser (the base may be relative, like `""` for the
//! page's own origin), and without `format!`: nothing in the package formats (README
//! "Package size"), so these build their strings by hand. (The stream's resume parameters are
//! set in `js/connection.js`.)

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encode `value` for a query string (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// `n` in decimal.
pub fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().map(|&d| char::from(d)).collect()
}

/// `base` (trailing slashes removed) followed by `path`.
pub fn join(base: &str, path: &str) -> String {
    [base.trim_end_matches('/'), path].concat()
}

/// `?list=a&list=b` for `lists` (empty for none).
pub fn list_query(lists: &[String]) -> String {
    let mut out = String::new();
    for list in lists {
        out.push_str(if out.is_empty() { "?list=" } else { "&list=" });
        out.push_str(&encode(list));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_decimal() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(7), "7");
        assert_eq!(decimal(1_000_000_007), "1000000007");
        assert_eq!(decimal(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn bases_and_list_queries() {
        assert_eq!(join("http://h:1/", "/api/lists"), "http://h:1/api/lists");
        assert_eq!(join("", "/api/lists"), "/api/lists");
        assert_eq!(list_query(&["a".into(), "b-2".into()]), "?list=a&list=b-2");
        assert_eq!(list_query(&[]), "");
        assert_eq!(encode("ä/"), "%C3%A4%2F");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
