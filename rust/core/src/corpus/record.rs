//! From one input line to the document bytes handed to the encoder.
//!
//! Invalid UTF-8 follows sentencepiece: its normalizer (`normalizer.cc`, `NormalizePrefix`)
//! turns each byte that does not start a valid UTF-8 sequence into U+FFFD and moves on by one
//! byte. `.txt` lines therefore go to the encoder as raw bytes (its bytes path applies that
//! rule); JSONL lines are repaired with the same per-byte rule before JSON parsing, so the text
//! field holds exactly what sentencepiece would have seen.

use super::error::CorpusError;
use super::input::Format;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// What to do with a line that holds no readable document (malformed JSON, a missing or
/// non-string field, a null Parquet value). Every reader applies it through [`OnBadLine::check`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadLine {
    /// Stop with `file:line` and the reason (the default: a corpus with broken lines usually
    /// means the wrong `--text-field` or a truncated export, which counting would hide).
    #[default]
    Fail,
    /// Skip the line and count it.
    Skip,
}

impl OnBadLine {
    pub const VALUES: [&'static str; 2] = ["fail", "skip"];

    /// `Ok` when the line may be skipped (the caller counts it), else the `file:line` error.
    pub fn check(self, path: &Path, line: u64, reason: String) -> Result<(), CorpusError> {
        match self {
            OnBadLine::Skip => Ok(()),
            OnBadLine::Fail => Err(CorpusError::BadLine {
                path: path.to_path_buf(),
                line,
                reason,
            }),
        }
    }
}

impl FromStr for OnBadLine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(OnBadLine::Fail),
            "skip" => Ok(OnBadLine::Skip),
            _ => Err(format!(
                "on_bad_line {s:?} is not one of {}",
                OnBadLine::VALUES.join(", ")
            )),
        }
    }
}

impl fmt::Display for OnBadLine {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            OnBadLine::Fail => "fail",
            OnBadLine::Skip => "skip",
        })
    }
}

/// Why a null table value (Parquet) is a bad line.
pub fn null_reason(field: &str) -> String {
    format!("\"{field}\" is null")
}

/// Bytes that sentencepiece would replace with U+FFFD (one per invalid byte).
pub fn invalid_utf8_bytes(mut s: &[u8]) -> u64 {
    let mut n = 0;
    while let Err(e) = std::str::from_utf8(s) {
        n += 1;
        s = &s[e.valid_up_to() + 1..];
    }
    n
}

/// `s` with every invalid byte replaced by U+FFFD, one replacement per byte (not per maximal
/// invalid run as `String::from_utf8_lossy` does, which would differ from sentencepiece).
pub fn repair_utf8(mut s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    loop {
        match std::str::from_utf8(s) {
            Ok(v) => {
                out.push_str(v);
                return out;
            }
            Err(e) => {
                let ok = e.valid_up_to();
                // SAFETY-free: the prefix was just validated.
                out.push_str(std::str::from_utf8(&s[..ok]).expect("validated prefix"));
                out.push('\u{FFFD}');
                s = &s[ok + 1..];
            }
        }
    }
}

/// A document's text: a string when it is valid UTF-8 (the encoder then skips validation),
/// raw bytes otherwise (the encoder applies sentencepiece's rule itself).
pub enum Body<'a> {
    Str(Cow<'a, str>),
    Raw(&'a [u8]),
}

/// One document's text, and how many of its bytes were invalid UTF-8.
pub struct DocText<'a> {
    pub body: Body<'a>,
    pub invalid_bytes: u64,
}

impl DocText<'_> {
    /// No document: empty or only whitespace (Unicode `White_Space`, as `str::trim`). Such a
    /// line carries no text to learn or count, so every reader skips it and counts it as
    /// `empty_docs`, whatever the format. Raw (invalid UTF-8) text is never blank: its invalid
    /// bytes become U+FFFD.
    pub fn is_empty(&self) -> bool {
        match &self.body {
            Body::Str(s) => s.trim().is_empty(),
            Body::Raw(b) => b.is_empty(),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self.body {
            Body::Str(s) => s.into_owned().into_bytes(),
            Body::Raw(b) => b.to_vec(),
        }
    }
}

