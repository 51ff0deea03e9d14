//! Vocabulary merging: add the pieces of a (Chinese) SentencePiece model to a BPE base model.
//!
//! Two modes:
//! - [`MergeMode::Reference`]: the Chinese-LLaMA-Alpaca script exactly (append every added
//!   piece the base lacks, score 0, type unset). Byte-identical to its output.
//! - [`MergeMode::Default`]: fixes the reference's three measured flaws — see [`default_mode`].

mod bpe_sim;
mod default_mode;
mod script;

pub use bpe_sim::{bpe_produces, unreachable_pieces};
pub use script::fullwidth_variant;

use crate::model::{ModelError, ModelProto, ModelType, Piece, PieceType};
use serde::Serialize;
use std::collections::HashSet;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MergeError {
    #[error("base model: {0}")]
    Base(ModelError),
    #[error("added model: {0}")]
    Added(ModelError),
    #[error("the base model is {0:?}, but merging appends pieces to a BPE model (like LLaMA's); pass a BPE model as --base")]
    BaseNotBpe(ModelType),
    #[error("merged model failed validation: {0} (this is a bug; please report it)")]
    Output(ModelError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    Reference,
    Default,
}

/// What the merge did, written as `merge_report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeReport {
    pub mode: String,
    pub base_pieces: usize,
    pub added_model_pieces: usize,
    /// Added-model pieces whose string the base already has.
    pub duplicates_skipped: usize,
    /// Added-model pieces left out because they contain no Chinese character, so that text
    /// without Chinese keeps the base tokenization (default mode).
    pub filtered_non_chinese: usize,
    /// Added-model pieces of type CONTROL / UNKNOWN / BYTE / UNUSED, never merged.
    pub filtered_special: usize,
    /// Fullwidth spellings of added pieces (e.g. `１９９８` for `1998`), added because the
    /// added model's NFKC normalizer folded them away (default mode).
    pub fullwidth_variants_added: usize,
    /// Pieces added only so that a longer added piece becomes reachable by BPE merges.
    pub intermediates_added: usize,
    /// Added pieces the BPE encoder can never produce, kept anyway (reference mode) or left
    /// out (default mode, after trying to add intermediates).
    pub unreachable: usize,
    pub unreachable_examples: Vec<String>,
    pub final_pieces: usize,
    pub normalizer: NormalizerReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NormalizerReport {
    pub base: String,
    pub added: String,
    pub differs: bool,
    /// Added pieces containing a character that the added model's normalizer produces by
    /// folding another one (e.g. ASCII `,` from `，`): raw text spelled the other way cannot
    /// reach them through the merged model, which has the base's normalizer.
    pub affected_pieces: usize,
    pub affected_examples: Vec<String>,
    pub note: String,
}

/// The report as pretty JSON (`merge_report.json`).
pub fn report_json(report: &MergeReport) -> String {
    serde_json::to_string_pretty(report).expect("report serializes")
}

/// Merge `add` into `base`.
pub fn merge(
    base: &ModelProto,
    add: &ModelProto,
    mode: MergeMode,
) -> Result<(ModelProto, MergeReport), MergeError> {
    base.validate().map_err(MergeError::Base)?;
    add.validate().map_err(MergeError::Added)?;
    let spec = base.trainer_spec();
    if spec.model_type != ModelType::Bpe {
        return Err(MergeError::BaseNotBpe(spec.model_type));
    }
    let (out, mut report) = match mode {
        MergeMode::Reference => reference(base, add),
        MergeMode::Default => default_mode::merge(base, add),
    };
    out.validate().map_err(MergeError::Output)?;
    report.base_pieces = base.pieces.len();
    report.added_model_pieces = add.pieces.len();
    report.final_pieces = out.pieces.len();
    report.normalizer = normalizer_report(base, add, &out);
    Ok((out, report))
}

/// The reference script: `for p in chinese.pieces: if p.piece not in llama: append(piece, score=0)`.
fn reference(base: &ModelProto, add: &ModelProto) -> (ModelProto, MergeReport) {
    let mut out = base.clone();
    let mut have: HashSet<String> = base.pieces.iter().map(|p| p.piece.clone()).collect();
    let mut report = MergeReport {
        mode: "reference".into(),
        ..Default::default()
    };
    for p in &add.pieces {
        if have.insert(p.piece.clone()) {
            // Score written (presence set) and type left unset, exactly as the script's
            // protobuf code does, so the file bytes match.
            out.pieces.push(Piece {
                piece: p.piece.clone(),
                score: Some(0.0),
                kind: None,
                extra: Vec::new(),
            });
        } else {
            report.duplicates_skipped += 1;
        }
    }
    let start = base.pieces.len();
    let dead: Vec<usize> = unreachable_pieces(&out)
        .into_iter()
        .filter(|&i| i >= start)
        .collect();
    report.unreachable = dead.len();
    report.unreachable_examples = dead
        .iter()
        .take(20)
        .map(|&i| out.pieces[i].piece.clone())
        .collect();
    (out, report)
}

fn normalizer_report(base: &ModelProto, add: &ModelProto, out: &ModelProto) -> NormalizerReport {
    let b = base.normalizer_spec();
    let a = add.normalizer_spec();
    let differs = b.name != a.name || b.precompiled_charsmap != a.precompiled_charsmap;
    let mut r = NormalizerReport {
        base: b.name,
        added: a.name,
        differs,
        ..Default::default()
    };
    if !differs {
        r.note = "same normalizer: no mismatch".into();
        return r;
    }
    let added: Vec<&Piece> = out.pieces[base.pieces.len()..]
        .iter()
        .filter(|p| p.kind() == PieceType::Normal)
        .collect();
    let affected: Vec<&&Piece> = added
        .iter()
        .filter(|p| p.piece.chars().any(script::is_fold_target))
        .collect();
    r.affected_pieces = affected.len();
    r.affected_examples = affected.iter().take(20).map(|p| p.piece.clone()).collect();
    r.note = format!(
        "the merged model keeps the base normalizer ({:?}); the added model was trained on {:?}-normalized text, \
         so {} added pieces contain characters (ASCII punctuation, digits, letters, spaces) that Chinese text usually \
         writes in fullwidth form, and fullwidth characters the base lacks fall back to bytes",
        r.base, r.added, r.affected_pieces
    );
    r
}

#[cfg(test)]
mod tests;
