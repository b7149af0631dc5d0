//! Access control: tokens the application signs, owned and shared lists, per-user events,
//! and a stream that carries exactly what its user may read at each event.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{token, with_auth, Api, Db, Process, Sse, TestServer, SECRET};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tidings_protocol::TodoEvent;
use tidings_server::hub::Client;
use tidings_server::presence::Presence;
use tidings_server::stream::{self, StreamOptions, StreamRequest};
use tidings_server::tailer::{self, TailerOptions};
use tidings_server::{Hub, Settings, Store, TailerStatus};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).unwrap()
}

/// A token with `claims`, signed with `alg` and `key`.
fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

/// Three parts, `alg: none`, no signature.
fn unsigned(claims: &Value) -> String {
    use base64_like::encode;
    format!(
        "{}.{}.",
        encode(br#"{"alg":"none","typ":"JWT"}"#),
        encode(claims.to_string().as_bytes())
    )
}

/// Base64url without padding, enough to forge an unsigned token.
mod base64_like {
    pub fn encode(bytes: &[u8]) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

async fn assert_unauthorized(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(res.headers()["www-authenticate"], "Bearer", "{what}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_do_not_verify_get_401_and_change_nothing() {
    let db = Db::new();
    let settings = Settings {
        auth_issuer: Some("https://app.example".into()),
        auth_audience: Some("tidings".into()),
        ..with_auth(&db)
    };
    let server = TestServer::start(settings).await;
    let base = server.api.head().await;
    let good =
        json!({"sub": "alice", "exp": now() + 600, "iss": "https://app.example", "aud": "tidings"});
    let secret = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let wrong = EncodingKey::from_secret(b"another secret, also long enough for HS256").unwrap();
    let rsa = EncodingKey::from_rsa_pem(&key("rsa-private.pem")).unwrap();
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let bad: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("garbage", Some("garbage".into())),
        ("alg none", Some(unsigned(&good))),
        ("wrong key", Some(sign(Algorithm::HS256, &wrong, good.clone()))),
        ("RS256 while HS256 is configured", Some(sign(Algorithm::RS256, &rsa, good.clone()))),
        ("expired", Some(sign(Algorithm::HS256, &secret, with(json!({"exp": now() - 60}))))),
        ("not yet valid", Some(sign(Algorithm::HS256, &secret, with(json!({"nbf": now() + 60}))))),
        ("no sub", Some(sign(Algorithm::HS256, &secret, with(json!({"sub": null}))))),
        ("no exp", Some(sign(Algorithm::HS256, &secret, with(json!({"exp": null}))))),
        ("wrong audience", Some(sign(Algorithm::HS256, &secret, with(json!({"aud": "other"}))))),
        (
            "wrong issuer",
            Some(sign(Algorithm::HS256, &secret, with(json!({"iss": "https://evil"})))),
        ),
    ];
    let http = reqwest::Client::new();
    for (what, token) in &bad {
        let mut post = http.post(format!("{}/api/lists", server.base)).json(&json!({"title": "x"}));
        let mut stream = http.get(format!("{}/api/events", server.base));
        if let Some(token) = token {
            post = post.bearer_auth(token);
            stream = stream.query(&[("access_token", token)]);
        }
        assert_unauthorized(post.send().await.unwrap(), what).await;
        assert_unauthorized(stream.send().await.unwrap(), what).await;
    }
    // Within the leeway, and the same claims signed right, are accepted; nothing else
    // changed anything.
    let fine = sign(Algorithm::HS256, &secret, with(json!({"exp": now() - 2})));
    let api = server.api.as_user(&fine);
    assert_eq!(api.get("/api/lists").await["lists"].as_array().unwrap().len(), 1, "alice's inbox");
    assert_eq!(api.head().await, base + 1, "only the inbox was made");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_accepts_only_its_own_algorithm() {
    for (public, private, alg) in [
        ("rsa-public.pem", "rsa-private.pem", Algorithm::RS256),
        ("ec-public.pem", "ec-private.pem", Algorithm::ES256),
        ("ed-public.pem", "ed-private.pem", Algorithm::EdDSA),
    ] {
        let db = Db::new();
        let settings =
            Settings { auth_public_key: Some(format!("{KEYS}/{public}").into()), ..db.settings() };
        let server = TestServer::start(settings).await;
        let signing = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&key(private)),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&key(private)),
            _ => EncodingKey::from_ed_pem(&key(private)),
        }
        .unwrap();
        let claims = json!({"sub": "alice", "exp": now() + 600});
        let api = server.api.as_user(&sign(alg, &signing, claims.clone()));
        assert_eq!(api.get("/api/lists").await["lists"][0]["role"], "owner", "{alg:?}");
        // HS256 signed with the public key's own bytes: the classic key-confusion forgery.
        let confused = EncodingKey::from_secret(&key(public)).unwrap();
        let forged = sign(Algorithm::HS256, &confused, claims);
        let res = server.api.http.get(format!("{}/api/lists", server.base)).bearer_auth(forged);
        assert_unauthorized(res.send().await.unwrap(), "HS256 with a public key").await;
        server.stop().await;
    }
}

