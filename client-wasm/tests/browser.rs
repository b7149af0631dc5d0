//! The client in a real browser (headless Chromium) against a real tidings-server, which the
//! conductor (`tests/conductor.mjs`, started by `scripts/test-wasm.sh`) runs, stops and
//! restarts. Stores are used exactly as JavaScript uses them: through `subscribe`.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect, JSON};
use tidings_client::{EventStream, StreamConfig, StreamItem, TodoEvent, TodoFeed, TodoStream};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONDUCTOR: Option<&str> = option_env!("TIDINGS_CONDUCTOR");

fn conductor_url() -> &'static str {
    CONDUCTOR.expect("run these tests with scripts/test-wasm.sh (it starts the conductor)")
}

/// Anything that waits in these tests gives up after this long.
const PATIENCE_MS: i32 = 20_000;

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap()
}

fn json(value: &JsValue) -> String {
    JSON::stringify(value).unwrap().as_string().unwrap()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn strings(items: &[&str]) -> JsValue {
    items.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into()
}

/// `fetch` returning parsed JSON (`null` for an empty body); panics on a non-2xx answer.
async fn call(method: &str, url: &str, body: Option<JsValue>) -> JsValue {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&JSON::stringify(&body).unwrap().into());
        let headers = web_sys::Headers::new().unwrap();
        headers.set("content-type", "application/json").unwrap();
        init.set_headers(&headers);
    }
    let window = web_sys::window().unwrap();
    let res: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let text = JsFuture::from(res.text().unwrap()).await.unwrap().as_string().unwrap();
    assert!(res.ok(), "{method} {url}: {} {text}", res.status());
    if text.is_empty() {
        JsValue::NULL
    } else {
        JSON::parse(&text).unwrap()
    }
}

async fn conductor(path: &str, body: Option<JsValue>) -> JsValue {
    let method = if path.starts_with("/server") || path == "/offline" { "POST" } else { "GET" };
    call(method, &format!("{}{path}", conductor_url()), body).await
}

async fn server() -> String {
    get(&conductor("/info", None).await, "server").as_string().unwrap()
}

/// A list of our own, so tests sharing the server do not see each other's todos.
async fn fresh_list(server: &str, prefix: &str) -> String {
    let id = format!("{prefix}-{}", (js_sys::Math::random() * 1e9) as u64);
    call(
        "POST",
        &format!("{server}/api/lists"),
        Some(obj(&[("id", id.clone().into()), ("title", id.clone().into())])),
    )
    .await;
    id
}

async fn snapshot(server: &str, list: &str) -> JsValue {
    call("GET", &format!("{server}/api/lists/{list}/todos"), None).await
}

/// Subscribe like Svelte does; returns the unsubscribe function.
fn subscribe(store: &JsValue, run: impl FnMut(JsValue) + 'static) -> Function {
    let subscribe: Function = get(store, "subscribe").dyn_into().unwrap();
    let run = Closure::<dyn FnMut(JsValue)>::new(run);
    let unsubscribe = subscribe.call1(store, run.as_ref()).unwrap();
    run.forget(); // test-side closure; lives as long as the test page
    unsubscribe.dyn_into().unwrap()
}

fn sleep(ms: i32) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    }))
}

/// The first value of `store` for which `ok` holds (the current one included).
async fn until(store: &JsValue, what: &str, ok: impl Fn(&JsValue) -> bool + 'static) -> JsValue {
    let last = Rc::new(RefCell::new(JsValue::UNDEFINED));
    let mut resolve_slot = None;
    let found = Promise::new(&mut |resolve, _| resolve_slot = Some(resolve));
    let resolve = resolve_slot.unwrap();
    let seen = last.clone();
    let unsubscribe = subscribe(store, move |value| {
        *seen.borrow_mut() = value.clone();
        if ok(&value) {
            resolve.call1(&JsValue::NULL, &value).unwrap();
        }
    });
    let timeout = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_1(
                &resolve,
                PATIENCE_MS,
                &JsValue::from_str("timeout"),
            )
            .unwrap();
    });
    let winner = JsFuture::from(Promise::race(&Array::of2(&found, &timeout))).await.unwrap();
    unsubscribe.call0(&JsValue::NULL).unwrap();
    if winner.as_string().as_deref() == Some("timeout") {
        panic!("timed out waiting for {what}; last value: {}", json(&last.borrow()));
    }
    winner
}

