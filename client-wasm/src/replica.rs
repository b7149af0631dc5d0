//! The client's copy of the todos: a snapshot plus the events applied to it.
//!
//! Which events to apply, once each and in order, is the session's business
//! ([`crate::session`]); events carry full state, so applying one is idempotent anyway. The
//! order is the server's snapshot order ([`Todo::order_key`]), so a replica that applied
//! events equals a fresh snapshot exactly.
//!
//! Each entry carries a payload `P` beside the typed value: in the browser, the JavaScript
//! object the store hands out, so it is built once per change, not once per read.

use tidings_protocol::{List, Todo, TodoEvent};

/// What applying an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing (an old event, or a change to a todo this replica does not hold).
    None,
    /// The todos changed.
    Todos,
    /// The lists changed.
    Lists,
    /// A list went away, and its todos with it.
    ListsAndTodos,
}

/// Todos of the followed lists, and every list.
#[derive(Debug, Clone)]
pub struct Replica<P> {
    follow: Option<Vec<String>>,
    todos: Vec<(Todo, P)>,
    lists: Vec<(List, P)>,
}

fn list_key(list: &List) -> (i64, &str) {
    (list.created_at, &list.id)
}

impl<P> Replica<P> {
    /// An empty replica following `lists` (`None`: every list).
    pub fn new(follow: Option<Vec<String>>) -> Self {
        Replica { follow, todos: Vec::new(), lists: Vec::new() }
    }

    /// Whether todos of `list` belong here.
    pub fn follows(&self, list: &str) -> bool {
        self.follow.as_ref().is_none_or(|lists| lists.iter().any(|l| l == list))
    }

    /// The todos, in display order.
    pub fn todos(&self) -> &[(Todo, P)] {
        &self.todos
    }

    /// The lists, oldest first.
    pub fn lists(&self) -> &[(List, P)] {
        &self.lists
    }

    /// Replace the todos with a snapshot's.
    pub fn reset(&mut self, todos: Vec<(Todo, P)>) {
        // The server sends snapshots in this order already (an `initial` snapshot from
        // elsewhere may not be). By insertion, not `sort`: the package then carries no sort
        // implementation, and a todo in order goes at the end, so an ordered snapshot costs
        // a binary search per todo.
        self.todos = Vec::with_capacity(todos.len());
        for (todo, payload) in todos {
            if self.follows(&todo.list_id) {
                let at = self.todos.partition_point(|(t, _)| t.order_key() <= todo.order_key());
                self.todos.insert(at, (todo, payload));
            }
        }
    }

    /// The role this replica's user has on `list`, if known.
    pub fn role(&self, list: &str) -> Option<tidings_protocol::Role> {
        self.lists.iter().find(|(l, _)| l.id == list).and_then(|(l, _)| l.role)
    }

    /// Replace the lists with a snapshot's (lists come and go: deleted, shared, unshared).
    /// Whether anything changed.
    pub fn set_lists(&mut self, lists: Vec<(List, P)>) -> bool {
        let before = std::mem::take(&mut self.lists);
        for (list, payload) in lists {
            self.upsert_list(list, payload);
        }
        before.len() != self.lists.len()
            || before.iter().zip(&self.lists).any(|((a, _), (b, _))| a != b)
    }

