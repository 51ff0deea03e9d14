//! A small protobuf wire-format reader/writer, just enough for SentencePiece's `ModelProto`.
//!
//! Why hand-written instead of prost: a parsed-then-serialized model must give back the
//! original bytes (tests check it on the real LLaMA model). Keeping every field as the raw
//! bytes it was read from, in file order, makes that true by construction — including
//! fields this crate does not know, non-minimal varints and negative int32s written as
//! ten-byte varints — while typed accessors decode only what the encoder needs.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    #[error("truncated protobuf at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("malformed protobuf at byte {offset}: {what}")]
    Malformed { offset: usize, what: String },
}

/// Protobuf wire types (proto2/proto3 share them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    Fixed32 = 5,
}

/// One field exactly as it appeared: number, wire type and the raw value bytes
/// (for `Len` the payload without its length prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawField {
    pub number: u32,
    pub wire: Wire,
    pub value: Vec<u8>,
}

impl RawField {
    pub fn varint(number: u32, v: u64) -> Self {
        let mut value = Vec::with_capacity(10);
        put_varint(&mut value, v);
        RawField {
            number,
            wire: Wire::Varint,
            value,
        }
    }
    pub fn bytes(number: u32, data: &[u8]) -> Self {
        RawField {
            number,
            wire: Wire::Len,
            value: data.to_vec(),
        }
    }
    pub fn fixed32(number: u32, bits: u32) -> Self {
        RawField {
            number,
            wire: Wire::Fixed32,
            value: bits.to_le_bytes().to_vec(),
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self.wire {
            Wire::Varint => read_varint(&self.value, &mut 0).ok(),
            _ => None,
        }
    }
    pub fn as_f32(&self) -> Option<f32> {
        match self.wire {
            Wire::Fixed32 => Some(f32::from_le_bytes(self.value[..4].try_into().ok()?)),
            _ => None,
        }
    }
}

/// A message as an ordered list of raw fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawMessage {
    pub fields: Vec<RawField>,
}

impl RawMessage {
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        let mut fields = Vec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let start = pos;
            let key = read_varint(buf, &mut pos)?;
            let number = (key >> 3) as u32;
            if number == 0 || key >> 3 > u32::MAX as u64 >> 3 {
                return Err(ProtoError::Malformed {
                    offset: start,
                    what: format!("invalid field number {}", key >> 3),
                });
            }
            let wire = match key & 7 {
                0 => Wire::Varint,
                1 => Wire::Fixed64,
                2 => Wire::Len,
                5 => Wire::Fixed32,
                w => {
                    return Err(ProtoError::Malformed {
                        offset: start,
                        what: format!("unsupported wire type {w}"),
                    });
                }
            };
            let value = match wire {
                Wire::Varint => {
                    let vs = pos;
                    read_varint(buf, &mut pos)?;
                    buf[vs..pos].to_vec()
                }
                Wire::Fixed64 => take(buf, &mut pos, 8, "fixed64")?.to_vec(),
                Wire::Fixed32 => take(buf, &mut pos, 4, "fixed32")?.to_vec(),
                Wire::Len => {
                    let len = read_varint(buf, &mut pos)?;
                    let len = usize::try_from(len).map_err(|_| ProtoError::Truncated {
                        offset: pos,
                        what: "length",
                    })?;
                    take(buf, &mut pos, len, "length-delimited field")?.to_vec()
                }
            };
            fields.push(RawField {
                number,
                wire,
                value,
            });
        }
        Ok(RawMessage { fields })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        for f in &self.fields {
            put_varint(out, ((f.number as u64) << 3) | f.wire as u64);
            if f.wire == Wire::Len {
                put_varint(out, f.value.len() as u64);
            }
            out.extend_from_slice(&f.value);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Last occurrence wins, as protobuf specifies for non-repeated fields.
    pub fn get(&self, number: u32) -> Option<&RawField> {
        self.fields.iter().rev().find(|f| f.number == number)
    }
    pub fn get_u64(&self, number: u32) -> Option<u64> {
        self.get(number).and_then(RawField::as_u64)
    }
    /// int32 fields: negative values are sign-extended 64-bit varints.
    pub fn get_i32(&self, number: u32) -> Option<i32> {
        self.get_u64(number).map(|v| v as i64 as i32)
    }
    pub fn get_bool(&self, number: u32) -> Option<bool> {
        self.get_u64(number).map(|v| v != 0)
    }
    pub fn get_f32(&self, number: u32) -> Option<f32> {
        self.get(number).and_then(RawField::as_f32)
    }
    pub fn get_bytes(&self, number: u32) -> Option<&[u8]> {
        self.get(number)
            .filter(|f| f.wire == Wire::Len)
            .map(|f| f.value.as_slice())
    }
    pub fn get_str(&self, number: u32) -> Option<&str> {
        self.get_bytes(number)
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Replace a non-repeated field in place (keeping its position) or append it.
    pub fn set(&mut self, field: RawField) {
        if let Some(pos) = self.fields.iter().position(|f| f.number == field.number) {
            self.fields.retain(|f| f.number != field.number);
            self.fields.insert(pos, field);
        } else {
            // Keep field-number order, as every protobuf serializer writes it.
            let pos = self
                .fields
                .iter()
                .position(|f| f.number > field.number)
                .unwrap_or(self.fields.len());
            self.fields.insert(pos, field);
        }
    }
}

fn take<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], ProtoError> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or(ProtoError::Truncated { offset: *pos, what })?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(ProtoError::Truncated {
            offset: *pos,
            what: "varint",
        })?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtoError::Malformed {
        offset: *pos,
        what: "varint longer than 10 bytes".into(),
    })
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_bytes() {
        let mut m = RawMessage::default();
        m.fields.push(RawField::bytes(1, b"abc"));
        m.fields.push(RawField::varint(3, (-1i64) as u64));
        m.fields.push(RawField::fixed32(2, 1.5f32.to_bits()));
        let b = m.to_bytes();
        let p = RawMessage::parse(&b).unwrap();
        assert_eq!(p, m);
        assert_eq!(p.to_bytes(), b);
        assert_eq!(p.get_i32(3), Some(-1));
        assert_eq!(p.get_f32(2), Some(1.5));
    }

    #[test]
    fn truncated_is_an_error() {
        let b = RawMessage {
            fields: vec![RawField::bytes(1, b"abcdef")],
        }
        .to_bytes();
        for n in 1..b.len() {
            assert!(RawMessage::parse(&b[..n]).is_err(), "prefix {n} parsed");
        }
    }

    #[test]
    fn set_replaces_in_place_or_inserts_in_order() {
        let mut m = RawMessage {
            fields: vec![RawField::varint(1, 1), RawField::varint(5, 5)],
        };
        m.set(RawField::varint(3, 3));
        m.set(RawField::varint(1, 9));
        let nums: Vec<u32> = m.fields.iter().map(|f| f.number).collect();
        assert_eq!(nums, vec![1, 3, 5]);
        assert_eq!(m.get_u64(1), Some(9));
    }
}
