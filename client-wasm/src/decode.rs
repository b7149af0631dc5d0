//! Typed decoding: JSON text is parsed by the browser's own `JSON.parse` (no second JSON
//! parser in the package), then the protocol types are deserialized with serde straight from
//! the resulting `JsValue`.
//!
//! The deserializer here is deliberately small: serde's own error messages format floats and
//! type descriptions, which would add about 25 KB to the package, so errors name what was
//! wrong (a missing field, a wrong type) without formatting serde's text. Change events are
//! decoded by their SSE event name, which avoids serde's buffering of internally tagged
//! enums (another 20 KB).

use std::fmt;

use js_sys::{Array, Object, Reflect};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use tidings_protocol::{event_names, TodoEvent};
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

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        DecodeError::WrongType // see the module docs: the message is not formatted
    }
    fn invalid_type(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        DecodeError::WrongType
    }
    fn invalid_value(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        DecodeError::WrongType
    }
    fn invalid_length(_: usize, _: &dyn de::Expected) -> Self {
        DecodeError::WrongType
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        DecodeError::WrongType
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        DecodeError::WrongType
    }
    fn missing_field(field: &'static str) -> Self {
        DecodeError::MissingField(field)
    }
    fn duplicate_field(_: &'static str) -> Self {
        DecodeError::WrongType
    }
}

/// A serde deserializer reading a `JsValue`.
struct Js(JsValue);

impl<'de> de::Deserializer<'de> for Js {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let v = self.0;
        if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else if let Some(n) = v.as_f64() {
            // JSON numbers are doubles; integral ones are what the protocol's integers are.
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                visitor.visit_i64(n as i64)
            } else {
                visitor.visit_f64(n)
            }
        } else if v.is_null() || v.is_undefined() {
            visitor.visit_unit()
        } else if Array::is_array(&v) {
            visitor.visit_seq(Seq { items: Array::from(&v), next: 0 })
        } else if v.is_object() {
            let entries = Object::entries(v.unchecked_ref());
            visitor.visit_map(Entries { entries, next: 0, value: None })
        } else {
            Err(DecodeError::WrongType)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.0.is_null() || self.0.is_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if !self.0.is_object() || Array::is_array(&self.0) {
            return Err(DecodeError::WrongType);
        }
        // Read just the fields the type has; unknown fields are ignored (forward compatible).
        visitor.visit_map(Fields { object: self.0, fields, next: 0, value: None })
    }

    /// Enums of the protocol outside the events are unit variants named by a string
    /// (`"viewer"`, `"epoch"`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0.as_string() {
            Some(name) => {
                visitor.visit_enum(IntoDeserializer::<DecodeError>::into_deserializer(name))
            }
            None => Err(DecodeError::WrongType),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct Seq {
    items: Array,
    next: u32,
}

impl<'de> SeqAccess<'de> for Seq {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.next >= self.items.length() {
            return Ok(None);
        }
        let item = self.items.get(self.next);
        self.next += 1;
        seed.deserialize(Js(item)).map(Some)
    }
}

struct Fields {
    object: JsValue,
    fields: &'static [&'static str],
    next: usize,
    value: Option<JsValue>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        while let Some(field) = self.fields.get(self.next) {
            self.next += 1;
            let value = js::get(&self.object, field);
            if !value.is_undefined() {
                self.value = Some(value);
                return seed.deserialize((*field).into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(Js(self.value.take().unwrap_or(JsValue::UNDEFINED)))
    }
}

struct Entries {
    entries: Array,
    next: u32,
    value: Option<JsValue>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.next >= self.entries.length() {
            return Ok(None);
        }
        let entry = Array::from(&self.entries.get(self.next));
        self.next += 1;
        self.value = Some(entry.get(1));
        seed.deserialize(Js(entry.get(0))).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(Js(self.value.take().unwrap_or(JsValue::UNDEFINED)))
    }
}

/// Deserialize `T` from an already parsed value.
pub fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, DecodeError> {
    T::deserialize(Js(value.clone()))
}

/// `JSON.parse(text)`.
pub fn parse(text: &str) -> Result<JsValue, DecodeError> {
    js_sys::JSON::parse(text).map_err(|_| DecodeError::NotJson)
}

/// `value[key]` decoded as `T`.
fn field<T: DeserializeOwned>(value: &JsValue, key: &'static str) -> Result<T, DecodeError> {
    let item = Reflect::get(value, &JsValue::from_str(key)).map_err(|_| DecodeError::WrongType)?;
    if item.is_undefined() {
        return Err(DecodeError::MissingField(key));
    }
    from_js(&item)
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
            moved_from: from_js(&js::get(value, "moved_from"))?,
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
        _ => return Err(DecodeError::UnknownEvent),
    })
}

/// Turn a [`DecodeError`] about `what` into the client's error.
pub fn error(what: &str, e: DecodeError) -> ClientError {
    ClientError::Decode { what: what.to_owned(), message: e.message() }
}
