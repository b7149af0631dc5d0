//! The `accessToken` option: a token, or a function the client calls for one before each
//! connect and each REST call, so an application that refreshes its tokens never has to tell
//! the client. The function gets `{refresh}`: `true` when the server has just refused the
//! token it gave (a 401), so a cached token must not be given again. A function that throws,
//! rejects or gives something other than a non-empty string is an `unauthorized` error.
//!
//! Calling it is a line of JavaScript (`js/token.js`): awaiting whatever the function
//! returns, a string or a promise, costs nothing there.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::js::describe;
use crate::status::ClientError;

#[wasm_bindgen(module = "/js/token.js")]
extern "C" {
    #[wasm_bindgen(js_name = token)]
    fn token_js(source: &JsValue, refresh: bool) -> Promise;
}

/// Where tokens come from: a fixed string, or a JavaScript function.
#[derive(Debug, Clone)]
pub struct AccessToken(JsValue);

impl AccessToken {
    /// A fixed token.
    pub fn fixed(token: &str) -> Self {
        AccessToken(JsValue::from_str(token))
    }

    /// The option's value: a string or a function (anything else is `None`).
    pub fn from_js(value: JsValue) -> Option<Self> {
        (value.is_string() || value.is_function()).then_some(AccessToken(value))
    }

    /// Whether tokens come from a function (and may change from one call to the next).
    pub fn is_provider(&self) -> bool {
        self.0.is_function()
    }

    /// The fixed token, if it is one.
    pub fn as_fixed(&self) -> Option<String> {
        self.0.as_string()
    }

    /// A token for the next request; `refresh` after the server refused the last one.
    pub async fn get(&self, refresh: bool) -> Result<String, ClientError> {
        if let Some(token) = self.as_fixed() {
            return Ok(token);
        }
        match JsFuture::from(token_js(&self.0, refresh)).await {
            Ok(token) => token.as_string().ok_or_else(|| ClientError::Token(String::new())),
            Err(e) => Err(ClientError::Token(describe(&e))),
        }
    }
}
