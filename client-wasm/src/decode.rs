//! Typed decoding: JSON text is parsed by the browser's own `JSON.parse` (no JSON parser in
//! the package), then the protocol types are read field by field straight from the
//! resulting `JsValue` ([`FromJs`]).
//!
//! By hand rather than through serde: serde's derived visitors and a deserializer over
//! `JsValue` were about 10 KB of the package (README "Package size"), and errors name what
//! was wrong (a missing field, a wrong type) without formatting anything. Each impl builds
//! its type with a struct literal, so a field added to the protocol breaks this build until
//! it is read here; the JSON names and defaults are the protocol's serde attributes
//! (`snake_case`, `#[serde(default)]` fields may be missing). Change events are decoded by
//! their SSE event name, and their `type` must agree.

use std::fmt;

use js_sys::Array;
use tidings_protocol::{
    event_names, Connected, List, Member, Members, Presence, Resync, ResyncReason, Role, Todo,
    TodoEvent, TodosSnapshot,
};
use wasm_bindgen::{JsCast, JsValue};

use crate::js;
use crate::status::ClientError;

/// Why a value did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON at all.
    NotJson,
    /// A required field is absent.
    MissingField(&'static str),
    /// A value has the wrong type or an impossible value.
    WrongType,
    /// The event name is not one this client knows.
    UnknownEvent,
}

impl DecodeError {
    /// What was wrong, in words (by hand: nothing in the package formats).
    pub fn message(&self) -> String {
        match self {
            DecodeError::NotJson => "not JSON".into(),
            DecodeError::MissingField(field) => ["missing field `", field, "`"].concat(),
            DecodeError::WrongType => "a value has the wrong type".into(),
            DecodeError::UnknownEvent => "unknown event".into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for DecodeError {}

/// A value that can be read from parsed JSON.
pub trait FromJs: Sized {
    /// Read `value`.
    fn from_js(value: &JsValue) -> Result<Self, DecodeError>;

    /// The value of an absent field named `field` (an error, unless optional).
    fn missing(field: &'static str) -> Result<Self, DecodeError> {
        Err(DecodeError::MissingField(field))
    }
}

/// `value[key]` decoded as `T`.
fn field<T: FromJs>(value: &JsValue, key: &'static str) -> Result<T, DecodeError> {
    let item = js::get(value, key);
    if item.is_undefined() {
        T::missing(key)
    } else {
        T::from_js(&item)
    }
}

/// `value[key]` decoded as `T`, or `T`'s default when absent (`#[serde(default)]`).
fn field_or_default<T: FromJs + Default>(
    value: &JsValue,
    key: &'static str,
) -> Result<T, DecodeError> {
    field::<Option<T>>(value, key).map(Option::unwrap_or_default)
}

/// A JSON object (not an array), or [`DecodeError::WrongType`].
fn object(value: &JsValue) -> Result<&JsValue, DecodeError> {
    if value.is_object() && !Array::is_array(value) {
        Ok(value)
    } else {
        Err(DecodeError::WrongType)
    }
}

/// An object whose `type` is `name` (the protocol's internally tagged control messages).
fn tagged<'a>(value: &'a JsValue, name: &str) -> Result<&'a JsValue, DecodeError> {
    match js::get(object(value)?, "type").as_string() {
        Some(tag) if tag == name => Ok(value),
        _ => Err(DecodeError::WrongType),
    }
}

/// A JSON number that is an integer a double holds exactly.
fn integer(value: &JsValue) -> Result<f64, DecodeError> {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => Ok(n),
        _ => Err(DecodeError::WrongType),
    }
}

impl FromJs for String {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        value.as_string().ok_or(DecodeError::WrongType)
    }
}

impl FromJs for bool {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        value.as_bool().ok_or(DecodeError::WrongType)
    }
}

impl FromJs for i64 {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        integer(value).map(|n| n as i64)
    }
}

impl FromJs for u64 {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        match integer(value)? {
            n if n >= 0.0 => Ok(n as u64),
            _ => Err(DecodeError::WrongType),
        }
    }
}

impl<T: FromJs> FromJs for Option<T> {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        if value.is_null() || value.is_undefined() {
            Ok(None)
        } else {
            T::from_js(value).map(Some)
        }
    }

    fn missing(_: &'static str) -> Result<Self, DecodeError> {
        Ok(None)
    }
}

impl<T: FromJs> FromJs for Vec<T> {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        if !Array::is_array(value) {
            return Err(DecodeError::WrongType);
        }
        // A loop over the array itself (it is one) rather than `collect` into a `Result` over
        // a copy of the handle: smaller in the module.
        let mut items = Vec::new();
        for item in value.unchecked_ref::<Array>().iter() {
            items.push(T::from_js(&item)?);
        }
        Ok(items)
    }
}

impl FromJs for Role {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        match value.as_string().as_deref() {
            Some("viewer") => Ok(Role::Viewer),
            Some("editor") => Ok(Role::Editor),
            Some("owner") => Ok(Role::Owner),
            _ => Err(DecodeError::WrongType),
        }
    }
}

