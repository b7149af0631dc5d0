//! Who receives an event: the one place that decides whether an event goes to a stream.
//!
//! An event is addressed by its [`Scope`] (a list, a user, or everyone). A stream follows some
//! lists, and with access control carries only what its user may read: [`Audience`] decides,
//! event by event in id order, for live, replayed and caught-up events alike.
//!
//! Read access is a set of intervals of the event log per list ([`Grant`]): a user may read
//! the events of a list with ids in `(from, until]`, where `from` is the event that created or
//! shared the list with them and `until` the one that unshared or deleted it. A stream loads
//! its user's intervals together with the head when it starts, and then learns every later
//! change of them from the per-user events it processes in id order (`list_created` and
//! `list_shared` open one, `list_unshared` and `list_deleted` close one: an
//! [`AccessChange`]). The decision for an event depends only on its id and those intervals,
//! so a stream carries exactly the same events live, replayed after `Last-Event-ID`, or caught
//! up after lag: a list's events start right after `list_shared` and stop at `list_unshared`.

use tidings_protocol::event_names;

use crate::store::{Grant, Grants, LoggedEvent};

/// Which streams an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every stream (heartbeats, probes, `list_created` without access control).
    All,
    /// Streams that follow `list`, or `moved_from` when a todo left that list.
    List {
        /// The list the change happened in.
        list: String,
        /// The list a moved todo left.
        moved_from: Option<String>,
    },
    /// The streams of one user (per-user events).
    User(String),
}

impl Scope {
    /// The scope of a logged change.
    pub fn of(event: &LoggedEvent) -> Self {
        if let Some(user) = &event.for_user {
            Scope::User(user.clone())
        } else if event.global {
            Scope::All
        } else {
            Scope::List { list: event.list_id.clone(), moved_from: event.moved_from.clone() }
        }
    }

    /// Whether a stream following `lists` (`None`: every list) of `user` is addressed.
    fn reaches(&self, lists: Option<&[String]>, user: Option<&str>) -> bool {
        match (self, lists) {
            (Scope::User(target), _) => user == Some(target.as_str()),
            (Scope::All, _) | (_, None) => true,
            (Scope::List { list, moved_from }, Some(lists)) => {
                lists.iter().any(|l| l == list || Some(l) == moved_from.as_ref())
            }
        }
    }
}

/// Who one stream is for and what it follows: decides, event by event in id order, what goes.
#[derive(Debug, Clone)]
pub struct Audience {
    lists: Option<Vec<String>>,
    /// With access control: what the user may read, as of the stream's position.
    access: Option<Access>,
}

impl Audience {
    /// A stream following `lists` (`None`: every list), for `access`'s user when access
    /// control is on.
    pub fn new(lists: Option<Vec<String>>, access: Option<Access>) -> Self {
        Audience { lists, access }
    }

    /// Whether an event (`id`, `scope`, `change`) goes to this stream; learns what the event
    /// changes about the user's access. Events without an id (heartbeats, probes) always go.
    pub fn admits(
        &mut self,
        id: Option<u64>,
        scope: &Scope,
        change: Option<&AccessChange>,
    ) -> bool {
        match &mut self.access {
            None => scope.reaches(self.lists.as_deref(), None),
            Some(access) => access.admits(id, scope, change, self.lists.as_deref()),
        }
    }

    /// The lists the stream follows (`None`: every list).
    pub fn lists(&self) -> Option<&[String]> {
        self.lists.as_deref()
    }

    /// [`Audience::admits`] for an event read from the log.
    pub fn admits_logged(&mut self, event: &LoggedEvent) -> bool {
        self.admits(Some(event.id), &Scope::of(event), AccessChange::of(event).as_ref())
    }
}

/// What an event does to its audience's read access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// Opens access to the list (`list_created` for its owner, `list_shared`).
    Open(String),
    /// Closes its audience's access to the list (`list_unshared`).
    Close(String),
    /// Closes everyone's access to the list, after delivering this event (`list_deleted`).
    CloseAll(String),
}

impl AccessChange {
    /// The effect of a logged event, if any.
    pub fn of(event: &LoggedEvent) -> Option<Self> {
        let list = event.list_id.clone();
        match event.kind.as_str() {
            event_names::LIST_CREATED | event_names::LIST_SHARED if event.for_user.is_some() => {
                Some(AccessChange::Open(list))
            }
            event_names::LIST_UNSHARED => Some(AccessChange::Close(list)),
            event_names::LIST_DELETED => Some(AccessChange::CloseAll(list)),
            _ => None,
        }
    }
}

/// A user's read access along the log, as one stream sees it.
#[derive(Debug, Clone)]
pub struct Access {
    user: String,
    grants: Grants,
}

