//! Encoder robustness and BPE rules on hand-made models: arbitrary bytes and arbitrary model
//! files never panic; ties go to the leftmost pair; UNUSED pieces are resegmented;
//! user-defined symbols are atomic. (Parity with sentencepiece itself is tested from Python,
//! tests/test_encoder_*.py, where the oracle is installed.)

mod common;

use proptest::prelude::*;
use zhllama_core::model::{byte_piece, ModelProto, Piece, PieceType};
use zhllama_core::proto::{RawField, RawMessage};
use zhllama_core::Tokenizer;

/// A BPE model from `(piece, score, type)`, with `<unk>`, `<s>`, `</s>` first and, when
/// `bytes`, the 256 byte pieces.
fn bpe(pieces: &[(&str, f32, PieceType)], bytes: bool) -> Tokenizer {
    Tokenizer::from_model(&bpe_model(pieces, bytes)).unwrap()
}

fn bpe_model(pieces: &[(&str, f32, PieceType)], bytes: bool) -> ModelProto {
    let mut ps = vec![
        Piece::new("<unk>", 0.0, Some(PieceType::Unknown)),
        Piece::new("<s>", 0.0, Some(PieceType::Control)),
        Piece::new("</s>", 0.0, Some(PieceType::Control)),
    ];
    if bytes {
        ps.extend((0..=255u8).map(|b| Piece::new(byte_piece(b), 0.0, Some(PieceType::Byte))));
    }
    ps.extend(pieces.iter().map(|&(s, sc, k)| Piece::new(s, sc, Some(k))));
    let mut trainer = RawMessage::default();
    trainer.set(RawField::varint(3, 2)); // model_type = BPE
    if bytes {
        trainer.set(RawField::varint(35, 1));
    }
    let mut m = ModelProto::from_bytes(&{
        let mut first = ModelProto::parse_unchecked(&[]).unwrap();
        first.pieces = ps;
        first.set_sub(2, &trainer);
        first.to_bytes()
    })
    .unwrap();
    // Identity normalizer, dummy prefix on (sentencepiece's defaults otherwise).
    let mut norm = RawMessage::default();
    norm.set(RawField::bytes(1, b"identity"));
    m.set_sub(3, &norm);
    m
}

fn pieces(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&i| t.id_to_piece(i).unwrap().to_string())
        .collect()
}

use PieceType::{Normal, Unused, UserDefined};

#[test]
fn ties_merge_the_leftmost_pair() {
    let t = bpe(
        &[
            ("\u{2581}", 0.0, Normal),
            ("a", 0.0, Normal),
            ("aa", 0.0, Normal),
            ("\u{2581}a", -1.0, Normal),
        ],
        false,
    );
    // "▁aaa": pairs aa (0) at 1 and 2, ▁a (-1): the leftmost aa wins, then nothing joins ▁+aa.
    assert_eq!(
        pieces(&t, &t.encode("aaa", false, false)),
        ["\u{2581}", "aa", "a"]
    );
}

#[test]
fn higher_score_beats_position() {
    let t = bpe(
        &[
            ("\u{2581}", 0.0, Normal),
            ("a", 0.0, Normal),
            ("b", 0.0, Normal),
            ("ab", -1.0, Normal),
            ("\u{2581}a", 0.5, Normal),
        ],
        false,
    );
    assert_eq!(
        pieces(&t, &t.encode("ab", false, false)),
        ["\u{2581}a", "b"]
    );
}

#[test]
fn unused_pieces_are_split_back() {
    let t = bpe(
        &[
            ("\u{2581}", 0.0, Normal),
            ("a", 0.0, Normal),
            ("b", 0.0, Normal),
            ("ab", 1.0, Unused),
            ("\u{2581}ab", 0.5, Normal),
        ],
        false,
    );
    // ab (unused) merges first, then ▁+ab: the result is a normal piece, kept.
    assert_eq!(pieces(&t, &t.encode("ab", false, false)), ["\u{2581}ab"]);
    // "ab" alone after a space-less start: "▁" "ab"→ merges to ▁ab again; with "bab" the
    // second ab cannot join and is resegmented into a + b.
    assert_eq!(
        pieces(&t, &t.encode("bab", false, false)),
        ["\u{2581}", "b", "a", "b"]
    );
}

