//! Input rules, checked before anything touches the database.

use tidings_protocol::{is_valid_list_id, MAX_LIST_ID_LEN, MAX_TITLE_CHARS};

use crate::error::AppError;

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
    if is_valid_list_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(AppError::Unprocessable(
            "invalid_list_id",
            format!(
                "list id `{}` must be a lowercase slug like `groceries-2` \
                 (a-z, 0-9 and single dashes, at most {MAX_LIST_ID_LEN} bytes)",
                raw.escape_debug()
            ),
        ))
    }
}

/// A client-chosen todo id: any UUID, normalised to lowercase hyphenated form.
pub fn todo_id(raw: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(raw).map(|id| id.hyphenated().to_string()).map_err(|_| {
        AppError::Unprocessable(
            "invalid_id",
            format!("todo id `{}` must be a UUID", raw.escape_debug()),
        )
    })
}

/// The lists named in a stream or snapshot query: slugs, de-duplicated, at most 100.
pub fn list_filter(raw: Vec<String>) -> Result<Vec<String>, AppError> {
    const MAX_LISTS: usize = 100;
    let mut lists: Vec<String> = Vec::with_capacity(raw.len());
    for id in raw {
        if !is_valid_list_id(&id) {
            return Err(AppError::BadRequest(
                "invalid_list_id",
                format!("list id `{}` is not a valid slug", id.escape_debug()),
            ));
        }
        if !lists.contains(&id) {
            lists.push(id);
        }
    }
    if lists.len() > MAX_LISTS {
        return Err(AppError::BadRequest(
            "too_many_lists",
            format!("at most {MAX_LISTS} lists per request"),
        ));
    }
    Ok(lists)
}

/// A list id derived from a title: `"Groceries & Co."` → `groceries-co`. Never empty.
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // Leave room for a `-N` suffix when the slug is taken.
    let mut slug: String = slug.chars().take(MAX_LIST_ID_LEN - 6).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        "list".to_owned()
    } else {
        slug
    }
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
    fn slugs_are_valid_list_ids() {
        for (input, want) in [
            ("Groceries & Co.", "groceries-co"),
            ("  Work  ", "work"),
            ("日本語", "list"),
            ("Sprint 42 -- review", "sprint-42-review"),
        ] {
            let slug = slugify(input);
            assert_eq!(slug, want);
            assert!(is_valid_list_id(&slug));
        }
        let long = slugify(&"ab ".repeat(100));
        assert!(is_valid_list_id(&long) && long.len() <= MAX_LIST_ID_LEN - 6);
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
    }
}
