//! The default merge: the reference's pieces, minus its three measured flaws.
//!
//! 1. Base behaviour kept: only pieces with a Chinese character are added (see `script.rs`),
//!    so text without one tokenizes exactly as with the base model.
//! 2. No dead rows: every added piece is checked by running BPE on its own characters; a piece
//!    that is not produced gets the missing intermediate pieces (only ones that themselves
//!    contain a Chinese character), and if it still is not produced it is left out.
//! 3. Normalizer mismatch: the added model learned on NFKC text, where `，１（` became `,1(`;
//!    the fullwidth spellings of those pieces are added too, so Chinese text as it is written
//!    reaches them instead of falling back to three byte tokens a character.
//!
//! Scores: BPE merges the highest-scoring available pair first. From a Unigram added model
//! a piece scores `chars + logp / 100` (logp: its log-probability, ≤ 0): longer pieces win
//! over shorter ones once their parts exist (the added model's long words), and among equal
//! lengths the more probable piece wins — the added model's preference. From a BPE added
//! model the pieces keep its own merge order, mapped into [1, 2). Either way every added
//! score is > 0, above every base merge (LLaMA's are ≤ −1), like the reference's score 0.

use super::bpe_sim::{bpe_produces, bpe_symbols};
use super::script::fullwidth_variant;
use super::MergeReport;
use crate::chinese::has_chinese;
use crate::model::{ModelProto, ModelType, Piece, PieceType};
use std::collections::{HashMap, HashSet};

struct Added {
    piece: String,
    /// The added model's score (Unigram: log-probability; BPE: merge priority).
    logp: f32,
    intermediate: bool,
}

/// How an added model's scores become merge priorities in the merged BPE model.
#[derive(Clone, Copy)]
enum Scoring {
    /// Unigram: `chars + logp / 100`.
    LengthThenProbability,
    /// BPE: keep the added model's merge order, mapped into [1, 2).
    KeepOrder { min: f32, max: f32 },
}

impl Scoring {
    fn score(self, a: &Added) -> f32 {
        match self {
            Scoring::LengthThenProbability => a.piece.chars().count() as f32 + a.logp / 100.0,
            Scoring::KeepOrder { min, max } => 1.0 + (a.logp - min) / (max - min + 1.0),
        }
    }
}

