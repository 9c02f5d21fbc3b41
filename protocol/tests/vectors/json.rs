//! The vectors' language-neutral rendering (spec §11): a serde serializer into JSON values,
//! like `serde_json::to_value` but with the spec's conventions: byte strings and `[u8; N]`
//! as lowercase hex strings, `v128` as a decimal string (JSON numbers lose precision past
//! 2^53 in many languages), unit enum variants as their names, absent options as `null`,
//! newtype ids as their number. Keys are the Rust field names, which are the spec's field
//! names in snake_case (`Last Event Seq` is `last_event_seq`).

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Value};

/// `value` as JSON by the rules above.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Value {
    value.serialize(Json).expect("every vector renders")
}

/// The error type (never produced for the protocol's types).
#[derive(Debug)]
pub(crate) struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A `[u8; N]` serializes as a tuple of u8: seen whole, it becomes hex.
fn bytes_if_all_u8(items: &[Value], was_u8: &[bool]) -> Option<Value> {
    if items.is_empty() || !was_u8.iter().all(|b| *b) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        items.iter().map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok())).collect();
    bytes.map(|b| hex(&b))
}

struct Json;

/// Collects a sequence or tuple, remembering which elements were `u8`s.
struct Seq {
    items: Vec<Value>,
    was_u8: Vec<bool>,
    /// A tuple (`[u8; N]` is one), as opposed to a variable-length list.
    tuple: bool,
}

impl Seq {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.was_u8.push(value.serialize(IsU8).unwrap_or(false));
        self.items.push(to_json(value));
        Ok(())
    }

    fn finish(self) -> Value {
        if self.tuple {
            if let Some(bytes) = bytes_if_all_u8(&self.items, &self.was_u8) {
                return bytes;
            }
        }
        Value::Array(self.items)
    }
}

/// An object being built, and (for a map) the key whose value comes next.
struct Struct(Map<String, Value>, Option<String>);

impl ser::Serializer for Json {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Struct;
    type SerializeStruct = Struct;
    type SerializeStructVariant = Struct;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Ok(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(serde_json::Number::from_f64(f64::from(v)).map_or(Value::Null, Value::Number))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(hex(v))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        Ok(to_json(value))
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Error> {
        Ok(Value::Object(Map::new()))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        Ok(to_json(value))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        Ok(Value::Object(Map::from_iter([(variant.to_owned(), to_json(value))])))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        let len = len.unwrap_or(0);
        Ok(Seq { items: Vec::with_capacity(len), was_u8: Vec::with_capacity(len), tuple: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        Ok(Seq { items: Vec::with_capacity(len), was_u8: Vec::with_capacity(len), tuple: true })
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Seq, Error> {
        self.serialize_tuple(len)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Struct, Error> {
        Ok(Struct(Map::new(), None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Struct, Error> {
        Ok(Struct(Map::new(), None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Struct, Error> {
        Ok(Struct(Map::new(), None))
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq {
            type Ok = Value;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.push(value)
            }
            fn end(self) -> Result<Value, Error> {
                Ok(self.finish())
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Struct {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let key = match to_json(key) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.1 = Some(key);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.1.take().ok_or_else(|| Error("a map value before its key".into()))?;
        self.0.insert(key, to_json(value));
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.0))
    }
}

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Struct {
            type Ok = Value;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.0.insert(key.to_owned(), to_json(value));
                Ok(())
            }
            fn end(self) -> Result<Value, Error> {
                Ok(Value::Object(self.0))
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

/// Answers whether a value is a `u8` (to tell `[u8; N]` from other tuples).
struct IsU8;

impl ser::Serializer for IsU8 {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = Impossible<bool, Error>;
    type SerializeTuple = Impossible<bool, Error>;
    type SerializeTupleStruct = Impossible<bool, Error>;
    type SerializeTupleVariant = Impossible<bool, Error>;
    type SerializeMap = Impossible<bool, Error>;
    type SerializeStruct = Impossible<bool, Error>;
    type SerializeStructVariant = Impossible<bool, Error>;

    fn serialize_u8(self, _: u8) -> Result<bool, Error> {
        Ok(true)
    }
    fn serialize_bool(self, _: bool) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_i8(self, _: i8) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_i16(self, _: i16) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_i32(self, _: i32) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_i64(self, _: i64) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_u16(self, _: u16) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_u32(self, _: u32) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_u64(self, _: u64) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_f32(self, _: f32) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_f64(self, _: f64) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_char(self, _: char) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_str(self, _: &str) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_none(self) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_unit(self) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Error("not a u8".into()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error("not a u8".into()))
    }
}
