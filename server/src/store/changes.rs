//! What each change does: the rules (idempotent creates, conflicts, limits, moves) written
//! once over [`WriteTx`], whatever the backend.

use tidings_protocol::{List, Todo, TodoEvent, MAX_LIST_ID_LEN};
use unicode_normalization::UnicodeNormalization;

use super::{now_ms, Recorded, Result, Shown, StoreConfig, StoreError, Upserted, WriteTx};

/// A validated change to a todo: each field that is set replaces the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// New title.
    pub title: Option<String>,
    /// New done state.
    pub done: Option<bool>,
    /// Move to this list.
    pub list_id: Option<String>,
}

/// Log `event` in this transaction under the next id; the id.
async fn record(tx: &mut dyn WriteTx, event: TodoEvent, global: bool) -> Result<u64> {
    let id = tx.next_event_id().await?;
    append(tx, id, event, global).await?;
    Ok(id)
}

/// Log `event` under `id`, which [`WriteTx::next_event_id`] gave out in this transaction.
async fn append(tx: &mut dyn WriteTx, id: u64, event: TodoEvent, global: bool) -> Result<()> {
    let data = serde_json::to_string(&event)
        .map_err(|e| StoreError::Internal(format!("serializing an event: {e}")))?;
    tx.append(id, &Recorded { event, global, audience: None }, &data).await
}

pub(super) async fn create_list(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    id: Option<String>,
    title: String,
) -> Result<Upserted<List>> {
    let id = match id {
        Some(id) => {
            if let Some(existing) = tx.list(&id).await? {
                return if existing.title == title {
                    Ok(Upserted { value: existing, created: false })
                } else {
                    Err(StoreError::Conflict {
                        code: "list_exists",
                        message: format!("a list with id `{}` already exists", Shown(&id)),
                    })
                };
            }
            id
        }
        None => tx.claim_list_id(&slugify(&title)).await?,
    };
    if tx.count_lists().await? >= config.max_lists {
        return Err(StoreError::LimitReached {
            code: "too_many_lists",
            message: format!("this server holds its maximum of {} lists", config.max_lists),
        });
    }
    let list = List { id, title, created_at: tx.next_created_at(now_ms()).await? };
    tx.insert_list(&list).await?;
    record(tx, TodoEvent::ListCreated { list: list.clone() }, true).await?;
    Ok(Upserted { value: list, created: true })
}

/// Refuse one more todo in `list` when it is full.
async fn ensure_room(tx: &mut dyn WriteTx, config: &StoreConfig, list: &str) -> Result<()> {
    if tx.count_todos(list).await? >= config.max_todos_per_list {
        return Err(StoreError::LimitReached {
            code: "too_many_todos",
            message: format!(
                "list `{}` holds its maximum of {} todos",
                Shown(list),
                config.max_todos_per_list
            ),
        });
    }
    Ok(())
}

pub(super) async fn create_todo(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    list_id: String,
    id: Option<String>,
    title: String,
) -> Result<Upserted<Todo>> {
    if tx.list(&list_id).await?.is_none() {
        return Err(StoreError::ListNotFound(list_id));
    }
    if let Some(id) = &id {
        if let Some(existing) = tx.todo(id).await? {
            return if existing.list_id == list_id && existing.title == title {
                Ok(Upserted { value: existing, created: false })
            } else {
                Err(StoreError::Conflict {
                    code: "id_conflict",
                    message: format!("a different todo with id `{}` already exists", Shown(id)),
                })
            };
        }
        // A retry of a create whose todo was deleted since must not bring it back.
        if tx.is_tombstoned(id).await? {
            return Err(StoreError::Conflict {
                code: "todo_deleted",
                message: format!("the todo with id `{}` was deleted; use a new id", Shown(id)),
            });
        }
    }
    ensure_room(tx, config, &list_id).await?;
    let now = tx.next_created_at(now_ms()).await?;
    let todo = Todo {
        id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        list_id,
        title,
        done: false,
        created_at: now,
        updated_at: now,
    };
    tx.insert_todo(&todo).await?;
    record(tx, TodoEvent::TodoCreated { todo: todo.clone() }, false).await?;
    Ok(Upserted { value: todo, created: true })
}

pub(super) async fn update_todo(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    id: String,
    patch: Patch,
) -> Result<Todo> {
    let before = tx.todo(&id).await?.ok_or(StoreError::TodoNotFound(id))?;
    if let Some(target) = patch.list_id.as_deref().filter(|target| *target != before.list_id) {
        if tx.list(target).await?.is_none() {
            return Err(StoreError::UnknownTargetList(target.to_owned()));
        }
        ensure_room(tx, config, target).await?;
    }
    let mut after = before.clone();
    after.title = patch.title.unwrap_or(after.title);
    after.done = patch.done.unwrap_or(after.done);
    after.list_id = patch.list_id.unwrap_or(after.list_id);
    if after == before {
        return Ok(before);
    }
    after.updated_at = now_ms().max(before.updated_at);
    tx.update_todo(&after).await?;
    let moved_from = (after.list_id != before.list_id).then_some(before.list_id);
    record(tx, TodoEvent::TodoUpdated { todo: after.clone(), moved_from }, false).await?;
    Ok(after)
}

pub(super) async fn delete_todo(tx: &mut dyn WriteTx, id: String) -> Result<()> {
    let event_id = tx.next_event_id().await?;
    let list_id =
        tx.delete_todo(&id, event_id).await?.ok_or_else(|| StoreError::TodoNotFound(id.clone()))?;
    append(tx, event_id, TodoEvent::TodoDeleted { id, list_id }, false).await
}

/// A list id derived from a title: `"Groceries & Co."` → `groceries-co`, `"Курс 2"` →
/// `курс-2`. Letters of every script are kept (lowercased, NFC); everything else separates
/// words. Never empty, and short enough for a `-N` suffix.
pub(crate) fn slugify(title: &str) -> String {
    // Room for `-` and ten digits.
    const MAX_BASE: usize = MAX_LIST_ID_LEN - 11;
    let mut slug = String::new();
    for c in title.nfc().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || (!c.is_ascii() && is_combining_mark(c)) {
            if slug.len() + c.len_utf8() > MAX_BASE {
                break;
            }
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        "list".to_owned()
    } else {
        slug
    }
}

/// Marks that belong to the letter before them (Devanagari vowel signs, Hebrew points):
/// dropping them would change the word.
fn is_combining_mark(c: char) -> bool {
    unicode_normalization::char::is_combining_mark(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_protocol::is_valid_list_id;

    #[test]
    fn slugs_are_valid_list_ids_and_keep_every_script() {
        for (input, want) in [
            ("Groceries & Co.", "groceries-co"),
            ("  Work  ", "work"),
            ("日本語", "日本語"),
            ("Курс 2", "курс-2"),
            ("हिन्दी सूची", "हिन्दी-सूची"),
            ("Sprint 42 -- review", "sprint-42-review"),
            ("!!!", "list"),
        ] {
            let slug = slugify(input);
            assert_eq!(slug, want);
            assert!(is_valid_list_id(&slug), "{slug}");
        }
        for long in [slugify(&"ab ".repeat(100)), slugify(&"語".repeat(100))] {
            assert!(is_valid_list_id(&format!("{long}-4294967295")), "{long}");
        }
    }
}