pub(super) fn merge(base: &ModelProto, add: &ModelProto) -> (ModelProto, MergeReport) {
    let mut report = MergeReport {
        mode: "default".into(),
        ..Default::default()
    };
    let normal = || {
        add.pieces
            .iter()
            .filter(|p| p.kind() == PieceType::Normal)
            .map(|p| p.score())
    };
    let scoring = if add.trainer_spec().model_type == ModelType::Bpe {
        Scoring::KeepOrder {
            min: normal().fold(f32::INFINITY, f32::min),
            max: normal().fold(f32::NEG_INFINITY, f32::max),
        }
    } else {
        Scoring::LengthThenProbability
    };
    let score = |a: &Added| scoring.score(a);
    let base_set: HashSet<&str> = base.pieces.iter().map(|p| p.piece.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut added: Vec<Added> = Vec::new();
    for p in &add.pieces {
        if !matches!(p.kind(), PieceType::Normal | PieceType::UserDefined) {
            report.filtered_special += 1;
            continue;
        }
        if base_set.contains(p.piece.as_str()) {
            report.duplicates_skipped += 1;
        } else if has_chinese(&p.piece) {
            if seen.insert(p.piece.clone()) {
                added.push(Added {
                    piece: p.piece.clone(),
                    logp: p.score(),
                    intermediate: false,
                });
            }
        } else {
            report.filtered_non_chinese += 1;
        }
        if let Some(v) = fullwidth_variant(&p.piece) {
            if !base_set.contains(v.as_str()) && seen.insert(v.clone()) {
                report.fullwidth_variants_added += 1;
                added.push(Added {
                    piece: v,
                    logp: p.score(),
                    intermediate: false,
                });
            }
        }
    }

    let base_scores: Vec<(&str, f32)> = base
        .pieces
        .iter()
        .filter(|p| matches!(p.kind(), PieceType::Normal | PieceType::UserDefined))
        .map(|p| (p.piece.as_str(), p.score()))
        .collect();
    let mut dropped: HashSet<String> = HashSet::new();
    let mut tried: HashSet<String> = HashSet::new();
    // Fixpoint: adding an intermediate or dropping a piece can change what other pieces
    // produce, so check everything again until nothing changes (a few rounds in practice).
    for _round in 0..8 {
        let vocab = merge_vocab(&base_scores, &added, &dropped, scoring);
        let failing: Vec<(String, Vec<String>, f32)> = added
            .iter()
            .filter(|a| !dropped.contains(&a.piece) && !bpe_produces(&a.piece, &vocab))
            .map(|a| {
                (
                    a.piece.clone(),
                    bpe_symbols(&a.piece, &vocab)
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    a.logp,
                )
            })
            .collect();
        if failing.is_empty() {
            break;
        }
        let mut new_pieces = Vec::new();
        for (piece, symbols, logp) in failing {
            let fix = if tried.insert(piece.clone()) {
                intermediates(&symbols)
            } else {
                None
            };
            match fix {
                Some(new) => {
                    for s in new {
                        if !vocab.contains_key(s.as_str()) && seen.insert(s.clone()) {
                            report.intermediates_added += 1;
                            new_pieces.push(Added {
                                piece: s,
                                logp,
                                intermediate: true,
                            });
                        }
                    }
                }
                None => {
                    dropped.insert(piece);
                }
            }
        }
        added.extend(new_pieces);
    }
    // Whatever still fails after the rounds is left out too (never a dead row).
    let vocab = merge_vocab(&base_scores, &added, &dropped, scoring);
    let still: Vec<String> = added
        .iter()
        .filter(|a| !dropped.contains(&a.piece) && !bpe_produces(&a.piece, &vocab))
        .map(|a| a.piece.clone())
        .collect();
    dropped.extend(still);

    let mut out = base.clone();
    let (originals, inter): (Vec<&Added>, Vec<&Added>) = added
        .iter()
        .filter(|a| !dropped.contains(&a.piece))
        .partition(|a| !a.intermediate);
    for a in originals.into_iter().chain(inter) {
        out.pieces.push(Piece {
            piece: a.piece.clone(),
            score: Some(score(a)),
            kind: None,
            extra: Vec::new(),
        });
    }
    report.intermediates_added = added
        .iter()
        .filter(|a| a.intermediate && !dropped.contains(&a.piece))
        .count();
    let mut dropped_sorted: Vec<&String> = dropped.iter().collect();
    dropped_sorted.sort();
    report.unreachable = dropped.len();
    report.unreachable_examples = dropped_sorted.into_iter().take(20).cloned().collect();
    (out, report)
}

/// The merge table BPE would see: base pieces plus the added ones not (yet) dropped.
fn merge_vocab<'a>(
    base: &[(&'a str, f32)],
    added: &'a [Added],
    dropped: &HashSet<String>,
    scoring: Scoring,
) -> HashMap<&'a str, f32> {
    let kept = added.iter().filter(|a| !dropped.contains(&a.piece));
    base.iter()
        .copied()
        .chain(kept.map(|a| (a.piece.as_str(), scoring.score(a))))
        .collect()
}

/// Pieces that let BPE join `symbols` (what it currently stops at) into one piece: fold from
/// the left (`ab`, `abc`, ...) or, if a left prefix has no Chinese character (it would change
/// base behaviour), from the right. `None` when neither works.
fn intermediates(symbols: &[String]) -> Option<Vec<String>> {
    if symbols.len() < 2 {
        return None;
    }
    let fold = |order: &mut dyn Iterator<Item = &String>, left: bool| -> Option<Vec<String>> {
        let mut acc = order.next()?.clone();
        let mut out = Vec::new();
        for s in order {
            acc = if left {
                format!("{acc}{s}")
            } else {
                format!("{s}{acc}")
            };
            out.push(acc.clone());
        }
        out.pop(); // the last one is the piece itself
        out.iter().all(|p| has_chinese(p)).then_some(out)
    };
    fold(&mut symbols.iter(), true).or_else(|| fold(&mut symbols.iter().rev(), false))
}