fn titles(todos: &JsValue) -> Vec<String> {
    Array::from(todos).iter().map(|t| get(&t, "title").as_string().unwrap()).collect()
}

fn state(status: &JsValue) -> String {
    get(status, "state").as_string().unwrap_or_default()
}

fn error_code(status: &JsValue) -> Option<String> {
    let error = get(status, "error");
    (!error.is_undefined()).then(|| get(&error, "code").as_string().unwrap())
}

fn fast_backoff() -> JsValue {
    obj(&[("initialMs", 100.into()), ("maxMs", 800.into())])
}

fn feed(url: &str, options: JsValue) -> TodoFeed {
    TodoFeed::new(url, Some(options.unchecked_into())).unwrap()
}

async fn resolve<T: JsCast>(promise: T) -> Result<JsValue, JsValue> {
    JsFuture::from(promise.unchecked_into::<Promise>()).await
}

#[wasm_bindgen_test]
async fn live_events_arrive_in_the_stores() {
    let server = server().await;
    let list = fresh_list(&server, "live").await;
    let feed = feed(&server, obj(&[("lists", strings(&[&list]))]));
    let todos: JsValue = feed.todos().into();
    let status: JsValue = feed.status().into();
    let events: JsValue = feed.events().into();
    until(&status, "open", |s| state(s) == "open").await;

    let created = resolve(feed.create("Buy milk".into(), None)).await.unwrap();
    assert_eq!(get(&created, "list_id").as_string().unwrap(), list);
    let value = until(&todos, "the new todo", |t| titles(t) == ["Buy milk"]).await;
    assert!(Object::is_frozen(value.unchecked_ref::<Object>()), "store values are immutable");
    let event = until(&events, "the event", |e| !e.is_null()).await;
    assert_eq!(get(&event, "type").as_string().unwrap(), "todo_created");

    let id = get(&created, "id").as_string().unwrap();
    resolve(feed.update(id.clone(), obj(&[("done", true.into())]).unchecked_into())).await.unwrap();
    until(&todos, "done", |t| get(&Array::from(t).get(0), "done").as_bool() == Some(true)).await;
    resolve(feed.remove(id)).await.unwrap();
    until(&todos, "empty", |t| Array::from(t).length() == 0).await;

    // A REST error rejects with the server's code and status.
    let error = resolve(feed.create("   ".into(), None)).await.unwrap_err();
    assert_eq!(get(&error, "code").as_string().unwrap(), "invalid_title");
    assert_eq!(get(&error, "status").as_f64(), Some(422.0));
    assert!(error.is_instance_of::<js_sys::Error>());
    feed.close();
}

#[wasm_bindgen_test]
async fn two_feeds_on_one_list_converge_on_the_server_snapshot() {
    let server = server().await;
    let list = fresh_list(&server, "converge").await;
    let options = || obj(&[("lists", strings(&[&list]))]);
    let (a, b) = (feed(&server, options()), feed(&server, options()));
    let (a_todos, b_todos): (JsValue, JsValue) = (a.todos().into(), b.todos().into());
    until(&a.status().into(), "a open", |s| state(s) == "open").await;
    until(&b.status().into(), "b open", |s| state(s) == "open").await;

    let first = resolve(a.create("one".into(), None)).await.unwrap();
    resolve(b.create("two".into(), None)).await.unwrap();
    resolve(a.create("three".into(), None)).await.unwrap();
    let first_id = get(&first, "id").as_string().unwrap();
    resolve(b.update(first_id, obj(&[("title", "one, renamed".into())]).unchecked_into()))
        .await
        .unwrap();

    let expected = json(&get(&snapshot(&server, &list).await, "todos"));
    for todos in [&a_todos, &b_todos] {
        let want = expected.clone();
        until(todos, "the server's snapshot", move |t| json(t) == want).await;
    }
    a.close();
    b.close();
}

