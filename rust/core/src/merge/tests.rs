use super::*;
use crate::model::ModelProto;
use crate::proto::{RawField, RawMessage};

fn bpe_model(pieces: &[(&str, f32)]) -> ModelProto {
    let mut all = vec![
        Piece::new("<unk>", 0.0, Some(PieceType::Unknown)),
        Piece::new("<s>", 0.0, Some(PieceType::Control)),
        Piece::new("</s>", 0.0, Some(PieceType::Control)),
    ];
    all.extend(pieces.iter().map(|(p, s)| Piece::new(*p, *s, None)));
    let trainer = RawMessage {
        fields: vec![RawField::varint(3, 2)],
    };
    let mut b = Vec::new();
    RawMessage {
        fields: vec![RawField::bytes(2, &trainer.to_bytes())],
    }
    .write(&mut b);
    let mut m = ModelProto::parse_unchecked(&b).unwrap();
    m.pieces = all;
    ModelProto::from_bytes(&m.to_bytes()).unwrap()
}

#[test]
fn reference_appends_missing_pieces_with_score_zero() {
    let base = bpe_model(&[("a", -1.0), ("b", -2.0)]);
    let add = bpe_model(&[("b", -1.0), ("中", -2.0), ("中国人民", -3.0)]);
    let (out, r) = merge(&base, &add, MergeMode::Reference).unwrap();
    let tail: Vec<_> = out.pieces[5..]
        .iter()
        .map(|p| (p.piece.as_str(), p.score, p.kind))
        .collect();
    assert_eq!(
        tail,
        vec![("中", Some(0.0), None), ("中国人民", Some(0.0), None)]
    );
    assert_eq!(r.duplicates_skipped, 4); // <unk> <s> </s> b
    assert_eq!(r.unreachable, 1); // 中国人民: no split into two pieces or characters
}

#[test]
fn default_keeps_chinese_only_and_makes_pieces_reachable() {
    let base = bpe_model(&[("a", -1.0), ("b", -2.0), ("国", -3.0), ("家", -4.0)]);
    let add = bpe_model(&[("中", -2.0), ("ab", -2.0), ("中国家", -3.0), ("1998", -4.0)]);
    let (out, r) = merge(&base, &add, MergeMode::Default).unwrap();
    let names: Vec<&str> = out.pieces[7..].iter().map(|p| p.piece.as_str()).collect();
    assert!(!names.contains(&"ab"), "{names:?}");
    assert!(names.contains(&"中国家"));
    assert!(names.contains(&"１９９８"), "{names:?} {r:?}");
    assert!(!names.contains(&"1998"));
    assert_eq!(r.unreachable, 0);
    assert!(r.intermediates_added >= 1);
    assert!(unreachable_pieces(&out).iter().all(|&i| i < 7));
    let vocab = bpe_sim::merge_scores(&out);
    for p in &names {
        assert!(bpe_produces(p, &vocab), "{p} not produced");
    }
}

#[test]
fn non_bpe_base_is_refused() {
    let mut base = bpe_model(&[("a", -1.0)]);
    base.set_sub(
        2,
        &RawMessage {
            fields: vec![RawField::varint(3, 1)],
        },
    );
    let add = bpe_model(&[("中", -2.0)]);
    assert!(matches!(
        merge(&base, &add, MergeMode::Default),
        Err(MergeError::BaseNotBpe(_))
    ));
}
