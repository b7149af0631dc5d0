//! `fetch` with JSON in and out, errors as [`ClientError`] values.

use js_sys::{Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, Request, RequestCredentials, RequestInit, Response};

use crate::js::describe;
use crate::status::ClientError;
use crate::urls;

#[wasm_bindgen]
extern "C" {
    // The global `fetch`, which exists in windows and workers alike.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;
}

/// How REST requests are sent.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Server base URL (`""`: the page's origin).
    pub base: String,
    /// Extra headers for every request.
    pub headers: Vec<(String, String)>,
    /// Send cookies cross-origin.
    pub with_credentials: bool,
    /// Sent as `Authorization: Bearer …`.
    pub access_token: Option<String>,
    /// Aborts the requests when signalled.
    pub signal: Option<AbortSignal>,
}

fn credentials(with_credentials: bool) -> RequestCredentials {
    if with_credentials {
        RequestCredentials::Include
    } else {
        RequestCredentials::SameOrigin
    }
}

async fn fetch(request: &Request) -> Result<Response, ClientError> {
    let response = JsFuture::from(global_fetch(request))
        .await
        .map_err(|e| ClientError::Network(describe(&e)))?;
    response.dyn_into().map_err(|_| ClientError::Network("fetch returned no Response".into()))
}

/// The error a non-2xx response stands for, from its JSON body when it has one.
async fn error_of(response: &Response) -> ClientError {
    let status = response.status();
    let body = match response.json() {
        Ok(promise) => JsFuture::from(promise).await.ok(),
        Err(_) => None,
    };
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| Reflect::get(b, &"error".into()).ok())
            .and_then(|e| Reflect::get(&e, &name.into()).ok())
            .and_then(|v| v.as_string())
    };
    ClientError::Http {
        status,
        code: field("code").unwrap_or_else(|| ["http_", &urls::decimal(status.into())].concat()),
        message: field("message").unwrap_or_else(|| response.status_text()),
    }
}

impl Client {
    /// The same client, with requests aborted by `signal`.
    pub fn with_signal(&self, signal: Option<AbortSignal>) -> Client {
        Client { signal, ..self.clone() }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<Request, ClientError> {
        let headers = Headers::new().map_err(|e| ClientError::InvalidInput(describe(&e)))?;
        let set = |name: &str, value: &str| {
            headers.set(name, value).map_err(|e| {
                ClientError::InvalidInput(["header `", name, "`: ", &describe(&e)].concat())
            })
        };
        set("accept", "application/json")?;
        for (name, value) in &self.headers {
            set(name, value)?;
        }
        if let Some(token) = &self.access_token {
            set("authorization", &["Bearer ", token].concat())?;
        }
        let init = RequestInit::new();
        init.set_method(method);
        init.set_credentials(credentials(self.with_credentials));
        init.set_signal(self.signal.as_ref());
        if let Some(body) = body {
            set("content-type", "application/json")?;
            let text = JSON::stringify(body).map_err(|e| {
                ClientError::InvalidInput(["body is not JSON: ", &describe(&e)].concat())
            })?;
            init.set_body(&text.into());
        }
        init.set_headers(&headers);
        let url = urls::join(&self.base, path);
        Request::new_with_str_and_init(&url, &init).map_err(|e| {
            ClientError::InvalidInput(["bad request to `", &url, "`: ", &describe(&e)].concat())
        })
    }

    /// Send a request; the parsed JSON body of a 2xx answer (`undefined` for `204`).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<JsValue, ClientError> {
        let response = fetch(&self.request(method, path, body)?).await?;
        if !response.ok() {
            return Err(error_of(&response).await);
        }
        if response.status() == 204 {
            return Ok(JsValue::UNDEFINED);
        }
        let promise = response
            .json()
            .map_err(|e| ClientError::Decode { what: path.into(), message: describe(&e) })?;
        JsFuture::from(promise)
            .await
            .map_err(|e| ClientError::Decode { what: path.into(), message: describe(&e) })
    }
}