#[wasm_bindgen_test]
async fn a_feed_resumes_after_a_restart_and_sees_what_changed_while_down() {
    let server = server().await;
    let list = fresh_list(&server, "restart").await;
    let feed = feed(&server, obj(&[("lists", strings(&[&list])), ("backoff", fast_backoff())]));
    let todos: JsValue = feed.todos().into();
    let status: JsValue = feed.status().into();
    until(&status, "open", |s| state(s) == "open").await;
    let keep = resolve(feed.create("keep".into(), None)).await.unwrap();
    let doomed = resolve(feed.create("doomed".into(), None)).await.unwrap();
    until(&todos, "both", |t| titles(t).len() == 2).await;

    conductor("/server/stop", None).await;
    until(&status, "reconnecting", |s| state(s) == "reconnecting").await;
    // Written by another server process on the same database while ours is down.
    let path = |p: &str| JsValue::from_str(p);
    let op = |method: &str, p: JsValue, body: JsValue| {
        obj(&[("method", method.into()), ("path", p), ("body", body)])
    };
    let ops: Array = [
        op(
            "POST",
            path(&format!("/api/lists/{list}/todos")),
            obj(&[("title", "while away".into())]),
        ),
        op(
            "PATCH",
            path(&format!("/api/todos/{}", get(&keep, "id").as_string().unwrap())),
            obj(&[("done", true.into()), ("title", "kept".into())]),
        ),
        op(
            "DELETE",
            path(&format!("/api/todos/{}", get(&doomed, "id").as_string().unwrap())),
            JsValue::UNDEFINED,
        ),
    ]
    .into_iter()
    .collect();
    conductor("/offline", Some(obj(&[("ops", ops.into())]))).await;
    conductor("/server/start", None).await;

    until(&status, "open again", |s| state(s) == "open").await;
    let expected = json(&get(&snapshot(&server, &list).await, "todos"));
    let value = until(&todos, "the server's snapshot", move |t| json(t) == expected).await;
    assert_eq!(titles(&value), ["kept", "while away"], "no duplicate, nothing lost");
    feed.close();
}

#[wasm_bindgen_test]
async fn the_watchdog_reconnects_a_silent_stream() {
    let server = server().await;
    // The server beats every second; a 300 ms timeout declares the quiet stream dead.
    let feed =
        feed(&server, obj(&[("lists", strings(&["inbox"])), ("heartbeatTimeoutMs", 300.into())]));
    let status: JsValue = feed.status().into();
    until(&status, "open", |s| state(s) == "open").await;
    let dead =
        until(&status, "the watchdog", |s| error_code(s).as_deref() == Some("heartbeat_timeout"))
            .await;
    assert_eq!(state(&dead), "reconnecting");
    until(&status, "open again", |s| state(s) == "open").await;
    feed.close();
}

#[wasm_bindgen_test]
async fn a_malformed_event_is_reported_and_the_stream_goes_on() {
    let fake = format!("{}/fake/malformed", conductor_url());
    let initial = obj(&[("todos", Array::new().into()), ("last_event_id", 0.into())]);
    let feed = feed(&fake, obj(&[("initial", initial)]));
    let errors = Rc::new(RefCell::new(Vec::new()));
    let seen = errors.clone();
    let unsubscribe = subscribe(&feed.status().into(), move |s| {
        if let Some(code) = error_code(&s) {
            seen.borrow_mut().push((code, get(&get(&s, "error"), "message").as_string().unwrap()));
        }
    });
    let todos = until(&feed.todos().into(), "the good event", |t| titles(t) == ["survived"]).await;
    assert_eq!(Array::from(&todos).length(), 1);
    let errors = errors.borrow();
    assert!(
        errors.iter().any(|(code, m)| code == "decode_error" && m.contains("not JSON")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|(code, m)| code == "decode_error" && m.contains("wrong type")),
        "{errors:?}"
    );
    unsubscribe.call0(&JsValue::NULL).unwrap();
    feed.close();
}

#[wasm_bindgen_test]
async fn stores_keep_the_svelte_contract() {
    let server = server().await;
    let list = fresh_list(&server, "contract").await;
    let feed = feed(&server, obj(&[("lists", strings(&[&list]))]));
    let todos: JsValue = feed.todos().into();
    assert!(Object::is(&todos, &feed.todos().into()), "the same store object every time");

    // `run` is called at once, synchronously, with the current value.
    let calls = Rc::new(RefCell::new(Vec::<JsValue>::new()));
    let log = calls.clone();
    let unsubscribe = subscribe(&todos, move |v| log.borrow_mut().push(v));
    assert_eq!(calls.borrow().len(), 1);
    assert!(Array::is_array(&calls.borrow()[0]));

    until(&feed.status().into(), "open", |s| state(s) == "open").await;
    resolve(feed.create("first".into(), None)).await.unwrap();
    until(&todos, "first", |t| titles(t) == ["first"]).await;
    let before = calls.borrow().len();
    assert!(before >= 2);

    // After unsubscribing, no more calls, while other subscribers still get changes.
    unsubscribe.call0(&JsValue::NULL).unwrap();
    unsubscribe.call0(&JsValue::NULL).unwrap(); // twice is harmless
    resolve(feed.create("second".into(), None)).await.unwrap();
    until(&todos, "second", |t| titles(t).len() == 2).await;
    assert_eq!(calls.borrow().len(), before);
    let get_fn: Function = get(&todos, "get").dyn_into().unwrap();
    assert_eq!(titles(&get_fn.call0(&JsValue::NULL).unwrap()), ["first", "second"]);
    feed.close();
}

