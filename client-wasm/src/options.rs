//! Options as JavaScript passes them: every field optional, partial objects allowed. Read
//! with `Reflect` rather than serde: it is a handful of fields, and it keeps the package small.

use js_sys::{Array, Object};
use tidings_protocol::is_valid_list_id;
use wasm_bindgen::{JsCast, JsValue};

use crate::backoff::Backoff;
use crate::js::get;
use crate::status::ClientError;
use crate::token::AccessToken;

/// Options shared by `TodoFeed` and `EventStream`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lists to follow (`TodoFeed` only); absent: every list.
    pub lists: Option<Vec<String>>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Silence after which a connection counts as dead. Absent: twice the server's
    /// announced heartbeat plus five seconds (`TodoFeed`), off (`EventStream`).
    pub heartbeat_timeout_ms: Option<f64>,
    /// Send cookies cross-origin (EventSource `withCredentials`, fetch `credentials`).
    pub with_credentials: bool,
    /// Sent as the `access_token` query parameter on the stream (EventSource cannot send
    /// headers) and as `Authorization: Bearer` on REST calls: a string, or a function called
    /// for each connect and REST call ([`crate::token`]).
    pub access_token: Option<AccessToken>,
    /// Extra headers for REST calls.
    pub headers: Vec<(String, String)>,
    /// Share one stream with the other tabs of this origin that follow the same server and
    /// lists (`TodoFeed` only; default on).
    pub share_connection: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lists: None,
            backoff: Backoff::default(),
            heartbeat_timeout_ms: None,
            with_credentials: false,
            access_token: None,
            headers: Vec::new(),
            share_connection: true,
        }
    }
}

fn invalid(message: &str) -> ClientError {
    ClientError::InvalidInput(message.to_owned())
}

/// `obj[key]` when it is present (not `undefined` or `null`).
fn present(obj: &JsValue, key: &str) -> Option<JsValue> {
    Some(get(obj, key)).filter(|v| !v.is_undefined() && !v.is_null())
}

fn number(obj: &JsValue, key: &str, what: &str) -> Result<Option<f64>, ClientError> {
    present(obj, key).map(|v| v.as_f64().ok_or_else(|| invalid(what))).transpose()
}

fn strings(value: &JsValue, what: &str) -> Result<Vec<String>, ClientError> {
    if !Array::is_array(value) {
        return Err(invalid(what));
    }
    Array::from(value).iter().map(|v| v.as_string().ok_or_else(|| invalid(what))).collect()
}

impl Options {
    /// Read `value` (`undefined`/`null`: all defaults) and check it.
    pub fn from_js(value: &JsValue) -> Result<Self, ClientError> {
        let mut options = Options::default();
        if value.is_undefined() || value.is_null() {
            return Ok(options);
        }
        if !value.is_object() {
            return Err(invalid("options must be an object"));
        }
        if let Some(lists) = present(value, "lists") {
            let lists = strings(&lists, "`lists` must be an array of list ids")?;
            if lists.is_empty() {
                return Err(invalid("`lists` is empty: omit it to follow every list"));
            }
            if lists.iter().any(|l| !is_valid_list_id(l)) {
                return Err(invalid(
                    "`lists` holds something that is not a list id (a lowercase slug)",
                ));
            }
            options.lists = Some(lists);
        }
        if let Some(backoff) = present(value, "backoff") {
            let b = &mut options.backoff;
            let what = "`backoff` fields must be numbers";
            b.initial_ms = number(&backoff, "initialMs", what)?.unwrap_or(b.initial_ms);
            b.max_ms = number(&backoff, "maxMs", what)?.unwrap_or(b.max_ms);
            b.factor = number(&backoff, "factor", what)?.unwrap_or(b.factor);
            b.jitter = number(&backoff, "jitter", what)?.unwrap_or(b.jitter);
            options.backoff = b.sanitized();
        }
        let what = "`heartbeatTimeoutMs` must be a positive number";
        options.heartbeat_timeout_ms = number(value, "heartbeatTimeoutMs", what)?;
        if options.heartbeat_timeout_ms.is_some_and(|ms| !(ms.is_finite() && ms > 0.0)) {
            return Err(invalid(what));
        }
        options.with_credentials = present(value, "withCredentials").is_some_and(|v| v.is_truthy());
        if let Some(share) = present(value, "shareConnection") {
            options.share_connection =
                share.as_bool().ok_or_else(|| invalid("`shareConnection` must be a boolean"))?;
        }
        options.access_token = present(value, "accessToken")
            .map(|v| {
                AccessToken::from_js(v)
                    .ok_or_else(|| invalid("`accessToken` must be a string or a function"))
            })
            .transpose()?;
        if let Some(headers) = present(value, "headers") {
            let what = "`headers` must be an object of strings";
            let object = headers.dyn_ref::<Object>().ok_or_else(|| invalid(what))?;
            for entry in Object::entries(object).iter() {
                let pair = strings(&entry, what)?;
                if let [name, value] = &pair[..] {
                    options.headers.push((name.clone(), value.clone()));
                }
            }
        }
        Ok(options)
    }
}
