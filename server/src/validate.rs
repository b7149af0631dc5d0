//! Input rules, checked before anything touches the database, and the typed path
//! parameters that apply them.

use rocket::request::FromParam;
use tidings_protocol::{is_valid_list_id, MAX_LIST_ID_LEN, MAX_TITLE_CHARS};

use crate::error::AppError;
use crate::store::Shown;

/// A list id taken from the URL. One that is not a valid id names no list: `404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListId(pub String);

impl<'a> FromParam<'a> for ListId {
    type Error = AppError;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        normalized_list_id(param).map(ListId).ok_or_else(|| AppError::list_not_found(param))
    }
}

/// A todo id taken from the URL, normalised. One that is not a UUID names no todo: `404`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoId(pub String);

impl<'a> FromParam<'a> for TodoId {
    type Error = AppError;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        todo_id(param).map(TodoId).map_err(|_| AppError::todo_not_found(param))
    }
}

/// Longest `sub` accepted, in bytes.
pub const MAX_USER_BYTES: usize = 256;

/// The value of an input that may be given once (a header, a query parameter, a cookie):
/// repeats of the same value count as one; different values are `400 repeated_parameter`,
/// rather than one of them silently winning.
pub fn one_value<'a>(
    name: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, AppError> {
    let mut values = values.into_iter();
    let first = values.next();
    if values.any(|other| Some(other) != first) {
        return Err(AppError::BadRequest(
            "repeated_parameter",
            format!("`{name}` is given more than once with different values"),
        ));
    }
    Ok(first)
}