/// Alice's list `work` with one todo, and her API and Bob's.
async fn alice_and_bob(server: &TestServer) -> (Api, Api, String) {
    let alice = server.api.as_user(&token("alice"));
    let bob = server.api.as_user(&token("bob"));
    alice.create_list("work").await;
    let todo = alice.create_todo("work", "alice's").await;
    (alice, bob, todo.id)
}

on_every_backend! {
    async fn users_see_and_change_only_what_they_may(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, todo) = alice_and_bob(&server).await;
        let head = alice.head().await;
        let ids = |v: Value| -> Vec<String> {
            v["lists"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect()
        };
        let bobs = ids(bob.get("/api/lists").await);
        assert!(!bobs.contains(&"work".to_owned()) && !bobs.contains(&"inbox".to_owned()), "{bobs:?}");
        let head = head + 1; // bob's first visit made his inbox
        for (method, path, body) in [
            (Method::GET, "/api/lists/work/todos".to_owned(), None),
            (Method::GET, "/api/todos?list=work".to_owned(), None),
            (Method::GET, "/api/events?list=work".to_owned(), None),
            (Method::POST, "/api/lists/work/todos".to_owned(), Some(json!({"title": "bob's"}))),
            (Method::PATCH, format!("/api/todos/{todo}"), Some(json!({"done": true}))),
            (Method::DELETE, format!("/api/todos/{todo}"), None),
            (Method::DELETE, "/api/lists/work".to_owned(), None),
            (Method::PATCH, "/api/lists/work".to_owned(), Some(json!({"title": "bob's"}))),
            (Method::PATCH, format!("/api/todos/{todo}"), Some(json!({"after": null}))),
            (Method::GET, "/api/lists/work/members".to_owned(), None),
            (Method::PUT, "/api/lists/work/members/bob".to_owned(), Some(json!({"role": "editor"}))),
            // The shared default list belongs to no one with access control on.
            (Method::GET, "/api/lists/inbox/todos".to_owned(), None),
        ] {
            let (status, body) = bob.send(method.clone(), &path, body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert!(body["error"]["code"].as_str().unwrap().ends_with("not_found"), "{body}");
        }
        // A move into a list bob cannot see is refused as if it did not exist.
        let own = bob.create_todo(&ids(bob.get("/api/lists").await)[0], "mine").await;
        let (status, body) = bob.send(Method::PATCH, &format!("/api/todos/{}", own.id), Some(json!({"list_id": "work"}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_list")));
        // And so is placing a todo after one of a list bob cannot see.
        let (status, body) = bob.send(Method::PATCH, &format!("/api/todos/{}", own.id), Some(json!({"after": todo}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_after")));
        assert_eq!(alice.get("/api/lists/work/todos").await["todos"].as_array().unwrap().len(), 1);
        assert_eq!(alice.head().await, head + 1, "only bob's own todo was logged");
        server.stop().await;
    }
}

on_every_backend! {
    async fn viewers_read_but_may_not_write_or_share_and_editors_write(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, todo) = alice_and_bob(&server).await;
        let (status, member) = alice
            .send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "viewer"})))
            .await;
        assert_eq!((status, member), (StatusCode::OK, json!({"user": "bob", "role": "viewer"})));
        let lists = bob.get("/api/lists").await;
        let work = lists["lists"].as_array().unwrap().iter().find(|l| l["id"] == "work").unwrap().clone();
        assert_eq!(work["role"], "viewer");
        assert_eq!(bob.get("/api/lists/work/todos").await["todos"][0]["id"], todo.as_str());
        let head = alice.head().await;
        for (method, path, body) in [
            (Method::POST, "/api/lists/work/todos".to_owned(), Some(json!({"title": "bob's"}))),
            (Method::PATCH, format!("/api/todos/{todo}"), Some(json!({"done": true}))),
            (Method::DELETE, format!("/api/todos/{todo}"), None),
            (Method::DELETE, "/api/lists/work".to_owned(), None),
            (Method::PATCH, "/api/lists/work".to_owned(), Some(json!({"title": "bob's"}))),
            (Method::PATCH, format!("/api/todos/{todo}"), Some(json!({"after": null}))),
            (Method::GET, "/api/lists/work/members".to_owned(), None),
            (Method::PUT, "/api/lists/work/members/carol".to_owned(), Some(json!({"role": "viewer"}))),
        ] {
            let (status, body) = bob.send(method.clone(), &path, body).await;
            assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{method} {path}");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
        assert_eq!(alice.head().await, head, "refusals log nothing");
        // An editor writes.
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "editor"}))).await;
        bob.create_todo("work", "bob's, as an editor").await;
        let members = alice.get("/api/lists/work/members").await;
        assert_eq!(
            members,
            json!({"members": [{"user": "alice", "role": "owner"}, {"user": "bob", "role": "editor"}]})
        );
        // The owner cannot be made a member, and a non-member cannot be removed.
        let (status, _) = alice.send(Method::PUT, "/api/lists/work/members/alice", Some(json!({"role": "viewer"}))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = alice.send(Method::DELETE, "/api/lists/work/members/carol", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("member_not_found")));
        server.stop().await;
    }
}

