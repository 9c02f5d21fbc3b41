//! Length-bounded wire values: [`Text`], [`List`] and [`Blob`] carry their limit in their type,
//! and decoding checks it before allocating (spec §5.2). A frame body is already bounded by
//! `max_frame_size`; these bounds keep one field from using the whole frame, and stop a list
//! length from making serde pre-allocate for elements that are not there.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// The value was longer than its type allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("length {len} exceeds the limit of {max}")]
pub struct TooLong {
    /// The length offered (bytes for text and blobs, elements for lists).
    pub len: usize,
    /// The limit.
    pub max: usize,
}

fn check(len: usize, max: usize) -> Result<(), TooLong> {
    if len > max { Err(TooLong { len, max }) } else { Ok(()) }
}

/// UTF-8 text of at most `MAX` bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    /// The limit in bytes.
    pub const MAX: usize = MAX;

    /// Wraps `text` when it fits.
    pub fn new(text: impl Into<String>) -> Result<Self, TooLong> {
        let text = text.into();
        check(text.len(), MAX)?;
        Ok(Self(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<const MAX: usize> Deref for Text<MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> TryFrom<&str> for Text<MAX> {
    type Error = TooLong;
    fn try_from(text: &str) -> Result<Self, TooLong> {
        Self::new(text)
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = TooLong;
    fn try_from(text: String) -> Result<Self, TooLong> {
        Self::new(text)
    }
}

impl<const MAX: usize> Serialize for Text<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for TextVisitor<MAX> {
            type Value = Text<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {MAX} bytes")
            }
            // postcard lends the bytes from the input, so the length is checked before the
            // one allocation that copies them.
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                check(text.len(), MAX).map_err(|_| E::invalid_length(text.len(), &self))?;
                Ok(Text(text.to_owned()))
            }
        }
        deserializer.deserialize_str(TextVisitor::<MAX>)
    }
}

/// A list of at most `MAX` elements.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct List<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> List<T, MAX> {
    /// The limit in elements.
    pub const MAX: usize = MAX;

    /// Wraps `items` when they fit.
    pub fn new(items: Vec<T>) -> Result<Self, TooLong> {
        check(items.len(), MAX)?;
        Ok(Self(items))
    }

    /// An empty list.
    pub const fn empty() -> Self {
        Self(Vec::new())
    }

    /// Unwraps the `Vec`.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for List<T, MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T, const MAX: usize> Deref for List<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for List<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<T, const MAX: usize> TryFrom<Vec<T>> for List<T, MAX> {
    type Error = TooLong;
    fn try_from(items: Vec<T>) -> Result<Self, TooLong> {
        Self::new(items)
    }
}

impl<T: Serialize, const MAX: usize> Serialize for List<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in &self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for List<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for ListVisitor<T, MAX> {
            type Value = List<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {MAX} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let declared = seq.size_hint().unwrap_or(0);
                if declared > MAX {
                    return Err(de::Error::invalid_length(declared, &self));
                }
                // Capacity is bounded by MAX, never by the peer's declared count alone.
                let mut items = Vec::with_capacity(declared.min(MAX));
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::invalid_length(MAX + 1, &self));
                    }
                    items.push(item);
                }
                Ok(List(items))
            }
        }
        deserializer.deserialize_seq(ListVisitor::<T, MAX>(PhantomData))
    }
}

/// Opaque bytes (tokens, keys) of at most `MAX` bytes; on the wire a postcard byte string.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Blob<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> Blob<MAX> {
    /// The limit in bytes.
    pub const MAX: usize = MAX;

    /// Wraps `bytes` when they fit.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, TooLong> {
        let bytes = bytes.into();
        check(bytes.len(), MAX)?;
        Ok(Self(bytes))
    }

    /// Unwraps the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl<const MAX: usize> Deref for Blob<MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for Blob<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

impl<const MAX: usize> Serialize for Blob<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for Blob<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for BlobVisitor<MAX> {
            type Value = Blob<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX} bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                check(bytes.len(), MAX).map_err(|_| E::invalid_length(bytes.len(), &self))?;
                Ok(Blob(bytes.to_vec()))
            }
        }
        deserializer.deserialize_bytes(BlobVisitor::<MAX>)
    }
}

#[cfg(feature = "arbitrary")]
mod arbitrary_impls {
    use arbitrary::{Arbitrary, Result, Unstructured};

    use super::{Blob, List, Text};

    impl<'a, const MAX: usize> Arbitrary<'a> for Text<MAX> {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            let mut text = String::arbitrary(u)?;
            let mut end = text.len().min(MAX);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            Ok(Self(text))
        }
    }

    impl<'a, T: Arbitrary<'a>, const MAX: usize> Arbitrary<'a> for List<T, MAX> {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            let len = u.int_in_range(0..=MAX.min(16))?;
            (0..len).map(|_| T::arbitrary(u)).collect::<Result<_>>().map(Self)
        }
    }

    impl<'a, const MAX: usize> Arbitrary<'a> for Blob<MAX> {
        fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
            let len = u.int_in_range(0..=MAX.min(256))?;
            Ok(Self(u.bytes(len)?.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_enforce_the_limit() {
        assert!(Text::<3>::new("abc").is_ok());
        assert_eq!(Text::<3>::new("abcd"), Err(TooLong { len: 4, max: 3 }));
        assert!(List::<u8, 2>::new(vec![1, 2, 3]).is_err());
        assert!(Blob::<1>::new(vec![1, 2]).is_err());
    }

    #[test]
    fn decoding_rejects_values_over_the_limit() {
        let long = postcard::to_stdvec("abcd").unwrap();
        assert!(postcard::from_bytes::<Text<3>>(&long).is_err());
        assert_eq!(postcard::from_bytes::<Text<4>>(&long).unwrap().as_str(), "abcd");

        let list = postcard::to_stdvec(&vec![1u8, 2, 3]).unwrap();
        assert!(postcard::from_bytes::<List<u8, 2>>(&list).is_err());
        let bytes = postcard::to_stdvec(&Blob::<8>::new(vec![9, 9]).unwrap()).unwrap();
        assert_eq!(bytes, [2, 9, 9]);
        assert!(postcard::from_bytes::<Blob<1>>(&bytes).is_err());
    }

    #[test]
    fn a_lying_list_length_fails_before_any_element_is_read() {
        // Declares 2^32 elements followed by a single byte of input.
        let bytes = [0x80, 0x80, 0x80, 0x80, 0x10, 1];
        assert!(postcard::from_bytes::<List<u64, 100>>(&bytes).is_err());
    }
}
