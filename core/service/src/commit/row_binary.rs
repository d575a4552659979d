//! ClickHouse's `RowBinary` input format, written straight from the row
//! structs of [`super::rows`] (serde) into one reused buffer: the body of a
//! row INSERT, without an intermediate row vector or an allocation per row.
//!
//! The format, as the server reads it (every version Tally runs on): rows
//! back to back, each its columns in the INSERT's column order; integers
//! little endian, `Bool`/`UInt8` one byte, `String` a LEB128 length then the
//! bytes, `Array(T)` a LEB128 length then the elements. A row struct's field
//! order is its column order, and its field names are the INSERT's column
//! list ([`encode`] records them from the first row), so a column is one
//! field. Only the types the rows use are supported; any other is an error
//! (a row struct the tests would refuse).

use bytes::{BufMut, BytesMut};
use serde::ser::{self, Impossible, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("RowBinary: {0} is not a column type Tally writes")]
    Unsupported(&'static str),
    #[error("RowBinary: {0}")]
    Custom(String),
}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(msg.to_string())
    }
}

/// Appends `row` to `out`; when `columns` is given (the first row of an
/// INSERT), records the row's column names in it.
pub fn encode<R: Serialize>(out: &mut BytesMut, columns: Option<&mut Vec<&'static str>>, row: &R) -> Result<(), EncodeError> {
    row.serialize(&mut Writer { out, columns })
}

/// Appends a `String` value: its LEB128 length, then its bytes.
pub fn put_str(out: &mut BytesMut, v: &str) {
    put_len(out, v.len());
    out.put_slice(v.as_bytes());
}

fn put_len(out: &mut BytesMut, n: usize) {
    let mut n = n as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

struct Writer<'b> {
    out: &'b mut BytesMut,
    /// Set while the top-level row struct is written and names are wanted.
    columns: Option<&'b mut Vec<&'static str>>,
}

impl Writer<'_> {
    fn len(&mut self, n: usize) {
        put_len(self.out, n);
    }

    /// A writer for a value inside the row: it records no names.
    fn inner(&mut self) -> Writer<'_> {
        Writer { out: self.out, columns: None }
    }
}

macro_rules! unsupported {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, EncodeError> {
            Err(EncodeError::Unsupported(stringify!($method)))
        })*
    };
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Impossible<(), EncodeError>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Impossible<(), EncodeError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.put_u8(v as u8);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.put_u8(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.out.put_u16_le(v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.out.put_u32_le(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.out.put_u64_le(v);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.out.put_i8(v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.out.put_i16_le(v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.out.put_i32_le(v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        self.out.put_i64_le(v);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        put_str(self.out, v);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut self.inner())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        // An array's length comes first: only sequences that know it.
        self.len(len.ok_or(EncodeError::Unsupported("a sequence of unknown length"))?);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }

    unsupported! {
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("Option"))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("an enum"))
    }
}

impl ser::SerializeSeq for &mut Writer<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut self.inner())
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Writer<'_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, name: &'static str, value: &T) -> Result<(), EncodeError> {
        if let Some(columns) = self.columns.as_deref_mut() {
            columns.push(name);
        }
        value.serialize(&mut self.inner())
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Row<'a> {
        name: &'a str,
        n: u64,
        small: u16,
        flag: bool,
        list: &'a [u32],
    }

    #[test]
    fn writes_rowbinary_and_names_the_columns() {
        let mut out = BytesMut::new();
        let mut columns = Vec::new();
        let long = "x".repeat(200);
        encode(&mut out, Some(&mut columns), &Row { name: "ab", n: 1, small: 0x0102, flag: true, list: &[7, 8] }).unwrap();
        encode(&mut out, None, &Row { name: &long, n: u64::MAX, small: 0, flag: false, list: &[] }).unwrap();
        assert_eq!(columns, ["name", "n", "small", "flag", "list"]);
        let mut want = vec![2, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 2, 7, 0, 0, 0, 8, 0, 0, 0];
        // 200 is 0xc8: LEB128 0xc8 0x01.
        want.extend([0xc8, 0x01]);
        want.extend(long.as_bytes());
        want.extend([0xff; 8]);
        want.extend([0, 0, 0, 0]);
        assert_eq!(&out[..], &want[..]);
    }

    #[test]
    fn refuses_types_it_does_not_write() {
        let mut out = BytesMut::new();
        assert!(matches!(encode(&mut out, None, &Some(1.5f64)), Err(EncodeError::Unsupported(_))));
    }
}
