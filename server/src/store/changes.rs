//! What each change does: the rules (idempotent creates, conflicts, limits, moves, who may do
//! what) written once over [`WriteTx`], whatever the backend.
//!
//! `user` is the caller: `None` when access control is off (everyone may do everything, as
//! before it existed), otherwise the verified `sub`. A list the caller may not read is
//! reported as missing, so ids do not leak; one they may read but not change is `Forbidden`.

use tidings_protocol::{List, Member, Role, Todo, TodoEvent, MAX_LIST_ID_LEN};
use unicode_normalization::UnicodeNormalization;

use tidings_protocol::position;

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
    /// Place after this todo (`Some(None)`: first) of the todo's (target) list.
    pub after: Option<Option<String>>,
}

/// Who receives a logged change.
enum To {
    /// Streams following the change's list (and, without access control, every stream for
    /// changes to the set of lists).
    List,
    /// One user's streams.
    User(String),
}

/// Log `event` under `id`, which [`WriteTx::next_event_id`] gave out in this transaction.
async fn append(tx: &mut dyn WriteTx, id: u64, event: TodoEvent, to: To, auth: bool) -> Result<()> {
    let data = serde_json::to_string(&event)
        .map_err(|e| StoreError::Internal(format!("serializing an event: {e}")))?;
    let (global, for_user) = match to {
        To::List => (!auth && event.is_global(), None),
        To::User(user) => (false, Some(user)),
    };
    tx.append(id, &Recorded { event, global, for_user }, &data).await
}

/// Log `event` in this transaction under the next id; the id.
async fn record(tx: &mut dyn WriteTx, event: TodoEvent, to: To, auth: bool) -> Result<u64> {
    let id = tx.next_event_id().await?;
    append(tx, id, event, to, auth).await?;
    Ok(id)
}

/// What `user` may do with `list`: `Owner` without access control; `None` when the list does
/// not exist or `user` may not read it.
async fn role(
    tx: &mut dyn WriteTx,
    list: &str,
    user: Option<&str>,
) -> Result<Option<(List, Role)>> {
    let Some(row) = tx.list(list).await? else { return Ok(None) };
    let Some(user) = user else { return Ok(Some((row.list, Role::Owner))) };
    if row.owner.as_deref() == Some(user) {
        return Ok(Some((row.list, Role::Owner)));
    }
    Ok(tx.member_role(list, user).await?.map(|role| (row.list, role)))
}

/// `list` with `user`'s role, requiring at least `needed`.
async fn require(
    tx: &mut dyn WriteTx,
    list: &str,
    user: Option<&str>,
    needed: Role,
) -> Result<(List, Role)> {
    match role(tx, list, user).await? {
        None => Err(StoreError::ListNotFound(list.to_owned())),
        Some((_, role)) if role < needed => Err(StoreError::Forbidden(match needed {
            Role::Owner => format!("only the owner of `{}` may do this", Shown(list)),
            _ => format!("a viewer of `{}` may not change it", Shown(list)),
        })),
        Some(found) => Ok(found),
    }
}

/// The error for sharing without access control: there are no users to share with.
pub(crate) fn sharing_needs_access_control() -> StoreError {
    StoreError::Forbidden(
        "sharing needs access control: set TIDINGS_AUTH_SECRET or TIDINGS_AUTH_PUBLIC_KEY".into(),
    )
}

