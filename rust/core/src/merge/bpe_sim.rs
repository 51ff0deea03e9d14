//! Which pieces a BPE model can produce.
//!
//! sentencepiece's BPE encoder (bpe_model.cc) starts from single characters and repeatedly
//! merges the adjacent pair whose concatenation is a piece with the highest score, leftmost
//! first on ties. A multi-character piece is therefore *reachable* only if it splits into two
//! reachable pieces; and it is *produced* from its own characters only if that greedy order
//! actually arrives at it. The merge uses the first to count dead rows and the second to
//! check each piece it adds.

use crate::model::{ModelProto, PieceType};
use std::collections::HashMap;

/// Pieces that can take part in merges, with their scores.
pub fn merge_scores(model: &ModelProto) -> HashMap<&str, f32> {
    model
        .pieces
        .iter()
        .filter(|p| matches!(p.kind(), PieceType::Normal | PieceType::UserDefined))
        .map(|p| (p.piece.as_str(), p.score()))
        .collect()
}

/// Indices of NORMAL pieces that no chain of merges can reach.
pub fn unreachable_pieces(model: &ModelProto) -> Vec<usize> {
    let vocab = merge_scores(model);
    let mut memo: HashMap<&str, bool> = HashMap::new();
    model
        .pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind() == PieceType::Normal && !reachable(&p.piece, &vocab, &mut memo))
        .map(|(i, _)| i)
        .collect()
}

/// Structural reachability: a single character, or a split into two parts that are each a
/// single character or a reachable piece. (Characters need not be pieces: BPE starts from
/// characters and looks up only the concatenations.)
pub fn reachable<'a>(
    piece: &'a str,
    vocab: &HashMap<&str, f32>,
    memo: &mut HashMap<&'a str, bool>,
) -> bool {
    if let Some(&r) = memo.get(piece) {
        return r;
    }
    let mut chars = piece.char_indices();
    chars.next();
    let r = if chars.clone().next().is_none() {
        true
    } else {
        chars.any(|(i, _)| {
            let (a, b) = piece.split_at(i);
            let part = |p: &'a str, memo: &mut HashMap<&'a str, bool>| {
                p.chars().nth(1).is_none() || (vocab.contains_key(p) && reachable(p, vocab, memo))
            };
            part(a, memo) && part(b, memo)
        })
    };
    memo.insert(piece, r);
    r
}

/// Run sentencepiece's greedy BPE on `text`'s characters and return the resulting symbols.
/// Quadratic, meant for single pieces (a few characters), not for encoding documents.
pub fn bpe_symbols<'a>(text: &'a str, vocab: &HashMap<&str, f32>) -> Vec<&'a str> {
    let mut bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    loop {
        let mut best: Option<(f32, usize)> = None;
        for k in 0..bounds.len().saturating_sub(2) {
            if let Some(&s) = vocab.get(&text[bounds[k]..bounds[k + 2]]) {
                // Strictly greater: on ties the leftmost pair wins, as in sentencepiece's agenda.
                if best.is_none_or(|(bs, _)| s > bs) {
                    best = Some((s, k));
                }
            }
        }
        match best {
            Some((_, k)) => {
                bounds.remove(k + 1);
            }
            None => break,
        }
    }
    bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

/// True when BPE turns the piece's own characters into exactly that piece.
pub fn bpe_produces(piece: &str, vocab: &HashMap<&str, f32>) -> bool {
    bpe_symbols(piece, vocab).len() == 1
}