impl FromJs for ResyncReason {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        match value.as_string().as_deref() {
            Some("pruned") => Ok(ResyncReason::Pruned),
            Some("ahead") => Ok(ResyncReason::Ahead),
            Some("epoch") => Ok(ResyncReason::Epoch),
            _ => Err(DecodeError::WrongType),
        }
    }
}

impl FromJs for Todo {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = object(value)?;
        Ok(Todo {
            id: field(v, "id")?,
            list_id: field(v, "list_id")?,
            title: field(v, "title")?,
            done: field(v, "done")?,
            created_at: field(v, "created_at")?,
            updated_at: field(v, "updated_at")?,
            position: field_or_default(v, "position")?,
        })
    }
}

impl FromJs for List {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = object(value)?;
        Ok(List {
            id: field(v, "id")?,
            title: field(v, "title")?,
            created_at: field(v, "created_at")?,
            role: field(v, "role")?,
        })
    }
}

impl FromJs for Member {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = object(value)?;
        Ok(Member { user: field(v, "user")?, role: field(v, "role")? })
    }
}

impl FromJs for Members {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        Ok(Members { members: field(object(value)?, "members")? })
    }
}

impl FromJs for TodosSnapshot {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = object(value)?;
        Ok(TodosSnapshot {
            todos: field(v, "todos")?,
            last_event_id: field(v, "last_event_id")?,
            epoch: field(v, "epoch")?,
        })
    }
}

impl FromJs for Connected {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = tagged(value, event_names::CONNECTED)?;
        Ok(Connected {
            server_version: field(v, "server_version")?,
            last_event_id: field(v, "last_event_id")?,
            resume_from: field(v, "resume_from")?,
            heartbeat_secs: field(v, "heartbeat_secs")?,
            epoch: field_or_default(v, "epoch")?,
        })
    }
}

impl FromJs for Resync {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = tagged(value, event_names::RESYNC)?;
        Ok(Resync {
            last_event_id: field(v, "last_event_id")?,
            requested: field(v, "requested")?,
            reason: field_or_default(v, "reason")?,
            epoch: field_or_default(v, "epoch")?,
        })
    }
}

impl FromJs for Presence {
    fn from_js(value: &JsValue) -> Result<Self, DecodeError> {
        let v = tagged(value, event_names::PRESENCE)?;
        // The vector last: a failure after it would have to drop it (more code).
        Ok(Presence {
            anonymous: field(v, "anonymous")?,
            list_id: field(v, "list_id")?,
            users: field(v, "users")?,
        })
    }
}

/// Decode `T` from an already parsed value.
pub fn from_js<T: FromJs>(value: &JsValue) -> Result<T, DecodeError> {
    T::from_js(value)
}

/// An SSE event id as the server writes it: decimal digits, a `u64` (by hand: `str::parse`
/// brings its general number parser into the package).
pub fn event_id(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None; // 19 digits always fit in a u64
    }
    text.bytes().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// `JSON.parse(text)`.
pub fn parse(text: &str) -> Result<JsValue, DecodeError> {
    js_sys::JSON::parse(text).map_err(|_| DecodeError::NotJson)
}

/// The change event named `name` from its parsed data. The data's `type` must agree.
pub fn event(name: &str, value: &JsValue) -> Result<TodoEvent, DecodeError> {
    if js::get(value, "type").as_string().as_deref() != Some(name) {
        return Err(DecodeError::WrongType);
    }
    Ok(match name {
        event_names::TODO_CREATED => TodoEvent::TodoCreated { todo: field(value, "todo")? },
        event_names::TODO_UPDATED => TodoEvent::TodoUpdated {
            todo: field(value, "todo")?,
            moved_from: field(value, "moved_from")?,
        },
        event_names::TODO_DELETED => {
            TodoEvent::TodoDeleted { id: field(value, "id")?, list_id: field(value, "list_id")? }
        }
        event_names::LIST_CREATED => TodoEvent::ListCreated { list: field(value, "list")? },
        event_names::LIST_DELETED => TodoEvent::ListDeleted { list_id: field(value, "list_id")? },
        event_names::LIST_SHARED => {
            TodoEvent::ListShared { list: field(value, "list")?, role: field(value, "role")? }
        }
        event_names::LIST_UNSHARED => TodoEvent::ListUnshared { list_id: field(value, "list_id")? },
        event_names::LIST_UPDATED => TodoEvent::ListUpdated { list: field(value, "list")? },
        _ => return Err(DecodeError::UnknownEvent),
    })
}

/// Turn a [`DecodeError`] about `what` into the client's error.
pub fn error(what: &str, e: DecodeError) -> ClientError {
    ClientError::Decode { what: what.to_owned(), message: e.message() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_ids_are_decimal_numbers() {
        assert_eq!(super::event_id("0"), Some(0));
        assert_eq!(super::event_id("1234567"), Some(1_234_567));
        assert_eq!(super::event_id("9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in ["", "-1", "+1", "1.5", " 1", "0x10", "12345678901234567890"] {
            assert_eq!(super::event_id(bad), None, "{bad}");
        }
    }
}