fn valid(text: Cow<'_, str>) -> DocText<'_> {
    DocText {
        body: Body::Str(text),
        invalid_bytes: 0,
    }
}

/// Extract the document from a line of `format`. `Err` is the reason the line is bad.
pub fn document_text<'a>(
    format: Format,
    line: &'a [u8],
    field: &str,
) -> Result<DocText<'a>, String> {
    if format != Format::Jsonl {
        return Ok(match simdutf8::basic::from_utf8(line) {
            Ok(s) => valid(Cow::Borrowed(s)),
            Err(_) => DocText {
                body: Body::Raw(line),
                invalid_bytes: invalid_utf8_bytes(line),
            },
        });
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(valid(Cow::Borrowed("")));
    }
    // Nearly every line is valid UTF-8: check it in one SIMD pass, then parse it as `&str`,
    // for which serde_json does not validate each string again (its `from_slice` reader does,
    // with a scalar loop that cost more than the rest of the JSON parse on Chinese text).
    if let Ok(text) = simdutf8::basic::from_utf8(line) {
        return json_field(serde_json::Deserializer::from_str(text), field).map(valid);
    }
    let invalid_bytes = invalid_utf8_bytes(line);
    let repaired = repair_utf8(line);
    let text = json_field(serde_json::Deserializer::from_str(&repaired), field)?.into_owned();
    Ok(DocText {
        body: Body::Str(Cow::Owned(text)),
        invalid_bytes,
    })
}

/// The string value of top-level `field` in a JSON object, validating the whole line but
/// materialising nothing else (other fields are skipped with `IgnoredAny`).
fn json_field<'de, R: serde_json::de::Read<'de>>(
    mut d: serde_json::Deserializer<R>,
    field: &str,
) -> Result<Cow<'de, str>, String> {
    let found = ObjectSeed { field }
        .deserialize(&mut d)
        .map_err(|e| format!("malformed JSON ({e})"))?;
    d.end()
        .map_err(|e| format!("malformed JSON: trailing characters after the object ({e})"))?;
    match found {
        Field::Text(s) => Ok(s),
        Field::Missing => Err(format!(
            "no field \"{field}\" in the JSON object (choose the field with --text-field)"
        )),
        Field::Wrong(kind) => Err(format!("field \"{field}\" is {kind}, expected a string")),
    }
}

enum Field<'de> {
    Missing,
    Text(Cow<'de, str>),
    Wrong(&'static str),
}

struct ObjectSeed<'f> {
    field: &'f str,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Field<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Field::Missing;
        while let Some(is_field) = map.next_key_seed(KeyIs(self.field))? {
            if is_field {
                // Last occurrence wins, as in Python's json.loads.
                found = map.next_value_seed(ValueSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct KeyIs<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Field<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Wrong("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Wrong("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Wrong("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Wrong("a number"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonl(line: &[u8]) -> Result<Vec<u8>, String> {
        document_text(Format::Jsonl, line, "text").map(|d| d.into_bytes())
    }

    #[test]
    fn utf8_rules_match_sentencepiece() {
        assert_eq!(invalid_utf8_bytes("中文".as_bytes()), 0);
        // A truncated 3-byte sequence is two invalid bytes for sentencepiece (one per byte).
        assert_eq!(invalid_utf8_bytes(b"\xe4\xb8A\xff"), 3);
        assert_eq!(repair_utf8(b"\xe4\xb8A"), "\u{FFFD}\u{FFFD}A");
    }

    #[test]
    fn json_fields() {
        assert_eq!(
            jsonl(br#"{"id": 1, "text": "a\"b", "x": [1, {"y": 2}]}"#).unwrap(),
            b"a\"b"
        );
        assert_eq!(jsonl(br#"{"text": "\u4e2d"}"#).unwrap(), "中".as_bytes());
        assert_eq!(
            jsonl(b"{\"text\": \"a\xffb\"}").unwrap(),
            "a\u{FFFD}b".as_bytes()
        );
        assert!(jsonl(br#"{"txt": "a"}"#)
            .unwrap_err()
            .contains("--text-field"));
        assert!(jsonl(br#"{"text": null}"#).unwrap_err().contains("null"));
        assert!(jsonl(br#"{"text": "a""#).unwrap_err().contains("malformed"));
        assert!(jsonl(br#"{"text": "a"} x"#)
            .unwrap_err()
            .contains("trailing"));
        assert!(jsonl(br#"["a"]"#).unwrap_err().contains("malformed"));
        assert_eq!(jsonl(b"  ").unwrap(), b"");
    }

    #[test]
    fn blank_lines_hold_no_document() {
        for (format, line) in [
            (Format::Txt, &b" \t\xe3\x80\x80"[..]),
            (Format::Txt, b""),
            (Format::Jsonl, br#"{"text": " \n "}"#),
        ] {
            assert!(document_text(format, line, "text").unwrap().is_empty());
        }
        assert!(!document_text(Format::Txt, b" \xff", "text")
            .unwrap()
            .is_empty());
        assert!(!document_text(Format::Txt, b" a ", "text")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn on_bad_line_parses_and_checks() {
        assert_eq!("skip".parse(), Ok(OnBadLine::Skip));
        assert!("skp"
            .parse::<OnBadLine>()
            .unwrap_err()
            .contains("fail, skip"));
        let p = Path::new("a.jsonl");
        assert!(OnBadLine::Skip.check(p, 2, "x".into()).is_ok());
        let e = OnBadLine::Fail.check(p, 2, "x".into()).unwrap_err();
        assert!(e.to_string().starts_with("a.jsonl:2: x"));
    }
}
