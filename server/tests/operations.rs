//! For operators and integrators: the OpenAPI document covers every route, and the
//! Prometheus metrics move with what the server does.

mod common;

use std::collections::BTreeSet;

use common::{figment, Db, Sse, TestServer};
use reqwest::{Method, StatusCode};
use tidings_server::config::Secret;
use tidings_server::Settings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_route() {
    let db = Db::new();
    let rocket = tidings_server::build(figment(&db.settings())).await.unwrap();
    let routes: BTreeSet<(String, String)> = rocket
        .routes()
        .filter(|r| r.method != rocket::http::Method::Options)
        .map(|r| {
            let path: Vec<String> = r
                .uri
                .path()
                .split('/')
                .map(|seg| match seg.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                    Some(name) => format!("{{{name}}}"),
                    None => seg.to_owned(),
                })
                .collect();
            (r.method.as_str().to_ascii_lowercase(), path.join("/"))
        })
        // The gate's internal refusal route is not part of the API.
        .filter(|(_, path)| path != "/api/__refused")
        .collect();

    let server = TestServer::on(&db).await;
    let doc = server.api.get("/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
    for schema in ["Todo", "List", "TodoEvent", "ErrorBody", "Health", "Members"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "schema {schema}");
    }
    server.stop().await;
}

/// The value of the sample `name{labels…}` (labels as written by the exporter), 0 if absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

async fn scrape(server: &TestServer) -> String {
    let res = reqwest::get(format!("{}/metrics", server.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_move_with_what_the_server_does() {
    let db = Db::new();
    let settings = Settings { retain_events: 2, retain_secs: 0, ..db.settings() };
    let server = TestServer::start(settings).await;
    let before = scrape(&server).await;
    let mut sse = Sse::connect(&server.events_url("?list=inbox"), None).await;
    sse.connected().await;
    for i in 0..5 {
        server.api.create_todo("inbox", &format!("t{i}")).await;
        sse.next_change().await;
    }
    let (status, _) = server.api.send(Method::GET, "/api/events?list=missing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A resume point long pruned: a resync.
    let mut old = Sse::connect(&server.events_url(""), Some(1)).await;
    old.connected().await;
    assert_eq!(old.next().await.unwrap().event, "resync");
    let after = scrape(&server).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert!(moved("tidings_streams_opened_total", &[]) >= 2.0);
    assert!(moved("tidings_deliveries_total", &[]) >= 5.0);
    assert!(moved("tidings_events_published_total", &[]) >= 5.0);
    assert!(moved("tidings_write_seconds_count", &[]) >= 5.0);
    assert!(moved("tidings_streams_refused_total", &[("reason", "list_not_found")]) >= 1.0);
    assert!(moved("tidings_resyncs_total", &[("reason", "pruned")]) >= 1.0);
    let created = [("method", "POST"), ("route", "/api/lists/<list>/todos"), ("status", "201")];
    assert!(moved("tidings_requests_total", &created) >= 5.0, "{after}");
    assert!(sample(&after, "tidings_open_streams", &[]) >= 2.0);
    drop((sse, old));
    server.stop().await;
}

/// `/health` as a caller with `bearer` sees it.
async fn health(server: &TestServer, bearer: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut req = server.api.http.get(format!("{}/health", server.base));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// With access control the metrics need their own token, and so do `/health`'s details
/// (issue 22, item 9): anyone else learns only whether the server is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_access_control_the_metrics_need_their_own_token() {
    let db = Db::new();
    let secret = Some(Secret("a test secret that is long enough for HS256 tokens".into()));
    let server = TestServer::start(Settings { auth_secret: secret.clone(), ..db.settings() }).await;
    let (status, body) = server.api.send(Method::GET, "/metrics", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(health(&server, None).await, (StatusCode::OK, serde_json::json!({"status": "ok"})));
    server.stop().await;

    let settings = Settings {
        auth_secret: secret,
        metrics_token: Some(Secret("scraper-token".into())),
        ..db.settings()
    };
    let server = TestServer::start(settings).await;
    let (status, _) = server.api.as_user("wrong").send(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let res = server.api.http.get(format!("{}/metrics", server.base)).bearer_auth("scraper-token");
    let text = res.send().await.unwrap().text().await.unwrap();
    assert!(text.contains("tidings_open_streams"), "{text}");
    for bearer in [None, Some("wrong")] {
        assert_eq!(
            health(&server, bearer).await,
            (StatusCode::OK, serde_json::json!({"status": "ok"}))
        );
    }
    let (status, full) = health(&server, Some("scraper-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(full["last_event_id"].is_u64() && full["open_streams"].is_u64(), "{full}");
    server.stop().await;

    // Without access control everything stays open, whatever the token.
    let server = TestServer::on(&db).await;
    let (_, full) = health(&server, Some("anything")).await;
    assert!(full["last_event_id"].is_u64() && full["epoch"].is_string(), "{full}");
    server.stop().await;
}