impl Access {
    /// The access of `user`, whose intervals (read with the stream's start point) are
    /// `grants`.
    pub fn new(user: String, grants: Grants) -> Self {
        Access { user, grants }
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the user may read the events of `list` at `id`.
    fn can_read(&self, list: &str, id: u64) -> bool {
        self.grants.get(list).is_some_and(|grants| {
            grants.iter().any(|g| g.from < id && g.until.is_none_or(|until| id <= until))
        })
    }

    /// Whether an event (`id`, `scope`, `change`) goes to this stream, which follows `lists`
    /// (`None`: every list); learns what the event changes about the user's access.
    fn admits(
        &mut self,
        id: Option<u64>,
        scope: &Scope,
        change: Option<&AccessChange>,
        lists: Option<&[String]>,
    ) -> bool {
        let Some(id) = id else {
            // Unlogged messages: a presence message goes where its list is followed and
            // readable now; heartbeats and probes go everywhere.
            return match scope {
                Scope::List { list, .. } => {
                    scope.reaches(lists, Some(&self.user)) && self.can_read_now(list)
                }
                Scope::All | Scope::User(_) => true,
            };
        };
        match scope {
            Scope::User(user) => {
                if *user != self.user {
                    return false;
                }
                match change {
                    Some(AccessChange::Open(list)) => self.open(list, id),
                    Some(AccessChange::Close(list)) => self.close(list, id),
                    _ => {}
                }
                // The user's own news (a list shared or unshared) reaches every stream of
                // theirs, whatever lists it follows.
                true
            }
            // With access control every change names its list; nothing is for everyone.
            Scope::All => false,
            Scope::List { list, moved_from } => {
                // A deleted list reaches every stream of its readers, like a share or an
                // unshare, whatever lists the stream follows: sidebars must drop it.
                let followed = scope.reaches(lists, Some(&self.user))
                    || matches!(change, Some(AccessChange::CloseAll(_)));
                let readable = self.can_read(list, id)
                    || moved_from.as_deref().is_some_and(|from| self.can_read(from, id));
                if let Some(AccessChange::CloseAll(list)) = change {
                    self.close(list, id);
                }
                followed && readable
            }
        }
    }

    /// Whether the user may read `list` as of the stream's position (an interval still open).
    fn can_read_now(&self, list: &str) -> bool {
        self.grants.get(list).is_some_and(|grants| grants.iter().any(|g| g.until.is_none()))
    }

    fn open(&mut self, list: &str, from: u64) {
        let grants = self.grants.entry(list.to_owned()).or_default();
        // Already known when it was read with the stream's start.
        if !grants.iter().any(|g| g.from == from) {
            grants.push(Grant { from, until: None });
        }
    }

    fn close(&mut self, list: &str, at: u64) {
        for grant in self.grants.get_mut(list).into_iter().flatten() {
            if grant.from < at && grant.until.is_none() {
                grant.until = Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_filters_by_list_move_and_user() {
        let moved = Scope::List { list: "b".into(), moved_from: Some("a".into()) };
        let a = ["a".to_owned()];
        let c = ["c".to_owned()];
        assert!(moved.reaches(Some(&a), None));
        assert!(moved.reaches(None, None));
        assert!(!moved.reaches(Some(&c), None));
        assert!(Scope::All.reaches(Some(&c), None));
        let alice = Scope::User("alice".into());
        assert!(alice.reaches(Some(&c), Some("alice")));
        assert!(!alice.reaches(None, Some("bob")));
        assert!(!alice.reaches(None, None));
    }

    fn list_scope(list: &str) -> Scope {
        Scope::List { list: list.into(), moved_from: None }
    }

    #[test]
    fn a_list_is_readable_between_its_share_and_its_unshare() {
        let mut access = Access::new("bob".into(), Grants::new());
        let bob = Scope::User("bob".into());
        let work = list_scope("work");
        assert!(!access.admits(Some(3), &work, None, None), "not shared yet");
        assert!(access.admits(Some(4), &bob, Some(&AccessChange::Open("work".into())), None));
        assert!(access.admits(Some(5), &work, None, None));
        assert!(!access.admits(Some(5), &work, None, Some(&["home".to_owned()])), "filtered");
        assert!(access.admits(Some(6), &bob, Some(&AccessChange::Close("work".into())), None));
        assert!(!access.admits(Some(7), &work, None, None), "unshared");
        assert!(!access.admits(Some(8), &Scope::User("alice".into()), None, None));
        assert!(access.admits(None, &Scope::All, None, None), "heartbeats always go");
        assert!(!access.admits(None, &work, None, None), "no presence of an unshared list");
        assert!(access.admits(Some(9), &bob, Some(&AccessChange::Open("work".into())), None));
        assert!(access.admits(None, &work, None, None), "presence of a readable list");
        assert!(!access.admits(None, &work, None, Some(&["home".to_owned()])), "not followed");
    }

    #[test]
    fn known_intervals_are_not_doubled_and_deletion_closes_them_after_delivery() {
        let mut grants = Grants::new();
        grants.insert("work".into(), vec![Grant { from: 2, until: None }]);
        let mut access = Access::new("bob".into(), grants);
        // Replaying the share that the start already knew of changes nothing.
        access.admits(
            Some(2),
            &Scope::User("bob".into()),
            Some(&AccessChange::Open("work".into())),
            None,
        );
        assert_eq!(access.grants["work"].len(), 1);
        let work = list_scope("work");
        assert!(access.admits(Some(9), &work, Some(&AccessChange::CloseAll("work".into())), None));
        assert!(!access.admits(Some(10), &work, None, None));
        // A todo moved out of a readable list still reaches its old list's readers.
        let mut grants = Grants::new();
        grants.insert("home".into(), vec![Grant { from: 1, until: None }]);
        let mut access = Access::new("bob".into(), grants);
        let moved = Scope::List { list: "work".into(), moved_from: Some("home".into()) };
        assert!(access.admits(Some(3), &moved, None, None));
    }
}
