//! `fetch` with JSON in and out, errors as [`ClientError`] values.

use js_sys::{Promise, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, Headers, Request, RequestCredentials, RequestInit, Response,
};

use crate::js::describe;
use crate::status::ClientError;
use crate::token::AccessToken;

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
    /// Sent as `Authorization: Bearer …`, fetched anew for every request.
    pub access_token: Option<AccessToken>,
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
        code: field("code").unwrap_or_else(|| format!("http_{status}")),
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
        token: Option<&str>,
    ) -> Result<Request, ClientError> {
        let headers = Headers::new().map_err(|e| ClientError::InvalidInput(describe(&e)))?;
        let set = |name: &str, value: &str| {
            headers.set(name, value).map_err(|e| {
                ClientError::InvalidInput(format!("header `{name}`: {}", describe(&e)))
            })
        };
        set("accept", "application/json")?;
        for (name, value) in &self.headers {
            set(name, value)?;
        }
        if let Some(token) = token {
            set("authorization", &["Bearer ", token].concat())?;
        }
        let init = RequestInit::new();
        init.set_method(method);
        init.set_credentials(credentials(self.with_credentials));
        init.set_signal(self.signal.as_ref());
        if let Some(body) = body {
            set("content-type", "application/json")?;
            let text = JSON::stringify(body).map_err(|e| {
                ClientError::InvalidInput(format!("body is not JSON: {}", describe(&e)))
            })?;
            init.set_body(&text.into());
        }
        init.set_headers(&headers);
        let url = crate::urls::join(&self.base, path);
        Request::new_with_str_and_init(&url, &init).map_err(|e| {
            ClientError::InvalidInput(format!("bad request to `{url}`: {}", describe(&e)))
        })
    }

    /// Send a request; the parsed JSON body of a 2xx answer (`undefined` for `204`). A 401
    /// with a token function is sent once more with a fresh token (`{refresh: true}`).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<JsValue, ClientError> {
        let mut refresh = false;
        let response = loop {
            let token = match &self.access_token {
                Some(source) => Some(source.get(refresh).await?),
                None => None,
            };
            let response = fetch(&self.request(method, path, body, token.as_deref())?).await?;
            let provider = self.access_token.as_ref().is_some_and(AccessToken::is_provider);
            if response.status() == 401 && provider && !refresh {
                refresh = true;
                continue;
            }
            break response;
        };
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

/// What a plain request to a stream URL says about why an EventSource gave up.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    /// The stream answers normally now: just reconnect.
    Stream,
    /// `204 No Content`: the server wants the client to stop.
    Stop,
    /// Anything else, with the server's `Retry-After` if it sent one.
    Failed {
        /// What went wrong.
        error: ClientError,
        /// The server's `Retry-After`, in milliseconds.
        retry_after_ms: Option<f64>,
    },
}

/// Request `url` as the EventSource would and report its status, without keeping the
/// stream open (the body of a good answer is aborted at once).
pub async fn probe_stream(
    url: &str,
    with_credentials: bool,
    abort: &AbortController,
) -> ProbeOutcome {
    let init = RequestInit::new();
    init.set_credentials(credentials(with_credentials));
    init.set_signal(Some(&abort.signal()));
    if let Ok(headers) = Headers::new() {
        let _ = headers.set("accept", "text/event-stream");
        init.set_headers(&headers);
    }
    let failed = |error| ProbeOutcome::Failed { error, retry_after_ms: None };
    let request = match Request::new_with_str_and_init(url, &init) {
        Ok(request) => request,
        Err(e) => return failed(ClientError::InvalidInput(describe(&e))),
    };
    let response = match fetch(&request).await {
        Ok(response) => response,
        Err(error) => return failed(error),
    };
    let status = response.status();
    let content_type = response.headers().get("content-type").ok().flatten().unwrap_or_default();
    if status == 200 {
        abort.abort();
        return if content_type.starts_with("text/event-stream") {
            ProbeOutcome::Stream
        } else {
            failed(ClientError::WrongContentType(content_type))
        };
    }
    if status == 204 {
        return ProbeOutcome::Stop;
    }
    let retry_after_ms = response
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        // Seconds (the HTTP-date form is not worth its parser here).
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map(|s| f64::from(s) * 1000.0);
    ProbeOutcome::Failed { error: error_of(&response).await, retry_after_ms }
}
