//! Property tests of the request surface: arbitrary JSON bodies, `list` query values and
//! `Last-Event-ID` headers never get a 5xx, always get the JSON error body when refused, and a
//! refused request never logs an event. Bounded: a fixed number of cases per property
//! (`PROPTEST_CASES` to change it).

mod common;

use common::{figment, Db};
use proptest::prelude::*;
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;

/// One server for all cases of a property, with one todo to patch.
struct Subject {
    runtime: tokio::runtime::Runtime,
    client: Client,
    todo: String,
    _db: Db,
}

impl Subject {
    fn new() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let db = Db::new();
        let (client, todo) = runtime.block_on(async {
            let rocket = tidings_server::build(figment(&db.settings())).await.unwrap();
            let client = Client::untracked(rocket).await.unwrap();
            let res = client
                .post("/api/lists/inbox/todos")
                .header(ContentType::JSON)
                .body(r#"{"title": "patch me"}"#)
                .dispatch()
                .await;
            let todo: Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
            (client, todo["id"].as_str().unwrap().to_owned())
        });
        Subject { runtime, client, todo, _db: db }
    }

    async fn head(&self) -> u64 {
        let res = self.client.get("/health").dispatch().await;
        let body: Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
        body["last_event_id"].as_u64().unwrap()
    }

    /// Send a request, then check the answer: no 5xx, JSON errors, no event when refused;
    /// at most one event when accepted.
    fn check(
        &self,
        method: Method,
        uri: &str,
        headers: Vec<Header<'static>>,
        body: Option<Vec<u8>>,
    ) {
        self.runtime.block_on(async {
            let before = self.head().await;
            let mut req = self.client.req(method, uri.to_owned());
            for header in headers {
                req = req.header(header);
            }
            if let Some(body) = body {
                req = req.header(ContentType::JSON).body(body);
            }
            let res = req.dispatch().await;
            let status = res.status();
            assert!(status.code < 500, "{method} {uri}: {status}");
            let is_stream = res.content_type() == Some(ContentType::EventStream);
            if status.class().is_success() {
                if !is_stream {
                    drop(res.into_bytes().await);
                }
                let after = self.head().await;
                assert!(after <= before + 1, "{method} {uri}: {before} -> {after}");
            } else {
                assert_eq!(res.content_type(), Some(ContentType::JSON), "{method} {uri}: {status}");
                let text = res.into_string().await.unwrap_or_default();
                let body: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string());
                assert_eq!(self.head().await, before, "{method} {uri}: refused but logged");
            }
        });
    }
}

/// JSON values of every shape, with strings that look like what the API takes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
        "[a-z0-9-]{1,70}".prop_map(Value::String),
        Just(Value::String("0b7e4f6e-8c4f-4d0e-9a53-6f2f0e6b9a10".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("title".to_owned()),
                    Just("id".to_owned()),
                    Just("done".to_owned()),
                    Just("list_id".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies: mostly JSON, sometimes bytes that are not.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn request_bodies(list in body(), todo in body(), patch in body()) {
        thread_local!(static SUBJECT: Subject = Subject::new());
        SUBJECT.with(|s| {
            s.check(Method::Post, "/api/lists", vec![], Some(list));
            s.check(Method::Post, "/api/lists/inbox/todos", vec![], Some(todo));
            s.check(Method::Patch, &format!("/api/todos/{}", s.todo), vec![], Some(patch));
        });
    }

    #[test]
    fn list_queries(lists in prop::collection::vec(prop_oneof!["\\PC{0,12}", "[a-z]{1,3}"], 0..8)) {
        thread_local!(static SUBJECT: Subject = Subject::new());
        let query: Vec<String> = lists.iter().map(|l| format!("list={}", percent_encode(l))).collect();
        SUBJECT.with(|s| {
            s.check(Method::Get, &format!("/api/todos?{}", query.join("&")), vec![], None);
            s.check(Method::Get, &format!("/api/events?{}", query.join("&")), vec![], None);
        });
    }

    #[test]
    fn last_event_ids(header in prop_oneof!["[0-9]{0,25}", "-?[0-9]{1,5}", "[ -~]{0,30}"], query in "[ -~]{0,20}") {
        thread_local!(static SUBJECT: Subject = Subject::new());
        SUBJECT.with(|s| {
            let uri = format!("/api/events?last_event_id={}", percent_encode(&query));
            s.check(Method::Get, &uri, vec![Header::new("Last-Event-ID", header)], None);
        });
    }
}

#[test]
fn the_subject_refuses_and_accepts() {
    // The properties above would pass on a server that refused everything: show it does not.
    let s = Subject::new();
    s.runtime.block_on(async {
        let before = s.head().await;
        let res = s
            .client
            .post("/api/lists/inbox/todos")
            .header(ContentType::JSON)
            .body(r#"{"title": "accepted"}"#)
            .dispatch()
            .await;
        assert_eq!(res.status(), Status::Created);
        assert_eq!(s.head().await, before + 1);
    });
}
