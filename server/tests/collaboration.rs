//! Collaboration on a shared list: renaming it, ordering its todos by hand, clearing its
//! done todos at once (and, in `auth.rs`, who may rename, and leaving a list shared with you).

mod common;

use std::collections::HashMap;

use common::{Api, Sse, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings_protocol::position::MAX_POSITION_LEN;
use tidings_protocol::{Todo, TodoEvent};

/// The ids of `list`'s todos in the snapshot's order.
async fn order(api: &Api, list: &str) -> Vec<String> {
    let snapshot = api.get(&format!("/api/lists/{list}/todos")).await;
    let todos: Vec<Todo> = serde_json::from_value(snapshot["todos"].clone()).unwrap();
    todos.into_iter().map(|t| t.id).collect()
}

/// `PATCH /api/todos/<id>` with `body`: status and error code (if any).
async fn try_patch(api: &Api, id: &str, body: Value) -> (StatusCode, Option<String>) {
    let (status, body) = api.send(Method::PATCH, &format!("/api/todos/{id}"), Some(body)).await;
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

on_every_backend! {
    /// `PATCH /api/lists/<list> {"title"}` (issue 20, item 1): the list renamed, one
    /// `list_updated` to the streams, the same validation as creating a list.
    async fn a_list_is_renamed_for_every_stream(db) {
        let server = TestServer::on(&db).await;
        let api = &server.api;
        api.create_list("work").await;
        // A stream that follows another list hears of it too: without access control the set
        // of lists is everyone's.
        let mut sse = Sse::connect(&server.events_url("?list=inbox"), None).await;
        sse.connected().await;
        let head = api.head().await;

        let (status, body) =
            api.send(Method::PATCH, "/api/lists/work", Some(json!({ "title": "  Day job " }))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!((body["id"].as_str(), body["title"].as_str()), (Some("work"), Some("Day job")));
        let (id, event) = sse.next_change().await;
        assert_eq!(id, head + 1);
        match event {
            TodoEvent::ListUpdated { list } => {
                assert_eq!((list.id.as_str(), list.title.as_str(), list.role), ("work", "Day job", None));
            }
            other => panic!("unexpected {other:?}"),
        }
        let lists = api.get("/api/lists").await;
        let work = lists["lists"].as_array().unwrap().iter().find(|l| l["id"] == "work").unwrap();
        assert_eq!(work["title"], "Day job");

        // The same title again: 200, nothing logged. Bad input: a clear error, nothing logged.
        let (status, _) =
            api.send(Method::PATCH, "/api/lists/work", Some(json!({ "title": "Day job" }))).await;
        assert_eq!(status, StatusCode::OK);
        for (path, body, want) in [
            ("/api/lists/work", json!({ "title": "   " }), StatusCode::UNPROCESSABLE_ENTITY),
            ("/api/lists/work", json!({ "title": "x".repeat(501) }), StatusCode::UNPROCESSABLE_ENTITY),
            ("/api/lists/work", json!({ "name": "x" }), StatusCode::UNPROCESSABLE_ENTITY),
            ("/api/lists/nowhere", json!({ "title": "x" }), StatusCode::NOT_FOUND),
        ] {
            let (status, body) = api.send(Method::PATCH, path, Some(body)).await;
            assert_eq!(status, want, "{path}: {body}");
            assert!(body["error"]["code"].is_string(), "{body}");
        }
        assert_eq!(api.head().await, head + 1);
        server.stop().await;
    }
}

on_every_backend! {
    /// Todos in an order of their users' choosing (issue 20, item 2): new ones at the end,
    /// `after` places one after another (or first), in its list or the one it moves to; a move
    /// is one `todo_updated` with the new `position`; a todo already in place stays, silently.
    async fn todos_are_ordered_by_hand(db) {
        let server = TestServer::on(&db).await;
        let api = &server.api;
        api.create_list("work").await;
        let mut ids = Vec::new();
        for title in ["a", "b", "c", "d"] {
            ids.push(api.create_todo("inbox", title).await.id);
        }
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| ids[i].clone());
        assert_eq!(order(api, "inbox").await, [a.as_str(), b.as_str(), c.as_str(), d.as_str()]);
        let w = api.create_todo("work", "w").await.id;
        let mut sse = Sse::connect(&server.events_url(""), None).await;
        sse.connected().await;
        let head = api.head().await;

        let first = api.patch_todo(&d, json!({ "after": null })).await;
        assert_eq!(order(api, "inbox").await, [d.as_str(), a.as_str(), b.as_str(), c.as_str()]);
        match sse.next_change().await {
            (id, TodoEvent::TodoUpdated { todo, moved_from: None }) => {
                assert_eq!((id, &todo), (head + 1, &first));
            }
            other => panic!("unexpected {other:?}"),
        }
        api.patch_todo(&a, json!({ "after": c })).await;
        assert_eq!(order(api, "inbox").await, [d.as_str(), b.as_str(), c.as_str(), a.as_str()]);
        api.patch_todo(&c, json!({ "after": d, "title": "c, renamed" })).await;
        assert_eq!(order(api, "inbox").await, [d.as_str(), c.as_str(), b.as_str(), a.as_str()]);
        assert_eq!(api.head().await, head + 3, "one event per move");
        // Already there: no event.
        api.patch_todo(&b, json!({ "after": c })).await;
        api.patch_todo(&d, json!({ "after": null })).await;
        assert_eq!(api.head().await, head + 3);

        // To another list: after one of its todos, or first, or (no `after`) to its end.
        api.patch_todo(&b, json!({ "list_id": "work", "after": null })).await;
        api.patch_todo(&c, json!({ "list_id": "work", "after": b })).await;
        api.patch_todo(&a, json!({ "list_id": "work" })).await;
        assert_eq!(order(api, "work").await, [b.as_str(), c.as_str(), w.as_str(), a.as_str()]);
        assert_eq!(order(api, "inbox").await, [d.as_str()]);
        let e = api.create_todo("work", "e").await.id;
        assert_eq!(order(api, "work").await, [b.as_str(), c.as_str(), w.as_str(), a.as_str(), e.as_str()], "new todos go to the end");

        // Placing after a todo of another list, after itself, after nothing that exists: 422.
        let head = api.head().await;
        let missing = uuid::Uuid::new_v4().to_string();
        for (id, body) in [
            (&d, json!({ "after": b })),
            (&b, json!({ "list_id": "inbox", "after": c })),
            (&b, json!({ "after": b })),
            (&b, json!({ "after": missing })),
        ] {
            let (status, code) = try_patch(api, id, body.clone()).await;
            assert_eq!((status, code.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_after")), "{body}");
        }
        let (status, code) = try_patch(api, &b, json!({ "after": "not a uuid" })).await;
        assert_eq!((status, code.as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_id")));
        assert_eq!(api.head().await, head, "refused moves log nothing");
        assert_eq!(order(api, "work").await, [b.as_str(), c.as_str(), w.as_str(), a.as_str(), e.as_str()]);
        server.stop().await;
    }
}

/// `event` applied to a replica of todos by id.
fn apply(todos: &mut HashMap<String, Todo>, event: TodoEvent) {
    match event {
        TodoEvent::TodoCreated { todo } | TodoEvent::TodoUpdated { todo, .. } => {
            todos.insert(todo.id.clone(), todo);
        }
        TodoEvent::TodoDeleted { id, .. } => {
            todos.remove(&id);
        }
        _ => {}
    }
}

fn sorted(todos: &HashMap<String, Todo>) -> Vec<String> {
    let mut all: Vec<&Todo> = todos.values().collect();
    all.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
    all.into_iter().map(|t| t.id.clone()).collect()
}

on_every_backend! {
    /// 10 000 moves into one gap, from eight connections at once (issue 20, item 2): every
    /// key stays within 64 bytes (the crowded neighbourhood is re-spaced, each re-spaced todo
    /// with its own event), and the stream, applied in order, ends in the snapshot's order.
    async fn ten_thousand_moves_into_one_gap_keep_keys_short_and_converge(db) {
        const MOVES: usize = 10_000;
        const CLIENTS: usize = 8;
        let server = TestServer::on(&db).await;
        let api = &server.api;
        let mut ids = Vec::new();
        for i in 0..12 {
            ids.push(api.create_todo("inbox", &format!("todo {i}")).await.id);
        }
        let snapshot = api.get("/api/lists/inbox/todos").await;
        let start: Vec<Todo> = serde_json::from_value(snapshot["todos"].clone()).unwrap();
        let mut replica: HashMap<String, Todo> =
            start.into_iter().map(|t| (t.id.clone(), t)).collect();
        let mut sse = Sse::connect(&server.events_url(""), snapshot["last_event_id"].as_u64()).await;
        sse.connected().await;

        // Every move puts one of the other todos right after the first todo: each lands in
        // the gap the previous one halved.
        let anchor = ids[0].clone();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (api, anchor, ids) = (api.clone(), anchor.clone(), ids.clone());
                tokio::spawn(async move {
                    for i in 0..MOVES / CLIENTS {
                        let moving = &ids[1 + (c + i * CLIENTS) % (ids.len() - 1)];
                        let (status, code) =
                            try_patch(&api, moving, json!({ "after": anchor })).await;
                        assert_eq!(status, StatusCode::OK, "{code:?}");
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        let head = api.head().await;
        let mut events = 0;
        let mut longest = 0;
        loop {
            let (id, event) = sse.next_change().await;
            if let TodoEvent::TodoUpdated { todo, .. } = &event {
                longest = longest.max(todo.position.len());
            }
            apply(&mut replica, event);
            events += 1;
            if id == head {
                break;
            }
        }
        assert!(longest <= MAX_POSITION_LEN, "a key of {longest} bytes");
        // A move of a todo that is already right after the anchor (another client's move
        // got there first) changes nothing and logs nothing.
        assert!(events > MOVES / 2, "{events} events for {MOVES} moves");
        let snapshot = order(api, "inbox").await;
        assert_eq!(sorted(&replica), snapshot, "the stream and the snapshot agree");
        let keys: Vec<Todo> =
            serde_json::from_value(api.get("/api/lists/inbox/todos").await["todos"].clone()).unwrap();
        assert!(keys.iter().all(|t| t.position.len() <= MAX_POSITION_LEN));
        assert_eq!(snapshot[0], anchor, "the anchor stays first");
        server.stop().await;
    }
}

on_every_backend! {
    /// `DELETE /api/lists/<list>/todos?done=true` (issue 20, item 5): the done todos of one
    /// list go in one transaction, one `todo_deleted` each under consecutive ids; the answer
    /// says how many.
    async fn clearing_a_list_deletes_its_done_todos_in_one_go(db) {
        let server = TestServer::on(&db).await;
        let api = &server.api;
        api.create_list("work").await;
        let mut done = Vec::new();
        for i in 0..6 {
            let todo = api.create_todo("inbox", &format!("todo {i}")).await;
            if i % 2 == 0 {
                api.patch_todo(&todo.id, serde_json::json!({ "done": true })).await;
                done.push(todo.id);
            }
        }
        let elsewhere = api.create_todo("work", "done elsewhere").await;
        api.patch_todo(&elsewhere.id, serde_json::json!({ "done": true })).await;
        let mut sse = Sse::connect(&server.events_url("?list=inbox"), None).await;
        sse.connected().await;
        let head = api.head().await;

        let (status, body) = api.send(Method::DELETE, "/api/lists/inbox/todos?done=true", None).await;
        assert_eq!((status, body["deleted"].as_u64()), (StatusCode::OK, Some(3)), "{body}");
        let mut deleted = Vec::new();
        for expected in head + 1..=head + 3 {
            let (id, event) = sse.next_change().await;
            assert_eq!(id, expected, "one id range");
            match event {
                TodoEvent::TodoDeleted { id, list_id } => {
                    assert_eq!(list_id, "inbox");
                    deleted.push(id);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(deleted, done);
        let left = api.get("/api/lists/inbox/todos").await;
        assert_eq!(left["todos"].as_array().unwrap().len(), 3);
        assert!(left["todos"].as_array().unwrap().iter().all(|t| t["done"] == false));
        assert_eq!(api.get("/api/lists/work/todos").await["todos"].as_array().unwrap().len(), 1);

        // Nothing done: nothing changes. Without `done=true`: a 400 that changes nothing.
        let (status, body) = api.send(Method::DELETE, "/api/lists/inbox/todos?done=true", None).await;
        assert_eq!((status, body["deleted"].as_u64()), (StatusCode::OK, Some(0)));
        let (status, body) = api.send(Method::DELETE, "/api/lists/inbox/todos", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("done_required")));
        let (status, _) = api.send(Method::DELETE, "/api/lists/nowhere/todos?done=true", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(api.head().await, head + 3);
        server.stop().await;
    }
}

on_every_backend! {
    /// A database from before positions: its todos keep their creation order (their keys are
    /// made from `created_at` by the migration), the log gets a new epoch so clients reload
    /// once, and moves and new todos work on the old todos.
    async fn todos_made_before_positions_keep_their_order(db) {
        let old_schema = |mut migrator: sqlx::migrate::Migrator| {
            let before: Vec<_> =
                migrator.migrations.iter().filter(|m| !m.description.contains("positions")).cloned().collect();
            assert_eq!(before.len() + 1, migrator.migrations.len());
            migrator.migrations = std::borrow::Cow::Owned(before);
            migrator
        };
        // Made in this order (ids in the opposite one), the first in the first millisecond.
        let made = [
            ("ffffffff-0000-4000-8000-000000000001", 0_i64),
            ("eeeeeeee-0000-4000-8000-000000000002", 61),
            ("dddddddd-0000-4000-8000-000000000003", 3844),
            ("cccccccc-0000-4000-8000-000000000004", 1_796_124_014_035),
            ("bbbbbbbb-0000-4000-8000-000000000005", 1_796_124_014_036),
        ];
        let mut statements = vec!["INSERT INTO lists (id, title, created_at) VALUES ('old', 'Old', 0)".to_owned()];
        for (id, at) in made.iter().rev() {
            statements.push(format!(
                "INSERT INTO todos (id, list_id, title, done, created_at, updated_at) \
                 VALUES ('{id}', 'old', 'made at {at}', false, {at}, {at})"
            ));
        }
        let epoch: String = if db.is_postgres() {
            let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
            old_schema(sqlx::migrate!("migrations/postgres")).run(&pool).await.unwrap();
            for s in &statements {
                sqlx::query(s).execute(&pool).await.unwrap();
            }
            sqlx::query_scalar("SELECT epoch FROM meta").fetch_one(&pool).await.unwrap()
        } else {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url()).unwrap().create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            old_schema(sqlx::migrate!("migrations/sqlite")).run(&pool).await.unwrap();
            for s in &statements {
                sqlx::query(s).execute(&pool).await.unwrap();
            }
            sqlx::query_scalar("SELECT epoch FROM meta").fetch_one(&pool).await.unwrap()
        };

        let server = TestServer::on(&db).await;
        let api = &server.api;
        let snapshot = api.get("/api/lists/old/todos").await;
        let todos: Vec<Todo> = serde_json::from_value(snapshot["todos"].clone()).unwrap();
        let ids: Vec<&str> = todos.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, made.map(|(id, _)| id), "creation order");
        assert!(todos.iter().all(|t| tidings_protocol::position::is_valid(&t.position)), "{todos:?}");
        assert!(todos.windows(2).all(|w| w[0].position < w[1].position), "{todos:?}");
        assert_ne!(snapshot["epoch"].as_str(), Some(epoch.as_str()), "a new epoch");

        let new = api.create_todo("old", "made after").await;
        assert_eq!(order(api, "old").await.last(), Some(&new.id));
        api.patch_todo(made[4].0, json!({ "after": null })).await;
        api.patch_todo(made[0].0, json!({ "after": made[2].0 })).await;
        let want = [made[4].0, made[1].0, made[2].0, made[0].0, made[3].0, new.id.as_str()];
        assert_eq!(order(api, "old").await, want);
        server.stop().await;
    }
}