#[wasm_bindgen_test]
async fn the_stream_opens_lazily_and_closes_after_the_grace_period() {
    let server = server().await;
    let feed = feed(&server, obj(&[("lists", strings(&["inbox"]))]));
    let status: JsValue = feed.status().into();
    sleep(300).await.unwrap();
    assert_eq!(
        state(&get(&status, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap()),
        "connecting"
    );
    // No subscriber yet: nothing connected (the status store itself is subscribed below).
    let unsubscribe = subscribe(&feed.todos().into(), |_| {});
    until(&status, "open", |s| state(s) == "open").await;
    // Leave and come back within the grace period: the connection stays.
    unsubscribe.call0(&JsValue::NULL).unwrap();
    let again = subscribe(&feed.todos().into(), |_| {});
    sleep(1500).await.unwrap();
    let current = get(&status, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap();
    assert_eq!(state(&current), "open");
    // Leave for longer than the grace period: it closes (and reopens on demand).
    again.call0(&JsValue::NULL).unwrap();
    sleep(1500).await.unwrap();
    let current = get(&status, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap();
    assert_eq!(state(&current), "closed");
    let back = subscribe(&feed.todos().into(), |_| {});
    until(&status, "open again", |s| state(s) == "open").await;
    back.call0(&JsValue::NULL).unwrap();
    feed.close();
}

#[wasm_bindgen_test]
async fn a_resume_point_the_server_no_longer_has_refetches_the_snapshot() {
    let server = server().await;
    let list = fresh_list(&server, "resync").await;
    call(
        "POST",
        &format!("{server}/api/lists/{list}/todos"),
        Some(obj(&[("title", "on the server".into())])),
    )
    .await;
    // An `initial` snapshot from a future the server never had: it answers `resync`.
    let stale = obj(&[
        (
            "todos",
            Array::of1(&obj(&[
                ("id", "x".into()),
                ("list_id", list.clone().into()),
                ("title", "stale".into()),
                ("done", false.into()),
                ("created_at", 0.into()),
                ("updated_at", 0.into()),
            ]))
            .into(),
        ),
        ("last_event_id", 1_000_000_000.into()),
    ]);
    let feed = feed(&server, obj(&[("lists", strings(&[&list])), ("initial", stale)]));
    let todos: JsValue = feed.todos().into();
    assert_eq!(
        titles(&get(&todos, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap()),
        ["stale"]
    );
    let value = until(&todos, "the refetched snapshot", |t| titles(t) == ["on the server"]).await;
    assert_eq!(json(&value), json(&get(&snapshot(&server, &list).await, "todos")));
    feed.close();
}

#[wasm_bindgen_test]
async fn event_stream_selects_any_event_as_parsed_json() {
    let server = server().await;
    let list = fresh_list(&server, "generic").await;
    let es = EventStream::new(&format!("{server}/api/events?list={list}"), None).unwrap();
    let created: JsValue = es.select("todo_created").into();
    assert!(Object::is(&created, &es.select("todo_created").into()));
    until(&es.status().into(), "open", |s| state(s) == "open").await;
    call(
        "POST",
        &format!("{server}/api/lists/{list}/todos"),
        Some(obj(&[("title", "generic".into())])),
    )
    .await;
    let data = until(&created, "todo_created", |d| !d.is_null()).await;
    assert_eq!(get(&get(&data, "todo"), "title").as_string().unwrap(), "generic");
    assert!(es.last_event_id().is_some());
    es.close();
}

#[wasm_bindgen_test]
async fn a_204_stops_the_client_for_good() {
    let es = EventStream::new(&format!("{}/fake/stop/api/events", conductor_url()), None).unwrap();
    let status: JsValue = es.status().into();
    let _keep = es.select("anything");
    let unsubscribe = subscribe(&status, |_| {});
    let stopped =
        until(&status, "stopped", |s| error_code(s).as_deref() == Some("stopped_by_server")).await;
    assert_eq!(state(&stopped), "closed");
    unsubscribe.call0(&JsValue::NULL).unwrap();
    es.close();
}

#[wasm_bindgen_test]
async fn unauthorized_is_not_retried_in_a_tight_loop() {
    let before = get(&conductor("/hits", None).await, "unauthorized").as_f64().unwrap_or(0.0);
    let options = obj(&[(
        "backoff",
        obj(&[("initialMs", 20.into()), ("maxMs", 1500.into()), ("jitter", 0.into())]),
    )]);
    let es = EventStream::new(
        &format!("{}/fake/unauthorized/api/events", conductor_url()),
        Some(options.unchecked_into()),
    )
    .unwrap();
    let status: JsValue = es.status().into();
    let failed = until(&status, "the 401", |s| {
        let e = get(s, "error");
        !e.is_undefined() && get(&e, "status").as_f64() == Some(401.0)
    })
    .await;
    assert_eq!(state(&failed), "reconnecting");
    assert_eq!(error_code(&failed).as_deref(), Some("unauthorized"));
    // With a 20 ms first delay, a client that did not back off would have retried many
    // times in a second. Jumping to the 1.5 s cap, it has not retried at all.
    sleep(1000).await.unwrap();
    let after = get(&conductor("/hits", None).await, "unauthorized").as_f64().unwrap();
    assert!(after - before <= 2.0, "{} requests in one second", after - before);
    es.close();
}

#[wasm_bindgen_test]
async fn close_cancels_a_pending_retry() {
    let base = tidings_client::live_resources();
    // Nothing listens on port 9: every attempt fails and a retry is always pending.
    let feed = feed("http://127.0.0.1:9", obj(&[("backoff", fast_backoff())]));
    let status: JsValue = feed.status().into();
    let unsubscribe = subscribe(&status, |_| {});
    until(&status, "a failed attempt", |s| get(s, "attempt").as_f64().unwrap_or(0.0) >= 1.0).await;
    assert!(tidings_client::live_resources() > base);
    feed.close();
    assert_eq!(tidings_client::live_resources(), base, "close() released every timer and listener");
    let closed = get(&status, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap();
    assert_eq!(state(&closed), "closed");
    unsubscribe.call0(&JsValue::NULL).unwrap();
}

#[wasm_bindgen_test]
async fn a_thousand_create_close_cycles_leak_nothing() {
    let server = server().await;
    let health_url = format!("{server}/health");
    let health = || call("GET", &health_url, None);
    let head = get(&health().await, "last_event_id");
    let base_streams = get(&health().await, "open_streams").as_f64().unwrap();
    let base = tidings_client::live_resources();
    let noop = Function::new_no_args("");
    let options = || {
        obj(&[
            ("lists", strings(&["inbox"])),
            ("initial", obj(&[("todos", Array::new().into()), ("last_event_id", head.clone())])),
        ])
    };
    let memory = || {
        wasm_bindgen::memory()
            .unchecked_into::<js_sys::WebAssembly::Memory>()
            .buffer()
            .unchecked_into::<js_sys::ArrayBuffer>()
            .byte_length()
    };
    let mut warm = 0;
    for cycle in 0..1000 {
        let feed = feed(&server, options());
        let todos: JsValue = feed.todos().into();
        let subscribe: Function = get(&todos, "subscribe").dyn_into().unwrap();
        let unsubscribe: Function = subscribe.call1(&todos, &noop).unwrap().dyn_into().unwrap();
        assert!(tidings_client::live_resources() > base, "the stream opened");
        feed.close();
        unsubscribe.call0(&JsValue::NULL).unwrap();
        drop(feed);
        assert_eq!(tidings_client::live_resources(), base, "cycle {cycle} left something behind");
        if cycle % 10 == 9 {
            // Let the browser deliver what closing aborted (in-flight requests settle).
            sleep(0).await.unwrap();
        }
        if cycle == 100 {
            warm = memory();
        }
    }
    assert!(memory() <= warm + 65_536, "wasm memory grew from {warm} to {}", memory());
    // The server sees every connection closed (it notices at its next heartbeat write).
    for _ in 0..100 {
        if get(&health().await, "open_streams").as_f64().unwrap() <= base_streams {
            return;
        }
        sleep(100).await.unwrap();
    }
    panic!("connections left open: {}", json(&health().await));
}

#[wasm_bindgen_test]
async fn the_rust_api_delivers_typed_events() {
    let server = server().await;
    let list = fresh_list(&server, "rust").await;
    let items = Rc::new(RefCell::new(Vec::new()));
    let sink = items.clone();
    let mut resolve_slot = None;
    let got = Promise::new(&mut |resolve, _| resolve_slot = Some(resolve));
    let resolve_fn = resolve_slot.unwrap();
    let stream = TodoStream::open(
        StreamConfig { lists: Some(vec![list.clone()]), ..StreamConfig::new(&server) },
        move |item| {
            if let StreamItem::Change { event: TodoEvent::TodoCreated { todo }, .. } = &item {
                if todo.title == "typed" {
                    resolve_fn.call0(&JsValue::NULL).unwrap();
                }
            }
            sink.borrow_mut().push(item);
        },
    )
    .unwrap();
    // Wait until it is open before writing, so the write is live (not replayed).
    loop {
        if stream.status().state == tidings_client::ConnectionState::Open {
            break;
        }
        sleep(20).await.unwrap();
    }
    call(
        "POST",
        &format!("{server}/api/lists/{list}/todos"),
        Some(obj(&[("title", "typed".into())])),
    )
    .await;
    JsFuture::from(got).await.unwrap();
    assert!(items.borrow().iter().any(
        |i| matches!(i, StreamItem::Status(s) if s.state == tidings_client::ConnectionState::Open)
    ));
    assert!(stream.last_event_id() > 0);
    drop(stream);
}

#[wasm_bindgen_test]
async fn online_pageshow_and_a_visible_tab_retry_at_once() {
    // After a 401 the next retry is 60 s away (the cap, no jitter): any request sooner comes
    // from the page event.
    let options = obj(&[(
        "backoff",
        obj(&[("initialMs", 60_000.into()), ("maxMs", 60_000.into()), ("jitter", 0.into())]),
    )]);
    let es = EventStream::new(
        &format!("{}/fake/unauthorized/api/events", conductor_url()),
        Some(options.unchecked_into()),
    )
    .unwrap();
    let status: JsValue = es.status().into();
    let hits =
        || async { get(&conductor("/hits", None).await, "unauthorized").as_f64().unwrap_or(0.0) };
    let window = web_sys::window().unwrap();
    let mut expected_attempt = 1.0;
    for (target, event) in [
        (window.clone().unchecked_into::<web_sys::EventTarget>(), "online"),
        (window.clone().unchecked_into(), "pageshow"),
        (window.document().unwrap().unchecked_into(), "visibilitychange"),
    ] {
        let attempt = expected_attempt;
        until(&status, "a failed attempt", move |s| {
            get(s, "attempt").as_f64() == Some(attempt)
                && state(s) == "reconnecting"
                && error_code(s).is_some()
        })
        .await;
        let before = hits().await;
        target.dispatch_event(&web_sys::Event::new(event).unwrap()).unwrap();
        expected_attempt += 1.0;
        let next = expected_attempt;
        until(&status, event, move |s| get(s, "attempt").as_f64() == Some(next)).await;
        assert!(hits().await > before, "{event} did not retry");
    }
    es.close();
}

#[wasm_bindgen_test]
async fn a_list_that_does_not_exist_stops_instead_of_retrying() {
    let server = server().await;
    let feed =
        feed(&server, obj(&[("lists", strings(&["no-such-list"])), ("backoff", fast_backoff())]));
    let status: JsValue = feed.status().into();
    let stopped = until(&status, "the 404", |s| error_code(s).is_some()).await;
    assert_eq!(state(&stopped), "closed");
    assert_eq!(error_code(&stopped).as_deref(), Some("list_not_found"));
    // The lists still load (a sidebar can offer the ones that exist).
    until(&feed.lists().into(), "the lists", |l| titles(l).iter().any(|t| t == "Inbox")).await;
    // And it stays stopped: no retry turns it back into `reconnecting`.
    sleep(1000).await.unwrap();
    let now = get(&status, "get").unchecked_into::<Function>().call0(&JsValue::NULL).unwrap();
    assert_eq!(state(&now), "closed");
    feed.close();
}