    /// Apply `event`. `payload` makes the payload of the todo or list it carries.
    pub fn apply(&mut self, event: &TodoEvent, payload: impl FnOnce() -> P) -> Effect {
        let changed = match event {
            TodoEvent::TodoCreated { todo } | TodoEvent::TodoUpdated { todo, .. } => {
                if self.follows(&todo.list_id) {
                    self.upsert_todo(todo.clone(), payload());
                    true
                } else {
                    // Moved to a list this replica does not follow.
                    self.remove_todo(&todo.id)
                }
            }
            TodoEvent::TodoDeleted { id, .. } => self.remove_todo(id),
            TodoEvent::ListCreated { list } | TodoEvent::ListShared { list, .. } => {
                return if self.upsert_list(list.clone(), payload()) {
                    Effect::Lists
                } else {
                    Effect::None
                };
            }
            // Renamed: sent without a role (readers have different ones); the role stays.
            TodoEvent::ListUpdated { list } => {
                let role = self.role(&list.id);
                return if self.upsert_list(List { role, ..list.clone() }, payload()) {
                    Effect::Lists
                } else {
                    Effect::None
                };
            }
            // Deleted, or no longer readable: the list and its todos go.
            TodoEvent::ListDeleted { list_id } | TodoEvent::ListUnshared { list_id } => {
                let before = (self.lists.len(), self.todos.len());
                self.lists.retain(|(l, _)| l.id != *list_id);
                self.todos.retain(|(t, _)| t.list_id != *list_id);
                return match (before.0 != self.lists.len(), before.1 != self.todos.len()) {
                    (_, true) => Effect::ListsAndTodos,
                    (true, false) => Effect::Lists,
                    (false, false) => Effect::None,
                };
            }
        };
        if changed {
            Effect::Todos
        } else {
            Effect::None
        }
    }

    fn upsert_todo(&mut self, todo: Todo, payload: P) {
        self.remove_todo(&todo.id);
        let at = self.todos.partition_point(|(t, _)| t.order_key() < todo.order_key());
        self.todos.insert(at, (todo, payload));
    }

    fn remove_todo(&mut self, id: &str) -> bool {
        match self.todos.iter().position(|(t, _)| t.id == id) {
            Some(at) => {
                self.todos.remove(at);
                true
            }
            None => false,
        }
    }

