//! Byte-exact round trips and typed fields on the real fixtures.

mod common;

use zhllama_core::model::{ModelProto, ModelType, PieceType};

#[test]
fn fixtures_roundtrip_byte_exact() {
    for name in ["llama_tokenizer.model", "chinese_sp.model"] {
        let Some(path) = common::fixture(name) else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let model = ModelProto::from_bytes(&bytes).unwrap();
        assert_eq!(model.to_bytes(), bytes, "{name} did not round-trip");
    }
}

#[test]
fn llama_fields() {
    let Some(path) = common::fixture("llama_tokenizer.model") else {
        return;
    };
    let m = ModelProto::from_file(path).unwrap();
    assert_eq!(m.pieces.len(), 32000);
    let t = m.trainer_spec();
    assert_eq!(t.model_type, ModelType::Bpe);
    assert!(t.byte_fallback);
    assert_eq!(m.pieces[0].kind(), PieceType::Unknown);
    let n = m.normalizer_spec();
    assert!(n.add_dummy_prefix);
    assert!(!n.remove_extra_whitespaces);
}

#[test]
fn chinese_fields() {
    let Some(path) = common::fixture("chinese_sp.model") else {
        return;
    };
    let m = ModelProto::from_file(path).unwrap();
    assert_eq!(m.pieces.len(), 20000);
    assert_eq!(m.trainer_spec().model_type, ModelType::Unigram);
    assert_eq!(m.normalizer_spec().name, "nmt_nfkc");
    assert!(!m.normalizer_spec().precompiled_charsmap.is_empty());
}
