//! Values handed to JavaScript: status objects, errors, frozen snapshots.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::status::{ClientError, ConnectionState, ConnectionStatus};

/// `obj[key]`, or `undefined`.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `obj[key] = value` on a plain object of ours.
pub fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// A fresh status object: `{state, attempt: 0}` with the properties of `from` copied over.
pub fn copy(from: Option<&JsValue>, state: ConnectionState) -> Object {
    let status = Object::new();
    set(&status, "state", &JsValue::from_str(state.as_str()));
    set(&status, "attempt", &JsValue::from(0));
    match from {
        Some(from) => Object::assign(&status, from.unchecked_ref()),
        None => status,
    }
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
    let e = js_sys::Error::new(&error.message());
    set(&e, "code", &JsValue::from_str(error.code()));
    if let Some(status) = error.status() {
        set(&e, "status", &JsValue::from(status));
    }
    e.into()
}

/// A status object as the connection or the relay hand it over (`{state, attempt, error?}`;
/// not an object: the leader has none yet), typed (without role and cursor).
pub fn read_status(value: &JsValue) -> ConnectionStatus {
    if !value.is_object() {
        return ConnectionStatus { state: ConnectionState::Connecting, ..Default::default() };
    }
    let detail = get(value, "error");
    let error = detail.is_object().then(|| read_error(&detail));
    ConnectionStatus {
        state: ConnectionState::from_name(&get(value, "state").as_string().unwrap_or_default()),
        attempt: get(value, "attempt").as_f64().unwrap_or(0.0) as u32,
        error,
        ..Default::default()
    }
}

/// An error reported by the JavaScript side (`{code, message, status?}`: a `TidingsError`, or
/// its plain form from another tab); a thrown value of another shape is a `network_error`.
pub fn read_error(value: &JsValue) -> ClientError {
    let text = |key| get(value, key).as_string();
    match text("code") {
        Some(code) => ClientError::Reported {
            code,
            message: text("message").unwrap_or_default(),
            status: get(value, "status").as_f64().map(|s| s as u16),
        },
        None => ClientError::Network(describe(value)),
    }
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