/// The events one of `user`'s streams carries until the change named `last`, as
/// `(id, type, list)`.
async fn collect(sse: &mut Sse, stop_after: u64) -> Vec<(u64, String, String)> {
    let mut seen = Vec::new();
    loop {
        let (id, event) = sse.next_change().await;
        seen.push((id, event.name().to_owned(), event.list_id().to_owned()));
        if id >= stop_after {
            return seen;
        }
    }
}

on_every_backend! {
    async fn events_start_and_stop_exactly_at_the_membership_change_live_and_replayed(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, _, _) = alice_and_bob(&server).await;
        let bob_token = token("bob");
        let url = server.events_url(&format!("?access_token={bob_token}"));
        let mut live = Sse::connect(&url, None).await;
        live.connected().await;
        let start = alice.head().await;

        alice.create_todo("work", "before the share").await;
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "viewer"}))).await;
        alice.create_todo("work", "while shared").await;
        alice.send(Method::DELETE, "/api/lists/work/members/bob", None).await;
        alice.create_todo("work", "after the unshare").await;
        alice.create_list("home").await;
        alice.send(Method::PUT, "/api/lists/home/members/bob", Some(json!({"role": "editor"}))).await;
        alice.create_todo("home", "in home").await;
        let head = alice.head().await;

        // Of the eight changes (before, shared, during, unshared, after, home created, home
        // shared, in home) bob may read five.
        let ids: Vec<u64> = (start + 1..=head).collect();
        assert_eq!(ids.len(), 8);
        let (shared, during, unshared, home_shared, in_home) = (ids[1], ids[2], ids[3], ids[6], ids[7]);
        let want = vec![
            (shared, "list_shared".to_owned(), "work".to_owned()),
            (during, "todo_created".to_owned(), "work".to_owned()),
            (unshared, "list_unshared".to_owned(), "work".to_owned()),
            (home_shared, "list_shared".to_owned(), "home".to_owned()),
            (in_home, "todo_created".to_owned(), "home".to_owned()),
        ];
        assert_eq!(collect(&mut live, head).await, want, "live");

        // Replayed from before it all, with the header a browser sends.
        let mut replayed = Sse::connect(&url, Some(start)).await;
        replayed.connected().await;
        assert_eq!(collect(&mut replayed, head).await, want, "replayed");

        // A stream that follows `home` only: the shares and the unshare still reach it.
        let filtered_url = server.events_url(&format!("?list=home&access_token={bob_token}"));
        let mut filtered = Sse::connect(&filtered_url, Some(start)).await;
        filtered.connected().await;
        let home_only: Vec<_> = want.iter().filter(|(_, kind, list)| list == "home" || kind != "todo_created").cloned().collect();
        assert_eq!(collect(&mut filtered, head).await, home_only, "filtered");
        // And bob may not follow `work` any more.
        let refused = Sse::try_connect(&server.events_url(&format!("?list=work&access_token={bob_token}")), None).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

