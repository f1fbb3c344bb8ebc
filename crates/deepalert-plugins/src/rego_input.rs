//! Any `Serialize` value straight into a regorus input value, shaped as serde_json would
//! shape it. Going through `serde_json::Value` first built, converted and dropped a
//! second tree: two thirds of a review's Rego cost, more than evaluating the policy.
//! Written by hand because neither regorus nor serde offers this serializer.

use std::collections::BTreeMap;
use std::fmt::Display;

use regorus::Value;
use serde::ser::{self, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

impl ser::Error for InputError {
    fn custom<T: Display>(msg: T) -> Self {
        InputError(msg.to_string())
    }
}

pub fn to_rego<T: Serialize + ?Sized>(value: &T) -> Result<Value, InputError> {
    value.serialize(Serializer)
}

fn number(f: f64) -> Value {
    // As serde_json: NaN and infinities are `null`.
    if f.is_finite() {
        Value::from(f)
    } else {
        Value::Null
    }
}

fn object(entries: BTreeMap<Value, Value>) -> Value {
    Value::from(entries)
}

fn tagged(variant: &'static str, value: Value) -> Value {
    object(BTreeMap::from([(Value::from(variant), value)]))
}

struct Serializer;

impl ser::Serializer for Serializer {
    type Ok = Value;
    type Error = InputError;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Map;
    type SerializeStruct = Map;
    type SerializeStructVariant = Map;

    fn serialize_bool(self, v: bool) -> Result<Value, InputError> {
        Ok(Value::from(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, InputError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, InputError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, InputError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, InputError> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, InputError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, InputError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, InputError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, InputError> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, InputError> {
        Ok(number(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, InputError> {
        Ok(number(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, InputError> {
        Ok(Value::from(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, InputError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, InputError> {
        Ok(Value::from(
            v.iter()
                .map(|b| Value::from(u64::from(*b)))
                .collect::<Vec<_>>(),
        ))
    }
    fn serialize_none(self) -> Result<Value, InputError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, InputError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, InputError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, InputError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, InputError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Value, InputError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, InputError> {
        Ok(tagged(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, InputError> {
        Ok(Seq {
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, InputError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, InputError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq, InputError> {
        Ok(Seq {
            items: Vec::with_capacity(len),
            variant: Some(variant),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Map, InputError> {
        Ok(Map::default())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Map, InputError> {
        Ok(Map::default())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Map, InputError> {
        Ok(Map {
            variant: Some(variant),
            ..Map::default()
        })
    }
}

struct Seq {
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl Seq {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), InputError> {
        self.items.push(value.serialize(Serializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        let array = Value::from(self.items);
        match self.variant {
            Some(variant) => tagged(variant, array),
            None => array,
        }
    }
}

// serde asks for the same element-by-element sequence under four traits.
macro_rules! sequence {
    ($trait:ident, $add:ident) => {
        impl ser::$trait for Seq {
            type Ok = Value;
            type Error = InputError;
            fn $add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), InputError> {
                self.push(value)
            }
            fn end(self) -> Result<Value, InputError> {
                Ok(self.finish())
            }
        }
    };
}

sequence!(SerializeSeq, serialize_element);
sequence!(SerializeTuple, serialize_element);
sequence!(SerializeTupleStruct, serialize_field);
sequence!(SerializeTupleVariant, serialize_field);

#[derive(Default)]
struct Map {
    entries: BTreeMap<Value, Value>,
    next_key: Option<Value>,
    variant: Option<&'static str>,
}

impl Map {
    fn finish(self) -> Value {
        let map = object(self.entries);
        match self.variant {
            Some(variant) => tagged(variant, map),
            None => map,
        }
    }
}

impl ser::SerializeMap for Map {
    type Ok = Value;
    type Error = InputError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), InputError> {
        // As serde_json: object keys are strings; numbers, booleans and chars are written
        // as their text.
        let key = match key.serialize(Serializer)? {
            Value::String(s) => Value::String(s),
            v @ (Value::Number(_) | Value::Bool(_)) => Value::from(v.to_string()),
            other => {
                return Err(InputError(format!(
                    "a map key must be a string, not {other}"
                )));
            }
        };
        self.next_key = Some(key);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), InputError> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| InputError("a map value came without its key".into()))?;
        self.entries.insert(key, value.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, InputError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for Map {
    type Ok = Value;
    type Error = InputError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), InputError> {
        self.entries
            .insert(Value::from(key), value.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, InputError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Map {
    type Ok = Value;
    type Error = InputError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), InputError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Value, InputError> {
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// The reference: what the reviewer fed regorus before, through serde_json.
    fn via_json<T: Serialize>(v: &T) -> Value {
        let json = serde_json::to_value(v).unwrap();
        <Value as serde::Deserialize>::deserialize(&json).unwrap()
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: Option<bool> },
    }

    #[derive(Serialize)]
    struct Inner {
        #[serde(flatten)]
        extra: BTreeMap<String, f64>,
        name: &'static str,
    }

    #[derive(Serialize)]
    struct Everything {
        shapes: Vec<Shape>,
        by_number: BTreeMap<u32, char>,
        by_flag: BTreeMap<bool, ()>,
        inner: Inner,
        bytes: serde_bytes_like::Bytes,
        nan: f64,
        big: u64,
        negative: i64,
        json: serde_json::Value,
        tuple: (u8, &'static str),
    }

    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn shapes_values_as_serde_json_does() {
        let v = Everything {
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(-3, "x".into()),
                Shape::Struct { a: None },
                Shape::Struct { a: Some(true) },
            ],
            by_number: BTreeMap::from([(10, 'a'), (2, 'b')]),
            by_flag: BTreeMap::from([(true, ())]),
            inner: Inner {
                extra: BTreeMap::from([("w".to_string(), 0.5)]),
                name: "n",
            },
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
            nan: f64::NAN,
            big: u64::MAX,
            negative: i64::MIN,
            json: serde_json::json!({"a": [1, 2.5, null, {"b": "c"}], "t": true}),
            tuple: (1, "one"),
        };
        assert_eq!(to_rego(&v).unwrap(), via_json(&v));
    }

    #[test]
    fn a_report_is_the_same_input_either_way() {
        let report: deepalert_core::Report = serde_json::from_str(include_str!(
            "../../../examples/policies/tests/login-from-threat-listed-address.json"
        ))
        .map(|fixture: serde_json::Value| serde_json::from_value(fixture["report"].clone()))
        .unwrap()
        .unwrap();
        assert_eq!(to_rego(&report).unwrap(), via_json(&report));
    }

    #[test]
    fn a_key_that_cannot_be_text_is_refused_with_a_clear_error() {
        let v = BTreeMap::from([(vec![1u8], 1u8)]);
        let e = to_rego(&v).unwrap_err().to_string();
        assert!(e.contains("a map key must be a string"), "{e}");
    }
}
