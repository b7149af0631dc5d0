//! The Rust API ([`TodoStream`], for Rust web apps) in a real browser (headless Chromium)
//! against a real tidings-server, which the conductor (`tests/conductor.mjs`, started by
//! `scripts/test-wasm.sh`) runs. Rust apps build this crate themselves, so this is the build
//! they get; the JavaScript package (pkg/) is tested as it ships by `tests/client`.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise, Reflect, JSON};
use tidings_client::{StreamConfig, StreamItem, TodoEvent, TodoStream};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONDUCTOR: Option<&str> = option_env!("TIDINGS_CONDUCTOR");

fn conductor_url() -> &'static str {
    CONDUCTOR.expect("run these tests with scripts/test-wasm.sh (it starts the conductor)")
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
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

async fn server() -> String {
    let info = call("GET", &format!("{}/info", conductor_url()), None).await;
    get(&info, "server").as_string().unwrap()
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

fn sleep(ms: i32) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    }))
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

/// `presence` (a control message with no id) decodes into the protocol's type, typed like
/// `resync`: what is not one is refused with the reason.
#[wasm_bindgen_test]
fn presence_decodes_into_the_protocol_type() {
    use tidings_client::decode::{from_js, parse, DecodeError};
    use tidings_protocol::Presence;

    let decode = |text: &str| from_js::<Presence>(&parse(text).unwrap());
    let presence = |list: &str, users: &[&str], anonymous| Presence {
        list_id: list.into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        anonymous,
    };
    assert_eq!(
        decode(r#"{"type":"presence","list_id":"work","users":["alice","bob"],"anonymous":0}"#),
        Ok(presence("work", &["alice", "bob"], 0))
    );
    assert_eq!(
        decode(r#"{"type":"presence","list_id":"inbox","users":[],"anonymous":2}"#),
        Ok(presence("inbox", &[], 2))
    );
    for (text, error) in [
        (r#"{"type":"resync","list_id":"w","users":[],"anonymous":0}"#, DecodeError::WrongType),
        (r#"{"list_id":"w","users":[],"anonymous":0}"#, DecodeError::WrongType),
        (r#"[]"#, DecodeError::WrongType),
        (r#"{"type":"presence","users":[],"anonymous":0}"#, DecodeError::MissingField("list_id")),
        (r#"{"type":"presence","list_id":"w","anonymous":0}"#, DecodeError::MissingField("users")),
        (r#"{"type":"presence","list_id":"w","users":[]}"#, DecodeError::MissingField("anonymous")),
        (
            r#"{"type":"presence","list_id":"w","users":"alice","anonymous":0}"#,
            DecodeError::WrongType,
        ),
        (
            r#"{"type":"presence","list_id":"w","users":["a",1],"anonymous":0}"#,
            DecodeError::WrongType,
        ),
        (r#"{"type":"presence","list_id":"w","users":[],"anonymous":-1}"#, DecodeError::WrongType),
        (r#"{"type":"presence","list_id":"w","users":[],"anonymous":1.5}"#, DecodeError::WrongType),
    ] {
        assert_eq!(decode(text), Err(error), "{text}");
    }
    assert!(matches!(parse("presence"), Err(DecodeError::NotJson)));
}
