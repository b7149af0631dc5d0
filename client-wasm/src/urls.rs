//! Building request URLs without a URL parser (the base may be relative, like `""` for the
//! page's own origin).

/// Percent-encode `value` for a query string (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `key=value` as the only value of `key` in its query string.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let prefix = format!("{key}=");
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && *p != key && !p.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    params.push(format!("{key}={}", encode(value)));
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `base` (trailing slashes removed) followed by `path`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// `?list=a&list=b` for `lists` (empty for none).
pub fn list_query(lists: &[String]) -> String {
    let params: Vec<String> = lists.iter().map(|l| format!("list={}", encode(l))).collect();
    if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_replaced_not_repeated() {
        assert_eq!(with_query("/e", "last_event_id", "7"), "/e?last_event_id=7");
        assert_eq!(
            with_query("http://h/e?list=a&last_event_id=3&x", "last_event_id", "9"),
            "http://h/e?list=a&x&last_event_id=9"
        );
        assert_eq!(with_query("/e?a=1#top", "t", "a b&c"), "/e?a=1&t=a%20b%26c#top");
        assert_eq!(
            with_query("/e?last_event_id_x=1", "last_event_id", "2"),
            "/e?last_event_id_x=1&last_event_id=2"
        );
    }

    #[test]
    fn bases_and_list_queries() {
        assert_eq!(join("http://h:1/", "/api/lists"), "http://h:1/api/lists");
        assert_eq!(join("", "/api/lists"), "/api/lists");
        assert_eq!(list_query(&["a".into(), "b-2".into()]), "?list=a&list=b-2");
        assert_eq!(list_query(&[]), "");
        assert_eq!(encode("ä/"), "%C3%A4%2F");
    }
}
