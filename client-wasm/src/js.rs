//! Values handed to JavaScript: status objects, errors, frozen snapshots.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::status::{ClientError, ConnectionStatus};

/// `obj[key]`, or `undefined`.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// Freeze `value` so consumers cannot change what other subscribers see.
pub fn freeze(value: JsValue) -> JsValue {
    if value.is_object() {
        Object::freeze(value.unchecked_ref::<Object>()).into()
    } else {
        value
    }
}

/// A frozen array of `items`.
pub fn frozen_array<'a>(items: impl Iterator<Item = &'a JsValue>) -> JsValue {
    let array: Array = items.collect();
    freeze(array.into())
}

/// A JavaScript `Error` with `code` (and `status` when the server answered), the shape
/// every rejected promise and `status.error` has.
pub fn error(error: &ClientError) -> JsValue {
    let e = js_sys::Error::new(&error.to_string());
    set(&e, "code", &JsValue::from_str(error.code()));
    if let Some(status) = error.status() {
        set(&e, "status", &JsValue::from(status));
    }
    if let ClientError::Http { message, .. } = error {
        // The server's own message, without our "HTTP 422:" prefix.
        set(&e, "message", &JsValue::from_str(message));
    }
    e.into()
}

/// The `status` store's value: `{state, attempt, lastEventId, error?}`.
pub fn status(status: &ConnectionStatus) -> JsValue {
    let obj = Object::new();
    set(&obj, "state", &JsValue::from_str(status.state.as_str()));
    set(&obj, "attempt", &JsValue::from(status.attempt));
    let id = status.last_event_id.as_deref().map_or(JsValue::NULL, JsValue::from_str);
    set(&obj, "lastEventId", &id);
    if let Some(e) = &status.error {
        set(&obj, "error", &error(e));
    }
    freeze(obj.into())
}

/// A readable description of a thrown JavaScript value.
pub fn describe(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .or_else(|| js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "unknown error".into())
}

/// Log `message` as a console warning (malformed events are reported there too).
pub fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}