on_every_backend! {
    async fn a_lagging_stream_is_caught_up_with_exactly_what_its_user_may_read(db) {
        // Driven in-process with a broadcast buffer of one frame: the stream is not read
        // while the changes happen, so it must catch up from the log.
        let settings = with_auth(&db);
        let store = Store::open(&db.url(), settings.store_config()).await.unwrap();
        let hub = Hub::new(1, 10, 10);
        let status = Arc::new(TailerStatus::default());
        let start = store.head().await.unwrap().last_event_id;
        let options = TailerOptions { check_every: Duration::from_secs(2) };
        tailer::spawn(store.clone(), hub.clone(), status, options, start, std::future::pending()).unwrap();
        let slot = hub.try_open_stream(Client::Unknown).unwrap();
        let request = StreamRequest { user: Some("bob".into()), ..StreamRequest::default() };
        let stream_options = StreamOptions { heartbeat_secs: 15, retry_ms: 1000 };
        let presence = Presence::new();
        let events = stream::open(store.clone(), &hub, &presence, request, stream_options, slot, std::future::pending());
        let mut events = Box::pin(events.await.unwrap());
        events.next().await.unwrap(); // connected

        let alice = Some("alice");
        store.create_list(Some("work".into()), "Work".into(), alice, None).await.unwrap();
        for i in 0..20 {
            store.create_todo("work", None, format!("hidden {i}"), alice, None).await.unwrap();
        }
        let shared = store.set_member("work", "bob", tidings_protocol::Role::Viewer, alice, None).await;
        shared.unwrap();
        for i in 0..20 {
            store.create_todo("work", None, format!("visible {i}"), alice, None).await.unwrap();
        }
        store.remove_member("work", "bob", alice, None).await.unwrap();
        for i in 0..20 {
            store.create_todo("work", None, format!("hidden again {i}"), alice, None).await.unwrap();
        }
        store.create_list(Some("end".into()), "End".into(), Some("bob"), None).await.unwrap();
        let head = store.head().await.unwrap().last_event_id;

        let mut kinds = Vec::new();
        let mut titles = Vec::new();
        let mut frames = common::Frames::default();
        'read: loop {
            let chunk = events.next().await.unwrap();
            let text = frames.push(&chunk);
            let mut id = 0;
            for line in text.lines() {
                if let Some(i) = line.strip_prefix("id: ") {
                    id = i.parse().unwrap();
                }
                if let Some(data) = line.strip_prefix("data: ") {
                    let Ok(event) = serde_json::from_str::<TodoEvent>(data) else { continue };
                    kinds.push(event.name().to_owned());
                    if let TodoEvent::TodoCreated { todo } = &event {
                        titles.push(todo.title.clone());
                    }
                    if let TodoEvent::ListCreated { list } = &event {
                        assert_eq!(list.role, Some(tidings_protocol::Role::Owner), "as in GET /api/lists");
                    }
                    if id == head {
                        break 'read;
                    }
                }
            }
        }
        assert_eq!(titles, (0..20).map(|i| format!("visible {i}")).collect::<Vec<_>>());
        assert_eq!(kinds.first().map(String::as_str), Some("list_shared"));
        assert_eq!(kinds.iter().filter(|k| *k == "list_unshared").count(), 1);
        assert_eq!(kinds.last().map(String::as_str), Some("list_created"), "bob's own new list");
    }
}

