//! Collaboration on a shared list: clearing its done todos at once (and, in `auth.rs`, leaving
//! a list shared with you).

mod common;

use common::{Sse, TestServer};
use reqwest::{Method, StatusCode};
use tidings_protocol::TodoEvent;

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
