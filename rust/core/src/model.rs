//! SentencePiece `ModelProto`: typed view over the raw wire fields, load-time validation
//! mirroring sentencepiece's `ModelInterface::InitializePieces`, and byte-exact writing.

use crate::proto::{ProtoError, RawField, RawMessage, Wire};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{path}: cannot read SentencePiece model: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a SentencePiece model ({0}); expected a `.model` file written by sentencepiece")]
    Proto(#[from] ProtoError),
    #[error("invalid SentencePiece model: {0}")]
    Invalid(String),
    /// Any other error of a model read from a file, with the file named.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<ModelError>,
    },
}

/// `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PieceType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// sentencepiece refuses a model with a piece this many bytes long or longer
/// (model_interface.cc, `kMaxPieceSize`).
pub const MAX_PIECE_BYTES: usize = 8000;

impl PieceType {
    /// CONTROL, UNKNOWN and BYTE: the pieces sentencepiece's `PieceToId` looks up first (its
    /// reserved-id map), ahead of the ordinary ones.
    pub fn is_reserved(self) -> bool {
        matches!(
            self,
            PieceType::Unknown | PieceType::Control | PieceType::Byte
        )
    }

    pub const ALL: [PieceType; 6] = [
        PieceType::Normal,
        PieceType::Unknown,
        PieceType::Control,
        PieceType::UserDefined,
        PieceType::Unused,
        PieceType::Byte,
    ];

    /// The enum value's name in sentencepiece_model.proto.
    pub fn name(self) -> &'static str {
        match self {
            PieceType::Normal => "NORMAL",
            PieceType::Unknown => "UNKNOWN",
            PieceType::Control => "CONTROL",
            PieceType::UserDefined => "USER_DEFINED",
            PieceType::Unused => "UNUSED",
            PieceType::Byte => "BYTE",
        }
    }

    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// `TrainerSpec.ModelType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    Unigram = 1,
    Bpe = 2,
    Word = 3,
    Char = 4,
}

/// One vocabulary entry. `score` and `kind` keep protobuf presence (`None` = not written),
/// because the reference merge writes `score` but leaves `type` unset, and the output must
/// match its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: Option<f32>,
    pub kind: Option<PieceType>,
    /// Fields of the SentencePiece message this crate does not know, kept for round-trips.
    pub extra: Vec<RawField>,
}

impl Piece {
    pub fn new(piece: impl Into<String>, score: f32, kind: Option<PieceType>) -> Self {
        Piece {
            piece: piece.into(),
            score: Some(score),
            kind,
            extra: Vec::new(),
        }
    }
    pub fn score(&self) -> f32 {
        self.score.unwrap_or(0.0)
    }
    pub fn kind(&self) -> PieceType {
        self.kind.unwrap_or(PieceType::Normal)
    }

    fn parse(buf: &[u8], index: usize) -> Result<Self, ModelError> {
        let msg = RawMessage::parse(buf)?;
        let mut p = Piece {
            piece: String::new(),
            score: None,
            kind: None,
            extra: Vec::new(),
        };
        for f in msg.fields {
            match (f.number, f.wire) {
                (1, Wire::Len) => {
                    p.piece = String::from_utf8(f.value).map_err(|_| {
                        ModelError::Invalid(format!("piece {index} is not valid UTF-8"))
                    })?
                }
                (2, Wire::Fixed32) => p.score = f.as_f32(),
                (3, Wire::Varint) => {
                    let v = f.as_u64().unwrap_or(0) as i64 as i32;
                    p.kind = Some(PieceType::from_i32(v).ok_or_else(|| {
                        ModelError::Invalid(format!(
                            "piece {index} ({:?}) has unknown type {v}",
                            p.piece
                        ))
                    })?);
                }
                _ => p.extra.push(f),
            }
        }
        Ok(p)
    }

    fn to_message(&self) -> RawMessage {
        let mut fields = vec![RawField::bytes(1, self.piece.as_bytes())];
        if let Some(s) = self.score {
            fields.push(RawField::fixed32(2, s.to_bits()));
        }
        if let Some(k) = self.kind {
            fields.push(RawField::varint(3, k as u64));
        }
        fields.extend(self.extra.iter().cloned());
        RawMessage { fields }
    }
}

/// `NormalizerSpec`, decoded with sentencepiece's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizerSpec {
    pub name: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    pub normalization_rule_tsv: String,
}