on_every_backend! {
    async fn deleting_a_list_tells_every_member_and_ends_its_events(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, _) = alice_and_bob(&server).await;
        let inbox = bob.get("/api/lists").await["lists"][0]["id"].as_str().unwrap().to_owned();
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "editor"}))).await;
        let mut sse = Sse::connect(&server.events_url(&format!("?access_token={}", token("bob"))), None).await;
        sse.connected().await;
        let (status, _) = alice.send(Method::DELETE, "/api/lists/work", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, event) = sse.next_change().await;
        assert_eq!(event, TodoEvent::ListDeleted { list_id: "work".into() });
        let (status, _) = bob.send(Method::GET, "/api/lists/work/todos", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Recreating the id makes a new, unshared list: bob's stream stays silent about it,
        // and the next thing it carries is bob's own change.
        alice.create_list("work").await;
        alice.create_todo("work", "new era").await;
        let sentinel = bob.create_todo(&inbox, "sentinel").await;
        let (_, event) = sse.next_change().await;
        assert_eq!(event, TodoEvent::TodoCreated { todo: sentinel });
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_token_expires() {
    let db = Db::new();
    let server = TestServer::start(with_auth(&db)).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let short = sign(Algorithm::HS256, &key, json!({"sub": "alice", "exp": now() + 1}));
    let mut sse = Sse::connect(&server.events_url(&format!("?access_token={short}")), None).await;
    sse.connected().await;
    // It ends when the token stops being accepted: `exp` plus the 5 s leeway.
    let within = Duration::from_secs(1 + tidings_server::auth::LEEWAY_SECS + 3);
    assert!(sse.ends_within(within).await, "the stream outlived its token");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_a_personal_inbox_and_the_shared_one_is_nobodys() {
    let db = Db::new();
    let server = TestServer::start(with_auth(&db)).await;
    let alice = server.api.as_user(&token("alice"));
    let bob = server.api.as_user(&token("bob"));
    let a = alice.get("/api/lists").await;
    let b = bob.get("/api/lists").await;
    for (lists, who) in [(&a, "alice"), (&b, "bob")] {
        let lists = lists["lists"].as_array().unwrap();
        assert_eq!(lists.len(), 1, "{who}: {lists:?}");
        assert_eq!(
            (lists[0]["title"].as_str(), lists[0]["role"].as_str()),
            (Some("Inbox"), Some("owner"))
        );
    }
    assert_ne!(a["lists"][0]["id"], b["lists"][0]["id"]);
    // Asked again: the same one, not a new one.
    assert_eq!(alice.get("/api/lists").await["lists"], a["lists"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_login_signs_tokens_only_when_asked_for() {
    let db = Db::new();
    let server = TestServer::start(Settings { auth_dev_login: true, ..db.settings() }).await;
    let (status, body) =
        server.api.send(Method::POST, "/api/dev/token", Some(json!({"user": "alice"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["expires_at"].as_u64().unwrap() > now());
    let alice = server.api.as_user(body["token"].as_str().unwrap());
    assert_eq!(alice.get("/api/lists").await["lists"][0]["role"], "owner");
    let (status, _) = server.api.send(Method::GET, "/api/lists", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "access control is on");
    server.stop().await;

    let server = TestServer::on(&db).await;
    let (status, _) =
        server.api.send(Method::POST, "/api/dev/token", Some(json!({"user": "alice"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;

    // Never on an address others can reach.
    let settings = Settings { auth_dev_login: true, ..db.settings() };
    let figment = common::figment(&settings).merge(("address", "0.0.0.0"));
    let err = tidings_server::build(figment).await.unwrap_err();
    assert!(err.to_string().contains("auth_dev_login"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_as_identity_providers_and_browsers_send_them() {
    let db = Db::new();
    let settings = Settings { auth_audience: Some("tidings".into()), ..with_auth(&db) };
    let server = TestServer::start(settings).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    // `aud` as an array, as many identity providers write it.
    let many = sign(
        Algorithm::HS256,
        &key,
        json!({"sub": "alice", "exp": now() + 600, "aud": ["other", "tidings"]}),
    );
    assert_eq!(server.api.as_user(&many).get("/api/lists").await["lists"][0]["role"], "owner");
    // Within the leeway: the stream opens (and says `connected`) instead of ending at once.
    let late =
        sign(Algorithm::HS256, &key, json!({"sub": "alice", "exp": now() - 2, "aud": "tidings"}));
    let mut sse = Sse::connect(&server.events_url(&format!("?access_token={late}")), None).await;
    sse.connected().await;
    // Basic credentials a browser attaches behind HTTP basic auth do not hide the stream's
    // own token.
    let res = reqwest::Client::new()
        .get(server.events_url(&format!("?access_token={many}")))
        .header("Authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

on_every_backend! {
    async fn a_deleted_list_reaches_a_member_stream_that_follows_other_lists(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, _) = alice_and_bob(&server).await;
        let inbox = bob.get("/api/lists").await["lists"][0]["id"].as_str().unwrap().to_owned();
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "viewer"}))).await;
        let url = server.events_url(&format!("?list={inbox}&access_token={}", token("bob")));
        let mut sse = Sse::connect(&url, None).await;
        sse.connected().await;
        alice.send(Method::DELETE, "/api/lists/work", None).await;
        let (_, event) = sse.next_change().await;
        assert_eq!(event, TodoEvent::ListDeleted { list_id: "work".into() });
        // Sharing with the role `owner` is not a thing: the body is refused.
        let (status, _) = alice.send(Method::PUT, &format!("/api/lists/{inbox}/members/carol"), Some(json!({"role": "owner"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        server.stop().await;
    }
}

/// One rule for an input given twice (issue 22, item 8): the same value twice is that value;
/// two different values are `400 repeated_parameter`, whichever input it is, never a silent
/// winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_given_twice_with_different_values_is_refused() {
    let db = Db::new();
    let server = TestServer::start(with_auth(&db)).await;
    let (alice, bob) = (token("alice"), token("bob"));
    let http = reqwest::Client::new();
    let code = |res: reqwest::Response| async move {
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
    };
    let refused = (StatusCode::BAD_REQUEST, "repeated_parameter".to_owned());
    let events = server.events_url("");

    // Authorization, on any route.
    let two = http
        .get(format!("{}/api/lists", server.base))
        .header("Authorization", format!("Bearer {alice}"))
        .header("Authorization", format!("Bearer {bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(two).await, refused);
    // access_token on the stream.
    let url = format!("{events}?access_token={alice}&access_token={bob}");
    assert_eq!(code(http.get(&url).send().await.unwrap()).await, refused);
    // The tidings_token cookie, in one header or in two.
    let cookies = format!("tidings_token={alice}; tidings_token={bob}");
    let two = http.get(&events).header("Cookie", cookies).send().await.unwrap();
    assert_eq!(code(two).await, refused);
    // Last-Event-ID.
    let two = http
        .get(&events)
        .bearer_auth(&alice)
        .header("Last-Event-ID", "1")
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(code(two).await, refused);

    // The same value twice is that value.
    let url = format!("{events}?access_token={alice}&access_token={alice}");
    let res = http.get(&url).header("Last-Event-ID", "0").header("Last-Event-ID", "0");
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    let cookies = format!("tidings_token={alice}; other=1; tidings_token={alice}");
    let res = http.get(&events).header("Cookie", cookies).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    server.stop().await;
}

/// Nothing a request sends can forge a line of the text log, drive the terminal that shows
/// it, or make a line of unbounded length (issue 22, item 4): a refused token whose header
/// names an `alg` with a line break, an escape sequence, or 50 000 characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_can_forge_a_log_line_or_make_a_long_one() {
    let db = Db::new();
    let server = Process::spawn_with(&db.url(), &[("TIDINGS_AUTH_SECRET", SECRET)], ":").await;
    let encode = |json: &Value| base64_like::encode(json.to_string().as_bytes());
    let forged = "x\n2026-01-01T00:00:00.000Z INFO  tidings::stream: stream closed \u{1b}[31mred";
    let long = "y".repeat(50_000);
    for alg in [forged, long.as_str()] {
        let header = encode(&json!({ "alg": alg, "typ": "JWT" }));
        let claims = encode(&json!({ "sub": "mallory", "exp": 4_000_000_000u64 }));
        let token = format!("{header}.{claims}.c2ln");
        let (status, _) =
            server.api.as_user(&token).send(reqwest::Method::GET, "/api/lists", None).await;
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    }
    server.api.get("/health").await;
    let output = server.output.clone();
    assert!(server.stop().await.success());
    let log = output.lock().unwrap().clone();
    assert!(log.contains("refused GET /api/lists"), "the refusals are logged:\n{log}");
    assert!(!log.contains('\u{1b}'), "an escape sequence reached the log");
    for line in log.lines() {
        assert!(!line.starts_with("2026-01-01T00:00:00.000Z"), "a forged line: {line}");
        assert!(line.len() < 4_096, "a line of {} bytes", line.len());
    }
}

/// The development login never answers a request that came through a proxy (issue 22, item 1),
/// and the server says at start that it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_login_refuses_requests_through_a_proxy() {
    let db = Db::new();
    let env = [("TIDINGS_AUTH_SECRET", SECRET), ("TIDINGS_AUTH_DEV_LOGIN", "1")];
    let server = Process::spawn_with(&db.url(), &env, ":").await;
    let url = format!("{}/api/dev/token", server.base);
    let login = json!({ "user": "alice" });
    let http = reqwest::Client::new();
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("Forwarded", "for=203.0.113.7"),
        ("X-Real-IP", "203.0.113.7"),
        ("Via", "1.1 proxy"),
    ] {
        let res = http.post(&url).header(name, value).json(&login).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "through a proxy ({name})");
        let body: Value = res.json().await.unwrap();
        assert!(body.get("token").is_none(), "{body}");
    }
    let res = http.post(&url).json(&login).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a direct request from this machine");
    let output = server.output.clone();
    assert!(server.stop().await.success());
    let log = output.lock().unwrap().clone();
    assert!(log.contains("the development login is on"), "no warning at start:\n{log}");
}

on_every_backend! {
    /// One user reaching the server's list limit does not lock another out of her lists
    /// (issue 22, item 3): a read never fails on a write cap.
    async fn a_full_server_still_lets_every_user_read_her_lists(db) {
        let settings = Settings { max_lists: 4, ..with_auth(&db) };
        let server = TestServer::start(settings).await;
        let (alice, _bob, _) = alice_and_bob(&server).await;
        // `inbox`, `work`, and alice's own lists until the server is full.
        let mut refused = None;
        for i in 0..10 {
            let (status, body) = alice
                .send(Method::POST, "/api/lists", Some(json!({ "title": format!("mine {i}") })))
                .await;
            if status != StatusCode::CREATED {
                refused = Some((status, body["error"]["code"].clone()));
                break;
            }
        }
        assert_eq!(refused, Some((StatusCode::CONFLICT, json!("too_many_lists"))));
        let (status, _) = alice
            .send(Method::PUT, "/api/lists/work/members/carol", Some(json!({ "role": "editor" })))
            .await;
        assert_eq!(status, StatusCode::OK);
        // Carol has never been here: her first read makes her inbox, full server or not.
        let carol = server.api.as_user(&token("carol"));
        let (status, lists) = carol.send(Method::GET, "/api/lists", None).await;
        assert_eq!(status, StatusCode::OK, "{lists}");
        let ids: Vec<&str> =
            lists["lists"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"work") && ids.iter().any(|id| id.starts_with("inbox-")), "{ids:?}");
        // Writes are still capped.
        let (status, _) =
            carol.send(Method::POST, "/api/lists", Some(json!({ "title": "more" }))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        server.stop().await;
    }
}

on_every_backend! {
    /// A member may leave a list shared with them (issue 20, item 4): they get
    /// `list_unshared` and the list leaves their lists; the owner cannot leave their own list;
    /// a viewer may not clear a list's done todos.
    async fn a_member_may_leave_a_shared_list_and_its_owner_may_not(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, _) = alice_and_bob(&server).await;
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "viewer"}))).await;
        let url = server.events_url(&format!("?access_token={}", token("bob")));
        let mut sse = Sse::connect(&url, None).await;
        sse.connected().await;
        let (status, body) = bob.send(Method::DELETE, "/api/lists/work/todos?done=true", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

        let (status, _) = bob.send(Method::DELETE, "/api/lists/work/members/bob", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, event) = sse.next_change().await;
        assert_eq!(event, TodoEvent::ListUnshared { list_id: "work".into() });
        let lists = bob.get("/api/lists").await;
        assert!(lists["lists"].as_array().unwrap().iter().all(|l| l["id"] != "work"), "{lists}");
        let members = alice.get("/api/lists/work/members").await;
        assert_eq!(members["members"].as_array().unwrap().len(), 1, "only the owner: {members}");
        // Gone is gone: leaving again names a list bob cannot see.
        let (status, _) = bob.send(Method::DELETE, "/api/lists/work/members/bob", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The owner cannot leave; a stranger cannot leave what they never had.
        let (status, body) = alice.send(Method::DELETE, "/api/lists/work/members/alice", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("owner_cannot_leave")));
        let carol = server.api.as_user(&token("carol"));
        let (status, _) = carol.send(Method::DELETE, "/api/lists/work/members/carol", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

on_every_backend! {
    /// Renaming (issue 20, item 1) with access control: the owner and editors may; every
    /// reader's stream gets `list_updated` (without a role: each keeps their own), nobody
    /// else's does.
    async fn owners_and_editors_rename_a_list_and_its_readers_hear_of_it(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, _) = alice_and_bob(&server).await;
        let carol = server.api.as_user(&token("carol"));
        alice.send(Method::PUT, "/api/lists/work/members/bob", Some(json!({"role": "editor"}))).await;
        carol.create_list("carols").await;
        let mut streams = Vec::new();
        for user in ["alice", "bob", "carol"] {
            let url = server.events_url(&format!("?access_token={}", token(user)));
            let mut sse = Sse::connect(&url, None).await;
            sse.connected().await;
            streams.push(sse);
        }
        let head = alice.head().await;
        let (status, body) = bob.send(Method::PATCH, "/api/lists/work", Some(json!({"title": "Renamed"}))).await;
        assert_eq!((status, body["title"].as_str(), body["role"].as_str()), (StatusCode::OK, Some("Renamed"), Some("editor")));
        let (status, body) = alice.send(Method::PATCH, "/api/lists/work", Some(json!({"title": "Work"}))).await;
        assert_eq!((status, body["role"].as_str()), (StatusCode::OK, Some("owner")));
        for sse in &mut streams[..2] {
            for (want_id, want_title) in [(head + 1, "Renamed"), (head + 2, "Work")] {
                match sse.next_change().await {
                    (id, TodoEvent::ListUpdated { list }) => {
                        assert_eq!((id, list.id.as_str(), list.title.as_str(), list.role), (want_id, "work", want_title, None));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // Carol's stream: the next thing she hears of is her own change, not alice's list.
        carol.create_todo("carols", "hers").await;
        let (id, event) = streams[2].next_change().await;
        assert_eq!((id, event.name()), (head + 3, "todo_created"));
        server.stop().await;
    }
}

on_every_backend! {
    /// Look-alike ids and names (issue 22, item 7): a list id that mixes scripts or reads as
    /// an ASCII id is refused (a derived one leaves such words out), and so are user names with
    /// invisible or direction-changing characters, `/` or `..`, in a URL and in a token (a
    /// URL path segment that is only `..` never reaches a route: URLs resolve it away).
    async fn ids_and_names_that_pass_for_others_are_refused(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let mallory = server.api.as_user(&token("mallory"));
        mallory.get("/api/lists").await;
        let head = mallory.head().await;
        for id in ["inbox-\u{430}lice", "\u{456}nb\u{43e}\u{445}", "p\u{430}y\u{440}al", "\u{440}\u{430}\u{443}"] {
            let (status, body) = mallory.send(Method::POST, "/api/lists", Some(json!({"id": id, "title": "Inbox"}))).await;
            assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_list_id")), "{id}: {body}");
        }
        for user in ["al\u{202E}ice", "a\u{200B}lice", "a%2Fb", "x..y"] {
            let path = format!("/api/lists/work/members/{user}");
            let (status, body) = mallory.send(Method::PUT, &path, Some(json!({"role": "viewer"}))).await;
            assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_user")), "{user}: {body}");
        }
        assert_eq!(mallory.head().await, head, "refusals change nothing");
        // From a title: the words that would make a look-alike id are left out.
        let (status, body) = mallory.send(Method::POST, "/api/lists", Some(json!({"title": "inbox \u{430}lice"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["id"].as_str().unwrap().is_ascii(), "{body}");
        let (status, body) = mallory.send(Method::POST, "/api/lists", Some(json!({"title": "Дом 2"}))).await;
        assert_eq!((status, body["id"].as_str()), (StatusCode::CREATED, Some("дом-2")));
        // A token for such a name does not verify.
        for sub in ["al\u{202E}ice", "a/b", "..", "\u{2066}bob"] {
            let forged = server.api.as_user(&token(sub));
            let (status, body) = forged.send(Method::GET, "/api/lists", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{sub:?}: {body}");
        }
        server.stop().await;
    }
}

/// With access control the write budget is per user (issue 22, item 5): one user past hers
/// gets `429`, another user on the same address writes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_budget_is_per_user() {
    let db = Db::new();
    let server =
        TestServer::start(Settings { write_rate: 1, write_burst: 3, ..with_auth(&db) }).await;
    let (alice, bob) = (server.api.as_user(&token("alice")), server.api.as_user(&token("bob")));
    alice.create_list("work").await;
    bob.create_list("home").await;
    alice.create_todo("work", "1").await;
    alice.create_todo("work", "2").await;
    let (status, body) =
        alice.send(Method::POST, "/api/lists/work/todos", Some(json!({"title": "3"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("write_rate_limited"))
    );
    bob.create_todo("home", "bob's").await;
    server.stop().await;
}

on_every_backend! {
    /// Stream tickets (issue 22, item 2): a token traded for a one-time ticket opens one
    /// stream as its user, so no bearer token travels in the stream's URL; a used, unknown or
    /// forged ticket is `401`; on PostgreSQL a ticket from one process opens a stream on another.
    async fn a_stream_ticket_opens_one_stream_once(db) {
        let server = TestServer::start(with_auth(&db)).await;
        let (alice, bob, _) = alice_and_bob(&server).await;
        let (status, body) = alice.send(Method::POST, "/api/events/ticket", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ticket = body["ticket"].as_str().unwrap().to_owned();
        let expires_in = body["expires_at"].as_u64().unwrap() as i64 - now() as i64;
        assert!((25..=31).contains(&expires_in), "{body}");

        // A second process on the same PostgreSQL redeems it as well as this one would.
        let other = if db.is_postgres() { Some(TestServer::start(with_auth(&db)).await) } else { None };
        let events = other.as_ref().unwrap_or(&server).events_url(&format!("?ticket={ticket}"));
        let mut sse = Sse::connect(&events, None).await;
        sse.connected().await;
        alice.create_todo("work", "for alice's stream").await;
        match sse.next_change().await {
            (_, TodoEvent::TodoCreated { todo }) => assert_eq!(todo.title, "for alice's stream"),
            other => panic!("unexpected {other:?}"),
        }
        // Used up; never issued; not for bob's lists either way.
        for url in [events.clone(), server.events_url("?ticket=0123456789abcdef")] {
            let res = reqwest::get(&url).await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{url}");
        }
        let (status, _) = server.api.send(Method::POST, "/api/events/ticket", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a ticket needs a token");
        let (status, body) = bob.send(Method::POST, "/api/events/ticket", None).await;
        assert_eq!(status, StatusCode::OK);
        let mut bobs = Sse::connect(&server.events_url(&format!("?ticket={}", body["ticket"].as_str().unwrap())), None).await;
        bobs.connected().await;
        bob.create_list("bobs").await;
        alice.create_todo("work", "not for bob").await;
        bob.create_todo("bobs", "for bob").await;
        let titles: Vec<String> = [bobs.next_change().await, bobs.next_change().await]
            .into_iter()
            .map(|(_, e)| e.name().to_owned())
            .collect();
        assert_eq!(titles, ["list_created", "todo_created"], "bob's stream is bob's");
        drop((sse, bobs));
        if let Some(other) = other {
            other.stop().await;
        }
        server.stop().await;
    }
}

/// Without access control a stream needs no ticket: the route says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_access_control_there_are_no_tickets() {
    let db = Db::new();
    let server = TestServer::on(&db).await;
    let (status, body) = server.api.send(Method::POST, "/api/events/ticket", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    server.stop().await;
}
