//! REST calls: Rust's handle on `js/rest.js`, which sends them with `fetch` (JSON in and
//! out), asks the `accessToken` option for tokens, and turns every failure into a
//! `TidingsError` (the codes are listed there). For the Rust API ([`crate::rust_api`]);
//! `TodoFeed` calls the script directly.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortSignal;

use crate::js;
use crate::status::ClientError;

#[wasm_bindgen(module = "/js/rest.js")]
extern "C" {
    #[wasm_bindgen(js_name = Rest)]
    #[derive(Clone)]
    type RestJs;

    #[wasm_bindgen(constructor, js_class = "Rest")]
    fn new(base: &str, headers: &JsValue, with_credentials: bool, token: &JsValue) -> RestJs;

    #[wasm_bindgen(method, js_class = "Rest")]
    fn send(
        this: &RestJs,
        method: &str,
        path: &str,
        body: &JsValue,
        signal: Option<&AbortSignal>,
    ) -> Promise;

    #[wasm_bindgen(method, js_class = "Rest")]
    fn create(this: &RestJs, path: &str, body: &JsValue) -> Promise;
}

/// How REST requests are sent (cheap to clone: a handle).
#[derive(Clone)]
pub struct Client {
    js: RestJs,
}

impl Client {
    /// Requests to the server at `base` (`""`: the page's origin) with extra `headers`
    /// (`[[name, value], …]`, as `js/options.js` reads them) and `access_token` (a string, a
    /// function, or `undefined`: `js/rest.js` says how each is used).
    pub fn new(
        base: &str,
        headers: &JsValue,
        with_credentials: bool,
        access_token: &JsValue,
    ) -> Client {
        Client { js: RestJs::new(base, headers, with_credentials, access_token) }
    }

    /// `method path` with `body` (JSON), aborted by `signal`: a `Promise` of the parsed JSON
    /// body of a 2xx answer (`undefined` for `204`) that rejects with a `TidingsError`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
        signal: Option<&AbortSignal>,
    ) -> Promise {
        self.js.send(method, path, body.unwrap_or(&JsValue::UNDEFINED), signal)
    }

    /// POST `body` (which carries a client-chosen id) to `path`, re-sent twice after a
    /// network failure (250 ms, then 1 s later): created at most once.
    pub fn create(&self, path: &str, body: &JsValue) -> Promise {
        self.js.create(path, body)
    }

    /// [`Client::request`], awaited: the body, or the error as a [`ClientError`].
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
        signal: Option<&AbortSignal>,
    ) -> Result<JsValue, ClientError> {
        JsFuture::from(self.request(method, path, body, signal))
            .await
            .map_err(|e| js::read_error(&e))
    }
}