    fn upsert_list(&mut self, list: List, payload: P) -> bool {
        if let Some(at) = self.lists.iter().position(|(l, _)| l.id == list.id) {
            if self.lists[at].0 == list {
                return false;
            }
            self.lists.remove(at);
        }
        let at = self.lists.partition_point(|(l, _)| list_key(l) < list_key(&list));
        self.lists.insert(at, (list, payload));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn todo(id: &str, list: &str, created_at: i64) -> Todo {
        Todo {
            id: id.into(),
            list_id: list.into(),
            title: id.to_uppercase(),
            done: false,
            created_at,
            updated_at: created_at,
            position: format!("{created_at:08}"),
        }
    }

    fn ids(replica: &Replica<()>) -> Vec<&str> {
        replica.todos().iter().map(|(t, _)| t.id.as_str()).collect()
    }

    fn created(t: Todo) -> TodoEvent {
        TodoEvent::TodoCreated { todo: t }
    }

    #[test]
    fn applying_an_event_twice_changes_nothing_the_second_time() {
        let mut r = Replica::new(Some(vec!["inbox".into()]));
        r.reset(vec![(todo("b", "inbox", 2), ()), (todo("a", "inbox", 1), ())]);
        assert_eq!(ids(&r), ["a", "b"]);
        assert_eq!(r.apply(&created(todo("c", "inbox", 3)), || ()), Effect::Todos);
        r.apply(&created(todo("c", "inbox", 3)), || ());
        assert_eq!(ids(&r), ["a", "b", "c"]);
    }

    #[test]
    fn a_deleted_or_unshared_list_takes_its_todos_with_it() {
        let mut r = Replica::new(None);
        let list = |id: &str| List { id: id.into(), title: id.into(), created_at: 1, role: None };
        r.set_lists(vec![(list("work"), ()), (list("home"), ())]);
        r.reset(vec![(todo("a", "work", 1), ()), (todo("b", "home", 2), ())]);
        let deleted = TodoEvent::ListDeleted { list_id: "work".into() };
        assert_eq!(r.apply(&deleted, || ()), Effect::ListsAndTodos);
        assert_eq!(ids(&r), ["b"]);
        assert_eq!(r.apply(&deleted, || ()), Effect::None, "twice changes nothing");
        let unshared = TodoEvent::ListUnshared { list_id: "home".into() };
        assert_eq!(r.apply(&unshared, || ()), Effect::ListsAndTodos);
        assert!(r.lists().is_empty() && r.todos().is_empty());
        let shared =
            TodoEvent::ListShared { list: list("home"), role: tidings_protocol::Role::Viewer };
        assert_eq!(r.apply(&shared, || ()), Effect::Lists);
    }

    #[test]
    fn an_unordered_snapshot_is_put_in_display_order() {
        let mut r = Replica::new(None);
        let at = |id: &str, ms| (todo(id, "inbox", ms), ());
        r.reset(vec![at("d", 3), at("a", 1), at("c", 3), at("e", 0), at("b", 2)]);
        assert_eq!(ids(&r), ["e", "a", "b", "c", "d"]);
    }

    #[test]
    fn updates_keep_the_server_order_and_moves_leave_or_join() {
        let mut r = Replica::new(Some(vec!["inbox".into()]));
        r.reset(vec![(todo("a", "inbox", 1), ()), (todo("b", "inbox", 2), ())]);
        let mut renamed = todo("a", "inbox", 1);
        renamed.title = "renamed".into();
        renamed.done = true;
        r.apply(&TodoEvent::TodoUpdated { todo: renamed.clone(), moved_from: None }, || ());
        assert_eq!(r.todos()[0].0, renamed);
        assert_eq!(ids(&r), ["a", "b"]);

        let moved_out =
            TodoEvent::TodoUpdated { todo: todo("a", "work", 1), moved_from: Some("inbox".into()) };
        assert_eq!(r.apply(&moved_out, || ()), Effect::Todos);
        assert_eq!(ids(&r), ["b"]);
        // A todo moving in from elsewhere lands at its place in the order.
        let moved_in =
            TodoEvent::TodoUpdated { todo: todo("x", "inbox", 0), moved_from: Some("work".into()) };
        r.apply(&moved_in, || ());
        assert_eq!(ids(&r), ["x", "b"]);
        // Changes in lists not followed are no change at all.
        assert_eq!(r.apply(&created(todo("w", "work", 5)), || ()), Effect::None);
        let deleted = TodoEvent::TodoDeleted { id: "b".into(), list_id: "inbox".into() };
        assert_eq!(r.apply(&deleted, || ()), Effect::Todos);
        assert_eq!(ids(&r), ["x"]);
    }

    #[test]
    fn replaying_a_stretch_twice_converges() {
        let events = [
            created(todo("a", "inbox", 1)),
            TodoEvent::TodoUpdated { todo: todo("a", "inbox", 1), moved_from: None },
            created(todo("b", "inbox", 2)),
            TodoEvent::TodoDeleted { id: "a".into(), list_id: "inbox".into() },
        ];
        let mut once: Replica<()> = Replica::new(None);
        for e in &events {
            once.apply(e, || ());
        }
        // A second replica that got a snapshot after the first two events, then every event
        // again: full-state events converge.
        let mut twice: Replica<()> = Replica::new(None);
        twice.reset(vec![(todo("a", "inbox", 1), ())]);
        for e in &events {
            twice.apply(e, || ());
        }
        assert_eq!(ids(&once), ids(&twice));
        assert_eq!(ids(&once), ["b"]);
    }

    #[test]
    fn a_lists_snapshot_replaces_the_lists_in_creation_order() {
        let list =
            |id: &str, at| List { id: id.into(), title: id.into(), created_at: at, role: None };
        let ids = |r: &Replica<()>| -> Vec<String> {
            r.lists().iter().map(|(l, _)| l.id.clone()).collect()
        };
        let mut r: Replica<()> = Replica::new(Some(vec!["inbox".into()]));
        assert!(r.set_lists(vec![(list("work", 2), ()), (list("inbox", 1), ())]));
        assert!(!r.set_lists(vec![(list("inbox", 1), ()), (list("work", 2), ())]), "the same");
        let event = TodoEvent::ListCreated { list: list("home", 3) };
        assert_eq!(r.apply(&event, || ()), Effect::Lists);
        assert_eq!(ids(&r), ["inbox", "work", "home"]);
        // A refetch after lists went away (deleted or unshared meanwhile) drops them.
        assert!(r.set_lists(vec![(list("inbox", 1), ())]));
        assert_eq!(ids(&r), ["inbox"]);
        // A new role is a change.
        let shared = List { role: Some(tidings_protocol::Role::Viewer), ..list("inbox", 1) };
        assert!(r.set_lists(vec![(shared, ())]));
    }
}