pub(super) async fn create_list(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    id: Option<String>,
    title: String,
    user: Option<&str>,
) -> Result<Upserted<List>> {
    let id = match id {
        Some(id) => {
            if let Some(existing) = tx.list(&id).await? {
                let same = existing.list.title == title && existing.owner.as_deref() == user;
                return if same {
                    let list = List { role: user.map(|_| Role::Owner), ..existing.list };
                    Ok(Upserted { value: list, created: false })
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
    insert_list(tx, config, id, title, user, Capped::Yes)
        .await
        .map(|list| Upserted { value: list, created: true })
}

/// Whether a new list counts against the list limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capped {
    /// A list someone asked for.
    Yes,
    /// A user's personal inbox, made on their first read: a read never fails on a write cap
    /// (one user's lists must not lock another out of hers), and there is one per user.
    No,
}

/// Refuse a new list past the server's limit (an operator's safety limit) or `user`'s.
async fn ensure_list_room(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    user: Option<&str>,
) -> Result<()> {
    if tx.count_lists(None).await? >= config.max_lists {
        return Err(StoreError::LimitReached {
            code: "too_many_lists",
            message: format!("this server holds its maximum of {} lists", config.max_lists),
        });
    }
    if let Some(user) = user {
        if tx.count_lists(Some(user)).await? >= config.max_lists_per_user {
            return Err(StoreError::LimitReached {
                code: "too_many_lists",
                message: format!("you own the maximum of {} lists", config.max_lists_per_user),
            });
        }
    }
    Ok(())
}

/// Insert a list owned by `user` and log it; the list as `user` sees it.
async fn insert_list(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    id: String,
    title: String,
    user: Option<&str>,
    capped: Capped,
) -> Result<List> {
    if capped == Capped::Yes {
        ensure_list_room(tx, config, user).await?;
    }
    let list = List { id, title, created_at: tx.next_created_at(now_ms()).await?, role: None };
    tx.insert_list(&list, user).await?;
    // With access control only the owner's streams get it: with their role, as in
    // `GET /api/lists`, so a client's list of lists says what it may do with the new one.
    let role = user.map(|_| Role::Owner);
    let event = TodoEvent::ListCreated { list: List { role, ..list.clone() } };
    let to = match user {
        // The owner's streams learn of it; nobody else may read it yet.
        Some(user) => To::User(user.to_owned()),
        None => To::List,
    };
    let event_id = record(tx, event, to, user.is_some()).await?;
    if let Some(user) = user {
        tx.open_grant(&list.id, user, event_id).await?;
    }
    Ok(List { role, ..list })
}

pub(super) async fn ensure_inbox(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    user: String,
) -> Result<String> {
    if let Some(inbox) = tx.user_inbox(&user).await? {
        return Ok(inbox);
    }
    let id = tx.claim_list_id(&slugify(&format!("inbox {user}"))).await?;
    insert_list(tx, config, id.clone(), "Inbox".into(), Some(&user), Capped::No).await?;
    tx.set_user_inbox(&user, &id).await?;
    Ok(id)
}

/// Refuse one more todo in `list` when it is full; otherwise the position at its end.
async fn room_at_end(tx: &mut dyn WriteTx, config: &StoreConfig, list: &str) -> Result<String> {
    let (count, last) = tx.list_tail(list).await?;
    if count >= config.max_todos_per_list {
        return Err(StoreError::LimitReached {
            code: "too_many_todos",
            message: format!(
                "list `{}` holds its maximum of {} todos",
                Shown(list),
                config.max_todos_per_list
            ),
        });
    }
    position::between(last.as_deref(), None)
        .ok_or_else(|| StoreError::Internal(format!("no position after {last:?}")))
}

pub(super) async fn create_todo(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    list_id: String,
    id: Option<String>,
    title: String,
    user: Option<&str>,
) -> Result<Upserted<Todo>> {
    require(tx, &list_id, user, Role::Editor).await?;
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
    let position = room_at_end(tx, config, &list_id).await?;
    let now = tx.next_created_at(now_ms()).await?;
    let todo = Todo {
        id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        list_id,
        title,
        done: false,
        created_at: now,
        updated_at: now,
        position,
    };
    tx.insert_todo(&todo).await?;
    record(tx, TodoEvent::TodoCreated { todo: todo.clone() }, To::List, user.is_some()).await?;
    Ok(Upserted { value: todo, created: true })
}

/// The todo `id` if `user` may read it (a todo of an unreadable list does not exist), with
/// `user`'s role on its list.
async fn todo_for(tx: &mut dyn WriteTx, id: &str, user: Option<&str>) -> Result<(Todo, Role)> {
    let not_found = || StoreError::TodoNotFound(id.to_owned());
    let todo = tx.todo(id).await?.ok_or_else(not_found)?;
    let (_, role) = role(tx, &todo.list_id, user).await?.ok_or_else(not_found)?;
    Ok((todo, role))
}

fn viewer_may_not_change(list: &str) -> StoreError {
    StoreError::Forbidden(format!("a viewer of `{}` may not change it", Shown(list)))
}

pub(super) async fn update_todo(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    id: String,
    patch: Patch,
    user: Option<&str>,
) -> Result<Todo> {
    let (before, role_here) = todo_for(tx, &id, user).await?;
    if !role_here.can_edit() {
        return Err(viewer_may_not_change(&before.list_id));
    }
    let mut after = before.clone();
    if let Some(target) = patch.list_id.as_deref().filter(|target| *target != before.list_id) {
        match role(tx, target, user).await? {
            None => return Err(StoreError::UnknownTargetList(target.to_owned())),
            Some((_, role)) if !role.can_edit() => return Err(viewer_may_not_change(target)),
            Some(_) => {}
        }
        // To the end of its new list, unless `after` says where.
        after.position = room_at_end(tx, config, target).await?;
    }
    after.title = patch.title.unwrap_or(after.title);
    after.done = patch.done.unwrap_or(after.done);
    after.list_id = patch.list_id.unwrap_or(after.list_id);
    let auth = user.is_some();
    if let Some(neighbour) = patch.after {
        after.position = place(tx, &after, neighbour.as_deref(), auth).await?;
    }
    if after == before {
        return Ok(before);
    }
    after.updated_at = now_ms().max(before.updated_at);
    tx.update_todo(&after).await?;
    let moved_from = (after.list_id != before.list_id).then_some(before.list_id);
    let event = TodoEvent::TodoUpdated { todo: after.clone(), moved_from };
    record(tx, event, To::List, auth).await?;
    Ok(after)
}

/// The position that puts `todo` right after `neighbour` (`None`: first) in `todo.list_id`.
/// Normally a key between the two neighbours, and nothing else changes. When that key would
/// be longer than [`position::MAX_POSITION_LEN`] (many moves into one gap) the smallest
/// neighbourhood around the spot whose keys can be spread out again is re-spaced here, each
/// todo whose key changes with its own `todo_updated`.
async fn place(
    tx: &mut dyn WriteTx,
    todo: &Todo,
    neighbour: Option<&str>,
    auth: bool,
) -> Result<String> {
    let previous = match neighbour {
        None => None,
        Some(id) => {
            let invalid = |reason| StoreError::InvalidAfter { after: id.to_owned(), reason };
            if id == todo.id {
                return Err(invalid("a todo cannot follow itself"));
            }
            match tx.todo(id).await? {
                Some(found) if found.list_id == todo.list_id => Some(found),
                _ => return Err(invalid("it is not in the todo's list")),
            }
        }
    };
    let low = previous.as_ref().map(|t| (t.position.as_str(), t.id.as_str()));
    // Already there (the todo next to the spot is this one): it stays, and no event.
    let next = tx.todo_after(&todo.list_id, low, None).await?;
    if next.as_ref().is_some_and(|(_, id)| *id == todo.id) {
        return Ok(todo.position.clone());
    }
    let high = tx.todo_after(&todo.list_id, low, Some(&todo.id)).await?;
    let key = position::between(low.map(|(p, _)| p), high.as_ref().map(|(p, _)| p.as_str()));
    if let Some(key) = key.filter(|k| k.len() <= position::MAX_POSITION_LEN) {
        return Ok(key);
    }
    respace(tx, todo, previous.map(|t| t.id), auth).await
}

/// Re-space the neighbourhood of the spot right after `previous` (`None`: the start) in
/// `todo`'s list, `todo` placed there: the position `todo` gets. Windows of 8, 32, 128, …
/// todos around the spot are tried until the keys between the window's outer neighbours can
/// be spread with room to spare (half the maximum length); the whole list always can.
async fn respace(
    tx: &mut dyn WriteTx,
    todo: &Todo,
    previous: Option<String>,
    auth: bool,
) -> Result<String> {
    const ROOMY: usize = position::MAX_POSITION_LEN / 2;
    let mut order: Vec<Todo> =
        tx.list_todos(&todo.list_id).await?.into_iter().filter(|t| t.id != todo.id).collect();
    let spot = match &previous {
        None => 0,
        Some(id) => order.iter().position(|t| &t.id == id).map_or(order.len(), |i| i + 1),
    };
    order.insert(spot, todo.clone());
    let mut half = 4;
    let (from, keys) = loop {
        let (from, to) = (spot.saturating_sub(half), (spot + half).min(order.len()));
        let low = from.checked_sub(1).map(|i| order[i].position.as_str());
        let high = order.get(to).map(|t| t.position.as_str());
        let keys = position::spread(low, high, to - from);
        let whole = from == 0 && to == order.len();
        match keys {
            Some(keys) if whole || keys.iter().all(|k| k.len() <= ROOMY) => break (from, keys),
            _ if whole => {
                return Err(StoreError::Internal("positions could not be re-spaced".into()))
            }
            _ => half *= 4,
        }
    };
    let mut placed = None;
    for (todo_here, key) in order.into_iter().skip(from).zip(keys) {
        if todo_here.id == todo.id {
            placed = Some(key);
        } else if todo_here.position != key {
            let moved = Todo { position: key, ..todo_here };
            tx.update_todo(&moved).await?;
            record(tx, TodoEvent::TodoUpdated { todo: moved, moved_from: None }, To::List, auth)
                .await?;
        }
    }
    placed.ok_or_else(|| StoreError::Internal("the moved todo left its neighbourhood".into()))
}

/// Rename `list` (editors and owners): the list as `user` sees it. The same title changes
/// nothing and logs nothing.
pub(super) async fn rename_list(
    tx: &mut dyn WriteTx,
    list: String,
    title: String,
    user: Option<&str>,
) -> Result<List> {
    let (found, role) = require(tx, &list, user, Role::Editor).await?;
    let shown = List { role: user.map(|_| role), ..found.clone() };
    if found.title == title {
        return Ok(shown);
    }
    tx.rename_list(&list, &title).await?;
    let event = TodoEvent::ListUpdated { list: List { title: title.clone(), role: None, ..found } };
    record(tx, event, To::List, user.is_some()).await?;
    Ok(List { title, ..shown })
}

pub(super) async fn delete_todo(
    tx: &mut dyn WriteTx,
    id: String,
    user: Option<&str>,
) -> Result<()> {
    let (todo, role) = todo_for(tx, &id, user).await?;
    if !role.can_edit() {
        return Err(viewer_may_not_change(&todo.list_id));
    }
    let event_id = tx.next_event_id().await?;
    let list_id =
        tx.delete_todo(&id, event_id).await?.ok_or_else(|| StoreError::TodoNotFound(id.clone()))?;
    append(tx, event_id, TodoEvent::TodoDeleted { id, list_id }, To::List, user.is_some()).await
}

pub(super) async fn delete_list(
    tx: &mut dyn WriteTx,
    id: String,
    user: Option<&str>,
) -> Result<()> {
    if user.is_none() && id == tidings_protocol::DEFAULT_LIST_ID {
        // It would come back, empty and unannounced, at the next start.
        return Err(StoreError::Forbidden(format!(
            "`{}` is the default list and cannot be deleted",
            tidings_protocol::DEFAULT_LIST_ID
        )));
    }
    require(tx, &id, user, Role::Owner).await?;
    let event_id = tx.next_event_id().await?;
    // Logged before the grants close: everyone who could read the list learns it is gone.
    append(tx, event_id, TodoEvent::ListDeleted { list_id: id.clone() }, To::List, user.is_some())
        .await?;
    tx.close_grants(&id, None, event_id).await?;
    tx.delete_list(&id, event_id).await?;
    Ok(())
}

pub(super) async fn set_member(
    tx: &mut dyn WriteTx,
    config: &StoreConfig,
    list: String,
    member: String,
    role: Role,
    user: Option<&str>,
) -> Result<Member> {
    let Some(user) = user else { return Err(sharing_needs_access_control()) };
    let (found, _) = require(tx, &list, Some(user), Role::Owner).await?;
    if role == Role::Owner || member == user {
        return Err(StoreError::Conflict {
            code: "owner_role",
            message: "a list has one owner, its creator; members are viewers or editors".into(),
        });
    }
    let before = tx.member_role(&list, &member).await?;
    if before == Some(role) {
        return Ok(Member { user: member, role });
    }
    if before.is_none() && tx.count_members(&list).await? >= config.max_members_per_list {
        return Err(StoreError::LimitReached {
            code: "too_many_members",
            message: format!(
                "`{}` has its maximum of {} members",
                Shown(&list),
                config.max_members_per_list
            ),
        });
    }
    tx.set_member(&list, &member, role).await?;
    let event = TodoEvent::ListShared { list: List { role: Some(role), ..found }, role };
    let event_id = record(tx, event, To::User(member.clone()), true).await?;
    if before.is_none() {
        tx.open_grant(&list, &member, event_id).await?;
    }
    Ok(Member { user: member, role })
}

pub(super) async fn remove_member(
    tx: &mut dyn WriteTx,
    list: String,
    member: String,
    user: Option<&str>,
) -> Result<()> {
    let Some(user) = user else { return Err(sharing_needs_access_control()) };
    if member == user {
        // Leaving: any member may; the owner may not leave what only they own.
        match role(tx, &list, Some(user)).await? {
            None => return Err(StoreError::ListNotFound(list)),
            Some((_, Role::Owner)) => {
                return Err(StoreError::Conflict {
                    code: "owner_cannot_leave",
                    message: format!(
                        "you own `{}`: delete it, or share it with others, but you cannot leave it",
                        Shown(&list)
                    ),
                })
            }
            Some(_) => {}
        }
    } else {
        require(tx, &list, Some(user), Role::Owner).await?;
    }
    if !tx.remove_member(&list, &member).await? {
        return Err(StoreError::MemberNotFound { list, user: member });
    }
    let event = TodoEvent::ListUnshared { list_id: list.clone() };
    let event_id = record(tx, event, To::User(member.clone()), true).await?;
    tx.close_grants(&list, Some(&member), event_id).await
}

/// Why a list id would pass for another one, if it would: it mixes scripts (`inbox-аlice`
/// with a Cyrillic `а`), or, not being ASCII, it reads as an ASCII id (`іnbох`, all
/// Cyrillic: its UTS #39 skeleton is ASCII). ASCII ids never do. (Two non-ASCII ids that
/// look alike in one script are not caught: that needs the skeletons of every stored id.)
pub(crate) fn look_alike(id: &str) -> Option<&'static str> {
    use unicode_security::MixedScript;
    if id.is_ascii() {
        None
    } else if !id.is_single_script() {
        Some("mixes scripts")
    } else if unicode_security::skeleton(id).all(|c| c.is_ascii()) {
        Some("looks like an ASCII id")
    } else {
        None
    }
}

/// A list id derived from a title: `"Groceries & Co."` → `groceries-co`, `"Дом 2"` →
/// `дом-2`. Letters of every script are kept (lowercased, NFC); everything else separates
/// words. Words that would make the id a [`look_alike`] are left out (`"Рау Java"` →
/// `java`: `рау` reads as Latin `pay`). Never empty (`list` when nothing is left), and short
/// enough for a `-N` suffix.
pub(crate) fn slugify(title: &str) -> String {
    let slug = slug_words(title);
    if look_alike(&slug).is_none() {
        return slug;
    }
    let mut kept = String::new();
    for word in slug.split('-') {
        let candidate = if kept.is_empty() { word.to_owned() } else { format!("{kept}-{word}") };
        if look_alike(&candidate).is_none() {
            kept = candidate;
        }
    }
    if kept.chars().any(char::is_alphabetic) {
        kept
    } else {
        "list".to_owned()
    }
}

fn slug_words(title: &str) -> String {
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

/// Delete the done todos of `list` (editors and owners), one event each, in one id range;
/// how many.
pub(super) async fn clear_done(
    tx: &mut dyn WriteTx,
    list: String,
    user: Option<&str>,
) -> Result<u64> {
    require(tx, &list, user, Role::Editor).await?;
    let done = tx.done_todos(&list).await?;
    for id in &done {
        let event_id = tx.next_event_id().await?;
        tx.delete_todo(id, event_id).await?;
        let event = TodoEvent::TodoDeleted { id: id.clone(), list_id: list.clone() };
        append(tx, event_id, event, To::List, user.is_some()).await?;
    }
    Ok(done.len() as u64)
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
            ("Дом 2", "дом-2"),
            ("Курс 2", "курс-2"),
            ("Сор 2", "list"),
            ("Рау Java", "java"),
            ("inbox аlice", "inbox"),
            ("हिन्दी सूची", "हिन्दी-सूची"),
            ("Sprint 42 -- review", "sprint-42-review"),
            ("!!!", "list"),
        ] {
            let slug = slugify(input);
            assert_eq!(slug, want);
            assert!(is_valid_list_id(&slug), "{slug}");
            assert_eq!(look_alike(&slug), None, "{slug}");
        }
        for long in [slugify(&"ab ".repeat(100)), slugify(&"語".repeat(100))] {
            assert!(is_valid_list_id(&format!("{long}-4294967295")), "{long}");
        }
    }
}

#[cfg(test)]
mod look_alikes {
    use super::look_alike;

    #[test]
    fn ids_that_pass_for_others_are_found() {
        for id in ["inbox", "groceries-2", "дом-2", "買い物", "курс-дом", "हिन्दी-सूची", "ελληνικά"]
        {
            assert_eq!(look_alike(id), None, "{id}");
        }
        // A Cyrillic `а` in a Latin id; Latin and Greek; all-Cyrillic letters that read as Latin.
        for (id, why) in [
            ("inbox-\u{430}lice", "mixes scripts"),
            ("\u{3b1}lpha", "mixes scripts"),
            ("\u{456}nb\u{43e}\u{445}", "mixes scripts"),
            ("\u{440}\u{430}\u{443}", "looks like an ASCII id"),
        ] {
            assert_eq!(look_alike(id), Some(why), "{id}");
        }
    }
}
