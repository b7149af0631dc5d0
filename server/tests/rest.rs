//! The REST API through `rocket::local`, on a real SQLite file per test.

mod common;

use common::{figment, Db};
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{json, Value};
use tidings_protocol::{List, Todo, TodosSnapshot};

async fn client_with(settings: &tidings_server::Settings) -> Client {
    let rocket = tidings_server::build(figment(settings)).await.expect("valid settings");
    Client::tracked(rocket).await.expect("valid rocket")
}

async fn client(db: &Db) -> Client {
    client_with(&db.settings()).await
}

async fn json_of(res: LocalResponse<'_>) -> (Status, Value) {
    let status = res.status();
    assert_eq!(
        res.content_type(),
        Some(ContentType::JSON),
        "every answer with a body is JSON ({status})"
    );
    let body = res.into_string().await.unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

async fn send(client: &Client, method: Method, uri: &str, body: Value) -> (Status, Value) {
    let req = client.req(method, uri.to_owned()).header(ContentType::JSON).body(body.to_string());
    json_of(req.dispatch().await).await
}

async fn post(client: &Client, uri: &str, body: Value) -> (Status, Value) {
    send(client, Method::Post, uri, body).await
}

async fn patch(client: &Client, uri: &str, body: Value) -> (Status, Value) {
    send(client, Method::Patch, uri, body).await
}

/// The newest event id: where a new log's ids start is random.
async fn head(client: &Client) -> u64 {
    get(client, "/health").await.1["last_event_id"].as_u64().unwrap()
}

async fn get(client: &Client, uri: &str) -> (Status, Value) {
    json_of(client.get(uri.to_owned()).dispatch().await).await
}

async fn snapshot(client: &Client, list: &str) -> TodosSnapshot {
    let (status, body) = get(client, &format!("/api/lists/{list}/todos")).await;
    assert_eq!(status, Status::Ok);
    serde_json::from_value(body).unwrap()
}

on_every_backend! {
    async fn the_inbox_exists_and_lists_can_be_created(db) {
        let client = client(&db).await;
        let base = head(&client).await;
        let (status, body) = get(&client, "/api/lists").await;
        assert_eq!(status, Status::Ok);
        assert_eq!(body["lists"][0]["id"], "inbox");
        assert_eq!(body["last_event_id"], base);

        let (status, body) = post(&client, "/api/lists", json!({"title": " Groceries & Co. "})).await;
        assert_eq!(status, Status::Created);
        let list: List = serde_json::from_value(body).unwrap();
        assert_eq!((list.id.as_str(), list.title.as_str()), ("groceries-co", "Groceries & Co."));

        // Same title again: a fresh slug; explicit id: idempotent when identical, else 409.
        let (_, body) = post(&client, "/api/lists", json!({"title": "Groceries & Co."})).await;
        assert_eq!(body["id"], "groceries-co-2");
        let (status, _) = post(&client, "/api/lists", json!({"id": "work", "title": "Work"})).await;
        assert_eq!(status, Status::Created);
        let (status, body) = post(&client, "/api/lists", json!({"id": "work", "title": "Work"})).await;
        assert_eq!((status, body["id"].as_str()), (Status::Ok, Some("work")));
        let (status, body) = post(&client, "/api/lists", json!({"id": "work", "title": "Other"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (Status::Conflict, Some("list_exists")));

        let (_, body) = get(&client, "/api/lists").await;
        let ids: Vec<&str> =
            body["lists"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["inbox", "groceries-co", "groceries-co-2", "work"]);
        assert_eq!(body["last_event_id"], base + 3, "three list_created events");
    }
}

on_every_backend! {
    async fn todos_and_lists_made_back_to_back_keep_their_creation_order(db) {
        // Many creations land in the same millisecond; display order must still be creation
        // order, not the order of random ids. A restart must not reorder later ones either.
        let titles: Vec<String> = (0..40).map(|i| format!("todo {i:02}")).collect();
        let lists: Vec<String> = (0..10).map(|i| format!("z-list-{}", 9 - i)).collect();
        {
            let client = client(&db).await;
            for title in &titles[..30] {
                let (status, _) =
                    post(&client, "/api/lists/inbox/todos", json!({ "title": title })).await;
                assert_eq!(status, Status::Created);
            }
            for id in &lists {
                let (status, _) = post(&client, "/api/lists", json!({ "id": id, "title": id })).await;
                assert_eq!(status, Status::Created);
            }
        }
        let client = client(&db).await;
        for title in &titles[30..] {
            post(&client, "/api/lists/inbox/todos", json!({ "title": title })).await;
        }

        let snap = snapshot(&client, "inbox").await;
        let got: Vec<&str> = snap.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(got, titles);
        assert!(snap.todos.windows(2).all(|w| w[0].created_at < w[1].created_at));
        let (_, body) = get(&client, "/api/lists").await;
        let ids: Vec<&str> =
            body["lists"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids[1..], lists.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    }
}

on_every_backend! {
    async fn todos_are_created_renamed_toggled_moved_and_deleted(db) {
        let client = client(&db).await;
        let base = head(&client).await;
        post(&client, "/api/lists", json!({"id": "work", "title": "Work"})).await;

        let (status, body) =
            post(&client, "/api/lists/inbox/todos", json!({"title": "  Buy milk "})).await;
        assert_eq!(status, Status::Created);
        let milk: Todo = serde_json::from_value(body).unwrap();
        assert_eq!(
            (milk.title.as_str(), milk.done, milk.list_id.as_str()),
            ("Buy milk", false, "inbox")
        );
        let (_, body) = post(&client, "/api/lists/inbox/todos", json!({"title": "Call mum"})).await;
        let call: Todo = serde_json::from_value(body).unwrap();

        let snap = snapshot(&client, "inbox").await;
        assert_eq!(snap.todos, [milk.clone(), call.clone()]);
        assert_eq!(snap.last_event_id, base + 3);

        let uri = format!("/api/todos/{}", milk.id);
        let (status, body) = patch(&client, &uri, json!({"title": "Buy oat milk", "done": true})).await;
        assert_eq!(status, Status::Ok);
        assert_eq!(
            (body["title"].as_str(), body["done"].as_bool()),
            (Some("Buy oat milk"), Some(true))
        );
        // A patch that changes nothing records no event.
        let (status, _) = patch(&client, &uri, json!({"done": true})).await;
        assert_eq!(status, Status::Ok);
        assert_eq!(snapshot(&client, "inbox").await.last_event_id, base + 4);

        let (status, body) = patch(&client, &uri, json!({"list_id": "work"})).await;
        assert_eq!((status, body["list_id"].as_str()), (Status::Ok, Some("work")));
        assert_eq!(snapshot(&client, "inbox").await.todos, std::slice::from_ref(&call));
        assert_eq!(snapshot(&client, "work").await.todos.len(), 1);

        // Several lists in one consistent snapshot.
        let (_, both) = get(&client, "/api/todos?list=inbox&list=work").await;
        assert_eq!(both["todos"].as_array().unwrap().len(), 2);
        assert_eq!(both["last_event_id"], base + 5);

        let res = client.delete(uri.clone()).dispatch().await;
        assert_eq!(res.status(), Status::NoContent);
        let (status, body) = json_of(client.delete(uri).dispatch().await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (Status::NotFound, Some("todo_not_found"))
        );
        assert!(snapshot(&client, "work").await.todos.is_empty());
        assert_eq!(snapshot(&client, "work").await.last_event_id, base + 6);
    }
}

on_every_backend! {
    async fn a_client_chosen_id_makes_create_idempotent(db) {
        let client = client(&db).await;
        let base = head(&client).await;
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        let body = json!({"id": id, "title": "Once"});
        let (status, first) = post(&client, "/api/lists/inbox/todos", body.clone()).await;
        assert_eq!(status, Status::Created);
        assert_eq!(first["id"], id.to_lowercase());
        let (status, again) = post(&client, "/api/lists/inbox/todos", body).await;
        assert_eq!(status, Status::Ok);
        assert_eq!(again, first);
        assert_eq!(snapshot(&client, "inbox").await.todos.len(), 1);
        assert_eq!(snapshot(&client, "inbox").await.last_event_id, base + 1, "one event only");

        let (status, body) =
            post(&client, "/api/lists/inbox/todos", json!({"id": id, "title": "Other"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (Status::Conflict, Some("id_conflict")));
    }
}

/// A request that must be rejected with `status` and error `code`.
struct Bad {
    method: &'static str,
    uri: String,
    content_type: Option<ContentType>,
    body: String,
    status: u16,
    code: &'static str,
}

impl Bad {
    fn json(method: &'static str, uri: &str, body: Value, status: u16, code: &'static str) -> Self {
        Self::raw(method, uri, Some(ContentType::JSON), &body.to_string(), status, code)
    }

    fn raw(
        method: &'static str,
        uri: &str,
        content_type: Option<ContentType>,
        body: &str,
        status: u16,
        code: &'static str,
    ) -> Self {
        Bad { method, uri: uri.to_owned(), content_type, body: body.to_owned(), status, code }
    }
}

on_every_backend! {
    /// Each bad request gets the right status and code, and none of them changes anything.
    async fn bad_input_gets_json_errors_and_changes_nothing(db) {
        let client = client(&db).await;
        let (_, body) = post(&client, "/api/lists/inbox/todos", json!({"title": "Keep me"})).await;
        let todo_uri = format!("/api/todos/{}", body["id"].as_str().unwrap());
        let before_todos = snapshot(&client, "inbox").await;
        let (_, before_lists) = get(&client, "/api/lists").await;

        let todos = "/api/lists/inbox/todos";
        let long = "x".repeat(501);
        let huge = json!({"title": "y".repeat(20_000)});
        let missing = "/api/todos/00000000-0000-0000-0000-000000000000";
        let cases = [
            Bad::json("POST", todos, json!({"title": "   "}), 422, "invalid_title"),
            Bad::json("POST", todos, json!({"title": long}), 422, "invalid_title"),
            Bad::json("POST", todos, json!({"title": "a\u{0}b"}), 422, "invalid_title"),
            Bad::json("POST", todos, json!({"title": 5}), 422, "invalid_body"),
            Bad::json("POST", todos, json!({}), 422, "invalid_body"),
            Bad::json("POST", todos, json!({"title": "x", "id": "nope"}), 422, "invalid_id"),
            Bad::raw("POST", todos, Some(ContentType::JSON), r#"{"title": "#, 400, "malformed_json"),
            Bad::raw(
                "POST",
                todos,
                Some(ContentType::JSON),
                r#"{"title": "x",}"#,
                400,
                "malformed_json",
            ),
            Bad::raw(
                "POST",
                todos,
                Some(ContentType::Text),
                r#"{"title": "x"}"#,
                415,
                "unsupported_media_type",
            ),
            Bad::raw("POST", todos, None, r#"{"title": "x"}"#, 415, "unsupported_media_type"),
            Bad::json("POST", todos, huge, 413, "payload_too_large"),
            Bad::json("POST", "/api/lists/nope/todos", json!({"title": "x"}), 404, "list_not_found"),
            Bad::json("POST", "/api/lists/NOT..A/todos", json!({"title": "x"}), 404, "list_not_found"),
            Bad::json(
                "POST",
                "/api/lists",
                json!({"id": "Bad Id", "title": "x"}),
                422,
                "invalid_list_id",
            ),
            Bad::json("POST", "/api/lists", json!({"title": ""}), 422, "invalid_title"),
            Bad::json("PATCH", &todo_uri, json!({}), 422, "empty_patch"),
            Bad::json("PATCH", &todo_uri, json!({"done": "yes"}), 422, "invalid_body"),
            Bad::json("PATCH", &todo_uri, json!({"title": ""}), 422, "invalid_title"),
            Bad::json("PATCH", &todo_uri, json!({"list_id": "nowhere"}), 422, "unknown_list"),
            Bad::json("PATCH", &todo_uri, json!({"list_id": "../x"}), 422, "invalid_list_id"),
            Bad::json("PATCH", missing, json!({"done": true}), 404, "todo_not_found"),
            Bad::json("PATCH", "/api/todos/not-a-uuid", json!({"done": true}), 404, "todo_not_found"),
            Bad::raw("DELETE", "/api/todos/not-a-uuid", None, "", 404, "todo_not_found"),
            Bad::raw("GET", "/api/lists/missing/todos", None, "", 404, "list_not_found"),
            Bad::raw("GET", "/api/todos?list=inbox&list=missing", None, "", 404, "list_not_found"),
            Bad::raw("GET", "/api/todos?list=BAD", None, "", 400, "invalid_list_id"),
            Bad::raw("GET", "/no/such/route", None, "", 404, "not_found"),
            Bad::raw("PUT", "/api/lists", Some(ContentType::JSON), "{}", 404, "not_found"),
        ];
        for case in cases {
            let what = format!("{} {}", case.method, case.uri);
            let mut req = match case.method {
                "POST" => client.post(case.uri),
                "PATCH" => client.patch(case.uri),
                "DELETE" => client.delete(case.uri),
                "PUT" => client.put(case.uri),
                _ => client.get(case.uri),
            };
            if let Some(ct) = case.content_type {
                req = req.header(ct);
            }
            let (status, got) = json_of(req.body(case.body).dispatch().await).await;
            assert_eq!(status.code, case.status, "{what}: {got}");
            assert_eq!(got["error"]["code"], case.code, "{what}: {got}");
            assert!(got["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }

        assert_eq!(snapshot(&client, "inbox").await, before_todos, "no todo changed");
        assert_eq!(get(&client, "/api/lists").await.1, before_lists, "no list changed, no event");
    }
}

on_every_backend! {
    async fn health_reports_streams_and_the_last_event(db) {
        let client = client(&db).await;
        let base = head(&client).await;
        post(&client, "/api/lists/inbox/todos", json!({"title": "x"})).await;
        let (status, body) = get(&client, "/health").await;
        assert_eq!(status, Status::Ok);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["open_streams"], 0);
        assert_eq!(body["last_event_id"], base + 1);
    }
}

#[rocket::async_test]
async fn the_database_is_created_where_configured_and_memory_works() {
    let db = Db::new();
    let _client = client(&db).await;
    assert!(db.path().exists());

    let memory =
        tidings_server::Settings { database_url: "sqlite::memory:".into(), ..db.settings() };
    let client = client_with(&memory).await;
    let (status, _) = post(&client, "/api/lists/inbox/todos", json!({"title": "in memory"})).await;
    assert_eq!(status, Status::Created);
    assert_eq!(snapshot(&client, "inbox").await.todos.len(), 1);
}

#[rocket::async_test]
async fn invalid_settings_refuse_to_start_with_a_message() {
    let db = Db::new();
    for (settings, want) in [
        (tidings_server::Settings { max_streams: 0, ..db.settings() }, "max_streams"),
        (tidings_server::Settings { retry_ms: u64::MAX, ..db.settings() }, "retry_ms"),
        (
            tidings_server::Settings { database_url: "mysql://nope".into(), ..db.settings() },
            "database_url",
        ),
    ] {
        let err = tidings_server::build(figment(&settings)).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains(want), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // Rocket's own settings are checked too, without Rocket's panic.
    let bad_port = figment(&db.settings()).merge(("port", "eighty"));
    let err = tidings_server::build(bad_port).await.unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
}

#[rocket::async_test]
async fn responses_to_allowed_origins_carry_cors_headers() {
    let db = Db::new();
    let client = client(&db).await;
    let res = client
        .get("/api/lists")
        .header(Header::new("Origin", "http://127.0.0.1:4173"))
        .dispatch()
        .await;
    assert_eq!(res.headers().get_one("Access-Control-Allow-Origin"), Some("http://127.0.0.1:4173"));
    assert_eq!(res.headers().get_one("Vary"), Some("Origin"));
}

#[rocket::async_test]
async fn the_static_app_is_served_with_a_fallback_but_never_for_the_api() {
    let db = Db::new();
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("index.html"), "<!doctype html><title>app</title>").unwrap();
    std::fs::write(app.path().join("app.js"), "export {}").unwrap();
    let settings =
        tidings_server::Settings { static_dir: Some(app.path().to_owned()), ..db.settings() };
    let client = client_with(&settings).await;
    for (uri, want) in [("/", "<title>app"), ("/lists/work", "<title>app"), ("/app.js", "export")] {
        let res = client.get(uri).dispatch().await;
        assert_eq!(res.status(), Status::Ok, "{uri}");
        assert!(res.into_string().await.unwrap().contains(want), "{uri}");
    }
    let (status, body) = get(&client, "/api/nope").await;
    assert_eq!((status, body["error"]["code"].as_str()), (Status::NotFound, Some("not_found")));
}
