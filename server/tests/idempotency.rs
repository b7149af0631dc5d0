//! `Idempotency-Key`: a write repeated with the same key gets its first answer back (status,
//! body, event id) and changes nothing, on both backends, across restarts and processes; the
//! same key for another request is refused. Every write's answer names the event it logged.

mod common;

use common::{Api, Db, Process, Sse, TestServer};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A write through `api` with `key` as its `Idempotency-Key`: status, headers, body.
async fn keyed(
    api: &Api,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = api.http.request(method, format!("{}{path}", api.base));
    req = req.header("Idempotency-Key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request failed");
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    (status, headers, body)
}

fn event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("tidings-event-id").map(|v| v.to_str().unwrap().parse().unwrap())
}

fn replayed(headers: &HeaderMap) -> bool {
    headers.get("idempotent-replayed").is_some_and(|v| v == "true")
}

on_every_backend! {
    async fn a_repeated_key_gets_the_first_answer_and_changes_nothing(db) {
        let server = TestServer::on(&db).await;
        let api = &server.api;
        let mut sse = Sse::connect(&server.events_url(""), None).await;
        sse.connected().await;

        // POST: one todo, one event, whose id the answer names.
        let new = json!({ "title": "Buy milk" });
        let path = "/api/lists/inbox/todos";
        let (status, headers, first) = keyed(api, Method::POST, path, "k-create", Some(new.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        assert!(!replayed(&headers));
        let (id, _) = sse.next_change().await;
        assert_eq!(event_id(&headers), Some(id));
        let (status, headers, again) = keyed(api, Method::POST, path, "k-create", Some(new)).await;
        assert_eq!((status, &again), (StatusCode::CREATED, &first), "the first answer again");
        assert!(replayed(&headers));
        assert_eq!(event_id(&headers), Some(id));
        assert_eq!(api.head().await, id, "no second todo, no second event");
        let todos = api.get(path).await;
        assert_eq!(todos["todos"].as_array().unwrap().len(), 1);

        // PATCH and DELETE, repeated: applied once; the repeat of a delete is not a 404.
        let todo = format!("/api/todos/{}", first["id"].as_str().unwrap());
        let done = json!({ "done": true });
        let (status, headers, patched) = keyed(api, Method::PATCH, &todo, "k-patch", Some(done.clone())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(event_id(&headers), Some(id + 1));
        let (_, headers, again) = keyed(api, Method::PATCH, &todo, "k-patch", Some(done)).await;
        assert_eq!(again, patched);
        assert!(replayed(&headers));
        let (status, headers, _) = keyed(api, Method::DELETE, &todo, "k-delete", None).await;
        assert_eq!((status, event_id(&headers)), (StatusCode::NO_CONTENT, Some(id + 2)));
        let (status, headers, _) = keyed(api, Method::DELETE, &todo, "k-delete", None).await;
        assert_eq!((status, event_id(&headers)), (StatusCode::NO_CONTENT, Some(id + 2)));
        assert!(replayed(&headers));
        assert_eq!(api.head().await, id + 2);
        // Without a key the same delete is a plain 404.
        let (status, _) = api.send(Method::DELETE, &todo, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A list, by key.
        let list = json!({ "id": "groceries", "title": "Groceries" });
        let (status, headers, made) = keyed(api, Method::POST, "/api/lists", "k-list", Some(list.clone())).await;
        assert_eq!((status, event_id(&headers)), (StatusCode::CREATED, Some(id + 3)));
        let (status, headers, again) = keyed(api, Method::POST, "/api/lists", "k-list", Some(list)).await;
        assert_eq!((status, &again, replayed(&headers)), (StatusCode::CREATED, &made, true));

        // Every change reached the stream once.
        for expected in id + 1..=id + 3 {
            assert_eq!(sse.next_change().await.0, expected);
        }
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_key_used_for_another_request_is_refused_and_changes_nothing(db) {
        let server = TestServer::on(&db).await;
        let api = &server.api;
        let path = "/api/lists/inbox/todos";
        let (status, _, _) = keyed(api, Method::POST, path, "k", Some(json!({ "title": "a" }))).await;
        assert_eq!(status, StatusCode::CREATED);
        let head = api.head().await;
        for (method, path, body) in [
            (Method::POST, path, Some(json!({ "title": "b" }))),
            (Method::POST, "/api/lists", Some(json!({ "title": "a" }))),
        ] {
            let (status, headers, body) = keyed(api, method, path, "k", body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["error"]["code"], "idempotency_key_reused");
            assert_eq!(event_id(&headers), None);
        }
        assert_eq!(api.head().await, head, "nothing changed");

        // A key that is not a short printable token is refused before anything runs.
        let long = "x".repeat(256);
        for bad in [long.as_str(), "a b", "ключ"] {
            let res = api
                .http
                .post(format!("{}{path}", api.base))
                .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap())
                .json(&json!({ "title": "c" }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad:?}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_idempotency_key");
        }
        let two = api
            .http
            .post(format!("{}{path}", api.base))
            .header("Idempotency-Key", "one")
            .header("Idempotency-Key", "two")
            .json(&json!({ "title": "c" }))
            .send()
            .await
            .unwrap();
        assert_eq!(two.status(), StatusCode::BAD_REQUEST);
        assert_eq!(api.head().await, head, "nothing changed");
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_key_is_remembered_across_a_restart(db) {
        let server = Process::spawn(&db.url()).await;
        let new = json!({ "title": "Survives" });
        let path = "/api/lists/inbox/todos";
        let (status, headers, first) = keyed(&server.api, Method::POST, path, "k-restart", Some(new.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        server.stop().await;
        let server = Process::spawn(&db.url()).await;
        let head = server.api.head().await;
        let (status, again_headers, again) = keyed(&server.api, Method::POST, path, "k-restart", Some(new)).await;
        assert_eq!((status, again), (StatusCode::CREATED, first));
        assert!(replayed(&again_headers));
        assert_eq!(event_id(&again_headers), event_id(&headers));
        assert_eq!(server.api.head().await, head);
        server.stop().await;
    }
}

/// Two processes on one PostgreSQL: a retry that lands on the other process is recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_remembered_across_processes() {
    let db = Db::postgres().await;
    let (a, b) = (Process::spawn(&db.url()).await, Process::spawn(&db.url()).await);
    let new = json!({ "title": "Once" });
    let path = "/api/lists/inbox/todos";
    let (status, _, first) = keyed(&a.api, Method::POST, path, "k-two", Some(new.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, again) = keyed(&b.api, Method::POST, path, "k-two", Some(new)).await;
    assert_eq!((status, again, replayed(&headers)), (StatusCode::CREATED, first, true));
    assert_eq!(b.api.get(path).await["todos"].as_array().unwrap().len(), 1);
    a.stop().await;
    b.stop().await;
}