impl NormalizerSpec {
    pub fn from_raw(m: &RawMessage) -> Self {
        NormalizerSpec {
            name: m.get_str(1).unwrap_or_default().to_string(),
            precompiled_charsmap: m.get_bytes(2).unwrap_or_default().to_vec(),
            add_dummy_prefix: m.get_bool(3).unwrap_or(true),
            remove_extra_whitespaces: m.get_bool(4).unwrap_or(true),
            escape_whitespaces: m.get_bool(5).unwrap_or(true),
            normalization_rule_tsv: m.get_str(6).unwrap_or_default().to_string(),
        }
    }
}

/// The `TrainerSpec` fields that change encoding or special ids, with proto defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    pub model_type: ModelType,
    pub vocab_size: i32,
    pub treat_whitespace_as_suffix: bool,
    pub allow_whitespace_only_pieces: bool,
    pub split_digits: bool,
    pub byte_fallback: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
    pub unk_piece: String,
    pub bos_piece: String,
    pub eos_piece: String,
    pub pad_piece: String,
    pub unk_surface: String,
}

impl TrainerSpec {
    pub fn from_raw(m: &RawMessage) -> Self {
        let s = |n: u32, d: &str| m.get_str(n).unwrap_or(d).to_string();
        TrainerSpec {
            model_type: match m.get_i32(3).unwrap_or(1) {
                2 => ModelType::Bpe,
                3 => ModelType::Word,
                4 => ModelType::Char,
                _ => ModelType::Unigram,
            },
            vocab_size: m.get_i32(4).unwrap_or(8000),
            treat_whitespace_as_suffix: m.get_bool(24).unwrap_or(false),
            allow_whitespace_only_pieces: m.get_bool(26).unwrap_or(false),
            split_digits: m.get_bool(25).unwrap_or(false),
            byte_fallback: m.get_bool(35).unwrap_or(false),
            unk_id: m.get_i32(40).unwrap_or(0),
            bos_id: m.get_i32(41).unwrap_or(1),
            eos_id: m.get_i32(42).unwrap_or(2),
            pad_id: m.get_i32(43).unwrap_or(-1),
            unk_piece: s(45, "<unk>"),
            bos_piece: s(46, "<s>"),
            eos_piece: s(47, "</s>"),
            pad_piece: s(48, "<pad>"),
            unk_surface: s(44, " \u{2047} "),
        }
    }
}

/// A SentencePiece model. Pieces are typed; every other top-level field stays raw so that
/// writing an unmodified model reproduces the input bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProto {
    pub pieces: Vec<Piece>,
    /// Top-level fields other than `pieces` (trainer_spec=2, normalizer_spec=3,
    /// self_test_data=4, denormalizer_spec=5, unknown ones), in file order.
    pub rest: RawMessage,
    /// Index in the original field order where the pieces stood (python and C++ both write
    /// them first; kept for files that do not).
    pieces_at: usize,
}