/// A title, trimmed: 1..=[`MAX_TITLE_CHARS`] characters, no control characters.
pub fn title(raw: &str) -> Result<String, AppError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(AppError::Unprocessable("invalid_title", "title must not be empty".into()));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(AppError::Unprocessable(
            "invalid_title",
            format!("title must be at most {MAX_TITLE_CHARS} characters, got {chars}"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(AppError::Unprocessable(
            "invalid_title",
            "title must be a single line without control characters".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A list id given in a request body.
pub fn list_id(raw: &str) -> Result<String, AppError> {
    normalized_list_id(raw).ok_or_else(|| {
        AppError::Unprocessable(
            "invalid_list_id",
            format!(
                "list id `{}` must be a slug like `groceries-2` or `買い物`: no spaces, ASCII \
                 only as lowercase letters, digits and single dashes, at most \
                 {MAX_LIST_ID_LEN} bytes",
                Shown(raw)
            ),
        )
    })
}

/// The id of a list to create: a [`list_id`] that passes for no other id (no mixed scripts,
/// no letters that make it read as an ASCII id; see `store::look_alike`). Lists that
/// exist keep their ids whatever they are.
pub fn new_list_id(raw: &str) -> Result<String, AppError> {
    let id = list_id(raw)?;
    match crate::store::look_alike(&id) {
        None => Ok(id),
        Some(why) => Err(AppError::Unprocessable(
            "invalid_list_id",
            format!(
                "list id `{}` {why}, so it could pass for another list's: choose an id in one \
                 script (the title may be anything)",
                Shown(raw)
            ),
        )),
    }
}

/// `raw` in Unicode NFC (so the same word typed on two systems is one id), if it is a valid
/// list id.
fn normalized_list_id(raw: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let id: String = if raw.is_ascii() { raw.to_owned() } else { raw.nfc().collect() };
    is_valid_list_id(&id).then_some(id)
}

/// A client-chosen todo id: any UUID, normalised to lowercase hyphenated form.
pub fn todo_id(raw: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(raw).map(|id| id.hyphenated().to_string()).map_err(|_| {
        AppError::Unprocessable("invalid_id", format!("todo id `{}` must be a UUID", Shown(raw)))
    })
}

/// A user id named in a URL or a body (the `sub` of their tokens): see [`user_problem`].
pub fn user_id(raw: &str) -> Result<String, AppError> {
    match user_problem(raw) {
        None => Ok(raw.to_owned()),
        Some(rule) => {
            Err(AppError::Unprocessable("invalid_user", format!("user `{}`: {rule}", Shown(raw))))
        }
    }
}

/// What is wrong with a user id (a token's `sub`), if anything: it must be 1 to
/// [`MAX_USER_BYTES`] bytes, without control characters, invisible or direction-changing
/// formatting characters (which make one name look like another), `/` or `..` (which make a
/// name look like a path wherever it is shown or used).
pub fn user_problem(raw: &str) -> Option<&'static str> {
    // Bidirectional marks, embeddings, overrides and isolates; zero-width characters.
    let invisible = |c: char| matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    const _: () = assert!(MAX_USER_BYTES == 256, "the message below says 256");
    if raw.is_empty() || raw.len() > MAX_USER_BYTES {
        Some("must be 1 to 256 bytes")
    } else if raw.chars().any(|c| c.is_control() || invisible(c)) {
        Some("must not contain control, invisible or bidirectional formatting characters")
    } else if raw.contains('/') || raw.contains("..") {
        Some("must not contain `/` or `..`")
    } else {
        None
    }
}

/// Most lists one stream or snapshot request may name.
pub const MAX_LISTS_PER_REQUEST: usize = 100;

/// The lists named in a stream or snapshot query: slugs, de-duplicated (first occurrence
/// kept), at most [`MAX_LISTS_PER_REQUEST`]. The count is checked before any other work, so a
/// query naming thousands of lists costs nothing.
pub fn list_filter(raw: Vec<String>) -> Result<Vec<String>, AppError> {
    let too_many = || {
        AppError::BadRequest(
            "list_filter_too_long",
            format!("at most {MAX_LISTS_PER_REQUEST} lists per request"),
        )
    };
    // Duplicates may pad a query, but not without bound.
    if raw.len() > 4 * MAX_LISTS_PER_REQUEST {
        return Err(too_many());
    }
    let mut seen = std::collections::HashSet::with_capacity(raw.len());
    let mut lists: Vec<String> = Vec::with_capacity(raw.len().min(MAX_LISTS_PER_REQUEST));
    for raw_id in raw {
        let Some(id) = normalized_list_id(&raw_id) else {
            return Err(AppError::BadRequest(
                "invalid_list_id",
                format!("list id `{}` is not a valid list id", Shown(&raw_id)),
            ));
        };
        if seen.insert(id.clone()) {
            lists.push(id);
        }
    }
    if lists.len() > MAX_LISTS_PER_REQUEST {
        return Err(too_many());
    }
    Ok(lists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("  Buy milk \n").unwrap(), "Buy milk");
        assert_eq!(title(&"é".repeat(500)).unwrap().chars().count(), 500);
        for bad in ["", "   ", "a\nb", "bell\u{7}"] {
            assert_eq!(title(bad).unwrap_err().code(), "invalid_title", "{bad:?}");
        }
        assert!(title(&"x".repeat(501)).is_err());
    }

    #[test]
    fn todo_ids_must_be_uuids() {
        let id = todo_id("0B7E4F6E-8C4F-4D0E-9A53-6F2F0E6B9A10").unwrap();
        assert_eq!(id, "0b7e4f6e-8c4f-4d0e-9a53-6f2f0e6b9a10");
        assert_eq!(todo_id("42").unwrap_err().code(), "invalid_id");
    }

    #[test]
    fn list_filters_are_deduplicated_slugs() {
        let lists = list_filter(vec!["a".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(lists, ["a", "b"]);
        assert!(list_filter(vec!["A".into()]).is_err());
        // NFD "café" is the NFC id.
        assert_eq!(list_filter(vec!["cafe\u{301}".into()]).unwrap(), ["caf\u{e9}"]);
        assert_eq!(list_id("cafe\u{301}").unwrap(), "caf\u{e9}");
        let padded = vec!["a".to_owned(); 4 * MAX_LISTS_PER_REQUEST];
        assert_eq!(list_filter(padded).unwrap(), ["a"]);
        let flood = vec!["a".to_owned(); 5_900];
        assert_eq!(list_filter(flood).unwrap_err().code(), "list_filter_too_long");
    }
}