#[test]
fn user_defined_symbols_are_atomic_and_unknowns_fall_back_to_bytes() {
    let t = bpe(
        &[
            ("\u{2581}", 0.0, Normal),
            ("a", 0.0, Normal),
            ("<x>", 0.0, UserDefined),
            ("\u{2581}a", 1.0, Normal),
        ],
        true,
    );
    assert_eq!(
        pieces(&t, &t.encode("a<x>a", false, false)),
        ["\u{2581}a", "<x>", "a"]
    );
    assert_eq!(
        pieces(&t, &t.encode("é", false, false)),
        ["\u{2581}", "<0xC3>", "<0xA9>"]
    );
    assert_eq!(t.decode(&t.encode("a<x>é", true, true)), "a<x>é");
}

#[test]
fn unknown_runs_fuse_without_byte_fallback() {
    let t = bpe(&[("\u{2581}", 0.0, Normal), ("a", 0.0, Normal)], false);
    let unk = t.model_unk_id().unwrap();
    let ids = t.encode("ééa", false, false);
    assert_eq!(ids.iter().filter(|&&i| i == unk).count(), 1);
}

#[test]
fn byte_fallback_model_may_lack_an_unknown_piece() {
    // sentencepiece loads such a model (model_interface.cc checks for unk only without byte
    // fallback); unknown text becomes bytes and no id outside the vocabulary is ever emitted.
    let mut m = bpe_model(&[("\u{2581}", 0.0, Normal), ("a", 0.0, Normal)], true);
    m.pieces[0].kind = Some(Normal);
    let t = Tokenizer::from_model(&m).unwrap();
    assert_eq!(t.model_unk_id(), None);
    assert_eq!(t.unk_id(), None);
    let ids = t.encode("a é", false, false);
    assert_eq!(
        pieces(&t, &ids),
        ["\u{2581}", "a", "\u{2581}", "<0xC3>", "<0xA9>"]
    );
    assert_eq!(t.decode(&ids), "a é");
    let mut m = bpe_model(&[("a", 0.0, Normal)], false);
    m.pieces[0].kind = Some(Normal);
    let err = Tokenizer::from_model(&m).err().unwrap().to_string();
    assert!(
        err.contains("no UNKNOWN piece and byte_fallback is off"),
        "{err}"
    );
}

fn llama() -> Option<Tokenizer> {
    static LLAMA: std::sync::OnceLock<Option<Tokenizer>> = std::sync::OnceLock::new();
    LLAMA
        .get_or_init(|| {
            common::fixture("llama_tokenizer.model").map(|p| Tokenizer::from_file(p).unwrap())
        })
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(t) = llama() {
            let mut out = Vec::new();
            t.encode_bytes_into(&data, true, true, &mut out);
            prop_assert!(out.iter().all(|&i| (i as usize) < t.vocab_size()));
            let _ = t.decode(&out);
        }
    }

    #[test]
    fn arbitrary_strings_round_trip(s in "[ a-z\u{4e00}-\u{4e20}😀\t]{0,60}") {
        if let Some(t) = llama() {
            // LLaMA keeps every character (byte fallback) and removes only the dummy prefix
            // (U+2581 is left out: it decodes to a space, as in sentencepiece).
            prop_assert_eq!(t.decode(&t.encode(&s, false, false)), s);
        }
    }

    #[test]
    fn arbitrary_model_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = Tokenizer::from_bytes(&data) {
            let _ = t.encode("hello 世界", true, true);
        }
    }
}