impl ModelProto {
    /// Parse and validate.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, ModelError> {
        let m = Self::parse_unchecked(buf)?;
        m.validate()?;
        Ok(m)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let buf = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_bytes(&buf).map_err(|e| ModelError::InFile {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    }

    /// Parse without validation (for tools that repair or inspect broken models).
    pub fn parse_unchecked(buf: &[u8]) -> Result<Self, ModelError> {
        let msg = RawMessage::parse(buf)?;
        let mut pieces = Vec::new();
        let mut rest = RawMessage::default();
        let mut pieces_at = None;
        for f in msg.fields {
            if f.number == 1 && f.wire == Wire::Len {
                pieces_at.get_or_insert(rest.fields.len());
                pieces.push(Piece::parse(&f.value, pieces.len())?);
            } else {
                match (f.number, f.wire) {
                    (2..=5, w) if w != Wire::Len => {
                        return Err(ModelError::Invalid(format!(
                            "field {} has the wrong wire type",
                            f.number
                        )))
                    }
                    (2..=5, _) => {
                        RawMessage::parse(&f.value)?;
                    }
                    _ => {}
                }
                rest.fields.push(f);
            }
        }
        Ok(ModelProto {
            pieces,
            rest,
            pieces_at: pieces_at.unwrap_or(0),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let (before, after) = self
            .rest
            .fields
            .split_at(self.pieces_at.min(self.rest.fields.len()));
        RawMessage {
            fields: before.to_vec(),
        }
        .write(&mut out);
        for p in &self.pieces {
            RawMessage {
                fields: vec![RawField::bytes(1, &p.to_message().to_bytes())],
            }
            .write(&mut out);
        }
        RawMessage {
            fields: after.to_vec(),
        }
        .write(&mut out);
        out
    }

    fn sub(&self, n: u32) -> RawMessage {
        self.rest
            .get_bytes(n)
            .and_then(|b| RawMessage::parse(b).ok())
            .unwrap_or_default()
    }
    pub fn trainer_spec(&self) -> TrainerSpec {
        TrainerSpec::from_raw(&self.sub(2))
    }
    pub fn normalizer_spec(&self) -> NormalizerSpec {
        NormalizerSpec::from_raw(&self.sub(3))
    }
    /// `None` when the model has no denormalizer.
    pub fn denormalizer_spec(&self) -> Option<NormalizerSpec> {
        self.rest
            .get(5)
            .map(|_| NormalizerSpec::from_raw(&self.sub(5)))
    }
    pub fn trainer_spec_raw(&self) -> RawMessage {
        self.sub(2)
    }
    pub fn normalizer_spec_raw(&self) -> RawMessage {
        self.sub(3)
    }
    /// Replace (or add) a top-level sub-message such as the normalizer spec.
    pub fn set_sub(&mut self, number: u32, msg: &RawMessage) {
        let had = self.rest.get(number).is_some();
        self.rest.set(RawField::bytes(number, &msg.to_bytes()));
        if !had && self.pieces_at > 0 {
            let pos = self
                .rest
                .fields
                .iter()
                .position(|f| f.number == number)
                .unwrap_or(0);
            if pos < self.pieces_at {
                self.pieces_at += 1;
            }
        }
    }

    pub fn piece_index(&self) -> HashMap<&str, usize> {
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.piece.as_str(), i))
            .collect()
    }

    /// The checks sentencepiece makes when it loads a model (model_interface.cc,
    /// `InitializePieces`, and the BPE/Unigram constructors), with the same conditions.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Invalid(m));
        if self.pieces.is_empty() {
            return bad("the model has no pieces (is this a SentencePiece .model file?)".into());
        }
        let spec = self.trainer_spec();
        // unigram_model.cc keeps CONTROL, UNKNOWN and BYTE pieces in a map of their own
        // (`use_reserved_id_map`), so a Unigram model may hold one of those and an ordinary
        // piece with the same text; bpe_model.cc has one map, so BPE may not.
        let reserved_map = spec.model_type != ModelType::Bpe;
        // Fx, not SipHash: this runs on every model load (50K pieces), and the keys are the
        // model's own pieces, not attacker-chosen.
        let mut seen: rustc_hash::FxHashMap<(bool, &str), usize> = rustc_hash::FxHashMap::default();
        seen.reserve(self.pieces.len());
        let mut unk = None;
        let mut bytes = 0usize;
        for (i, p) in self.pieces.iter().enumerate() {
            if p.piece.len() >= MAX_PIECE_BYTES {
                return bad(format!(
                    "piece {i} is {} bytes long; sentencepiece refuses pieces of {MAX_PIECE_BYTES} bytes or more",
                    p.piece.len()
                ));
            }
            if p.piece.is_empty() {
                return bad(format!(
                    "piece {i} is empty; every piece must be a non-empty string"
                ));
            }
            if p.piece.contains('\0') {
                if p.piece == "\0" && p.kind() == PieceType::Unused {
                    continue; // sentencepiece skips this placeholder piece
                }
                return bad(format!(
                    "piece {i} ({:?}) contains a NUL character",
                    p.piece
                ));
            }
            if let Some(j) = seen.insert((reserved_map && p.kind().is_reserved(), &p.piece), i) {
                return bad(format!(
                    "piece {:?} is defined twice (ids {j} and {i})",
                    p.piece
                ));
            }
            match p.kind() {
                PieceType::Unknown => {
                    if let Some(j) = unk {
                        return bad(format!("more than one UNKNOWN piece (ids {j} and {i})"));
                    }
                    unk = Some(i);
                }
                PieceType::Byte => {
                    if !spec.byte_fallback {
                        return bad(format!(
                            "piece {i} ({:?}) is a BYTE piece but trainer_spec.byte_fallback is false",
                            p.piece
                        ));
                    }
                    if parse_byte_piece(&p.piece).is_none() {
                        return bad(format!(
                            "BYTE piece {i} ({:?}) is not of the form <0xXX>",
                            p.piece
                        ));
                    }
                    bytes += 1;
                }
                _ => {}
            }
        }
        if unk.is_none() && !spec.byte_fallback {
            // With byte fallback sentencepiece loads such a model: unknown text becomes bytes.
            return bad(
                "the model has no UNKNOWN piece and byte_fallback is off (sentencepiece then requires exactly one, e.g. <unk>)"
                    .into(),
            );
        }
        if spec.byte_fallback && bytes != 256 {
            return bad(format!(
                "trainer_spec.byte_fallback is true but the model has {bytes} BYTE pieces; sentencepiece needs all 256 (<0x00>..<0xFF>)"
            ));
        }
        if !matches!(spec.model_type, ModelType::Bpe | ModelType::Unigram) {
            return bad(format!(
                "model type {:?} is not supported; zhllama encodes BPE and Unigram models",
                spec.model_type
            ));
        }
        Ok(())
    }
}

/// `<0x41>` → 0x41, as sentencepiece's `PieceToByte`.
pub fn parse_byte_piece(s: &str) -> Option<u8> {
    let hex = s.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// `0x41` → `<0x41>`, as sentencepiece's `ByteToPiece`.
pub fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelProto {
        let mut pieces = vec![
            Piece::new("<unk>", 0.0, Some(PieceType::Unknown)),
            Piece::new("<s>", 0.0, Some(PieceType::Control)),
            Piece::new("</s>", 0.0, Some(PieceType::Control)),
        ];
        pieces.push(Piece::new("\u{2581}a", -1.0, None));
        let mut trainer = RawMessage::default();
        trainer.set(RawField::varint(3, 2));
        let rest = RawMessage {
            fields: vec![RawField::bytes(2, &trainer.to_bytes())],
        };
        ModelProto {
            pieces,
            rest,
            pieces_at: 0,
        }
    }

    #[test]
    fn roundtrip_and_validate() {
        let m = tiny();
        let b = m.to_bytes();
        let p = ModelProto::from_bytes(&b).unwrap();
        assert_eq!(p.to_bytes(), b);
        assert_eq!(p.trainer_spec().model_type, ModelType::Bpe);
        assert!(p.normalizer_spec().add_dummy_prefix);
    }

    #[test]
    fn duplicate_and_missing_unk_are_rejected() {
        let mut m = tiny();
        m.pieces.push(Piece::new("\u{2581}a", 0.0, None));
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("defined twice"));
        let mut m = tiny();
        m.pieces[0].kind = None;
        assert!(m.validate().unwrap_err().to_string().contains("UNKNOWN"));
    }

    #[test]
    fn reserved_pieces_have_their_own_namespace_in_unigram_only() {
        let mut m = tiny();
        m.pieces.push(Piece::new("<s>", 0.0, None)); // ordinary text "<s>" beside CONTROL <s>
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("defined twice"), "{err}");
        let mut trainer = m.trainer_spec_raw();
        trainer.set(RawField::varint(3, 1)); // model_type = UNIGRAM
        m.set_sub(2, &trainer);
        m.validate().unwrap();
        m.pieces.push(Piece::new("<s>", 0.0, None));
        assert!(m.validate().is_err()); // two ordinary "<s>" are still one too many
    }

    #[test]
    fn pieces_of_8000_bytes_are_refused() {
        let mut m = tiny();
        m.pieces
            .push(Piece::new("a".repeat(MAX_PIECE_BYTES - 1), 0.0, None));
        m.validate().unwrap();
        m.pieces
            .push(Piece::new("b".repeat(MAX_PIECE_BYTES), 0.0, None));
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("8000 bytes or more"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for n in 0..200u32 {
            let junk: Vec<u8> = (0..n)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            let _ = ModelProto::from_bytes(&junk);
        }
        let b = tiny().to_bytes();
        for n in 0..b.len() {
            let _ = ModelProto::from_bytes(&b[..n]);
        }
        assert!(ModelProto::from_bytes(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn byte_piece_names() {
        assert_eq!(parse_byte_piece("<0x0A>"), Some(10));
        assert_eq!(byte_piece(255), "<0xFF>");
        assert_eq!(parse_byte_piece("<0xZZ>"), None);
    }
}
