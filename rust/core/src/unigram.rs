//! sentencepiece's Unigram model: Viterbi segmentation of normalized text, exactly as
//! `unigram::Model::EncodeOptimized` (unigram_model.cc), the default `Encode` path since
//! sentencepiece 0.1.99 and the one the 0.2.x Python package runs.
//!
//! Exactness rules mirrored here, each with its reason in C++:
//! - The lattice holds NORMAL, USER_DEFINED and UNUSED pieces (`InitializePieces` puts them in
//!   the trie); UNUSED ones are skipped when found, so they are simply left out here.
//! - `min_score` / `max_score` run over NORMAL pieces only and start at `FLT_MAX` / `FLT_MIN`
//!   (the smallest *positive* float, so `max_score` is never below it).
//! - An unknown character costs `min_score - kUnkPenalty` (10), computed in `float`; an unk
//!   node is added only when no piece covers exactly that one character.
//! - A USER_DEFINED piece scores `len_bytes * max_score - 0.1`: the product is `float`, the
//!   subtraction `double` (0.1 is a double literal), which makes the ternary, the candidate
//!   path score and the comparison `double` too. A NORMAL piece's `float` score therefore also
//!   enters a `double` sum with the `float` best score so far; the winner is stored back as
//!   `float`. The unk candidate is a pure `float` sum. Ties keep the earlier candidate (`>`),
//!   and candidates reach a position ordered by start, shortest piece first per start.

use crate::model::{Piece, PieceType};
use crate::normalizer::trie::ByteTrie;
use std::cell::RefCell;
use std::ops::Range;
use thiserror::Error;

/// `kUnkPenalty` in unigram_model.cc.
const UNK_PENALTY: f32 = 10.0;

#[derive(Debug, Error)]
pub enum UnigramError {
    #[error("unk_id {unk_id} is out of range for a vocabulary of {size} pieces")]
    UnkOutOfRange { unk_id: u32, size: usize },
    #[error(
        "the model has no NORMAL, USER_DEFINED or UNUSED piece, so the Unigram lattice would be \
         empty (sentencepiece: \"no pieces are loaded\"); check that the model file is complete"
    )]
    NoPieces,
}

#[derive(Debug)]
pub struct UnigramModel {
    trie: ByteTrie,
    /// Per piece id: the score a lattice node for it gets, already as the `double` the C++
    /// comparison uses.
    node_score: Vec<f64>,
    unk_id: u32,
    unk_score: f32,
    min_score: f32,
    max_score: f32,
    byte_fallback: bool,
}

/// Best path ending at a byte position (`BestPathNode`); `starts_at < 0` means unreached.
#[derive(Debug, Clone, Copy)]
struct BestPath {
    score: f32,
    starts_at: i32,
    id: u32,
}

const UNREACHED: BestPath = BestPath {
    score: 0.0,
    starts_at: -1,
    id: 0,
};

thread_local! {
    /// Per-thread Viterbi table, reused so `encode` allocates nothing in the steady state.
    static BEST: RefCell<Vec<BestPath>> = const { RefCell::new(Vec::new()) };
}

impl UnigramModel {
    /// Build from the model's pieces (ids are indices), as `unigram::Model::Model`.
    /// `byte_fallback` is kept for the caller; the lattice itself never uses BYTE pieces
    /// (they are not in sentencepiece's trie).
    pub fn new(pieces: &[Piece], unk_id: u32, byte_fallback: bool) -> Result<Self, UnigramError> {
        if unk_id as usize >= pieces.len() {
            return Err(UnigramError::UnkOutOfRange {
                unk_id,
                size: pieces.len(),
            });
        }
        // std::min / std::max with these exact comparisons: a NaN score never replaces.
        let (mut min_score, mut max_score) = (f32::MAX, f32::MIN_POSITIVE);
        for p in pieces.iter().filter(|p| p.kind() == PieceType::Normal) {
            let s = p.score();
            if s < min_score {
                min_score = s;
            }
            if max_score < s {
                max_score = s;
            }
        }
        let in_lattice = |k: PieceType| {
            matches!(
                k,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            )
        };
        if !pieces.iter().any(|p| in_lattice(p.kind())) {
            return Err(UnigramError::NoPieces);
        }
        let node_score = pieces
            .iter()
            .map(|p| match p.kind() {
                PieceType::UserDefined => ((p.piece.len() as f32) * max_score) as f64 - 0.1,
                _ => p.score() as f64,
            })
            .collect();
        let trie = ByteTrie::new(pieces.iter().enumerate().filter_map(|(i, p)| {
            matches!(p.kind(), PieceType::Normal | PieceType::UserDefined)
                .then_some((p.piece.as_bytes(), i as u32))
        }));
        Ok(UnigramModel {
            trie,
            node_score,
            unk_id,
            unk_score: min_score - UNK_PENALTY,
            min_score,
            max_score,
            byte_fallback,
        })
    }

    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn byte_fallback(&self) -> bool {
        self.byte_fallback
    }
    /// Lowest NORMAL score (`f32::MAX` when there is none), as sentencepiece's `min_score()`.
    pub fn min_score(&self) -> f32 {
        self.min_score
    }
    /// Highest NORMAL score, at least `f32::MIN_POSITIVE`, as sentencepiece's `max_score()`.
    pub fn max_score(&self) -> f32 {
        self.max_score
    }

    /// Viterbi segmentation of `normalized` (the normalizer's output), appended to `out` as
    /// `(piece id, byte range in normalized)`, left to right, covering every byte.
    ///
    /// This is `Model::Encode`'s result: every character no piece covers is its own token with
    /// id `unk_id` (one per character, never fused). `SentencePieceProcessor` then post-processes
    /// (`PopulateSentencePieceText`), which the caller must do: with byte fallback each unk
    /// token becomes one `<0xXX>` piece per UTF-8 byte; without it consecutive unk tokens are
    /// fused into one unk id.
    pub fn encode(&self, normalized: &str, out: &mut Vec<(u32, Range<usize>)>) {
        if normalized.is_empty() {
            return;
        }
        BEST.with(|best| match best.try_borrow_mut() {
            Ok(mut best) => self.viterbi(normalized.as_bytes(), &mut best, out),
            // Only reachable if `encode` were re-entered on this thread; stay correct anyway.
            Err(_) => self.viterbi(normalized.as_bytes(), &mut Vec::new(), out),
        });
    }

    fn viterbi(&self, text: &[u8], best: &mut Vec<BestPath>, out: &mut Vec<(u32, Range<usize>)>) {
        let size = text.len();
        best.clear();
        best.resize(size + 1, UNREACHED);
        best[0].starts_at = 0; // only its score (0) is read, as the C++ zero-initialized node
        let mut starts_at = 0usize;
        while starts_at < size {
            let till_here = best[starts_at].score;
            // `OneCharLen`: text is valid UTF-8, so this is the character's length.
            let mblen = char_len(text[starts_at]).min(size - starts_at);
            let mut has_single_node = false;
            self.trie.for_each_prefix(&text[starts_at..], |id, length| {
                let target = &mut best[starts_at + length];
                let candidate = self.node_score[id as usize] + till_here as f64;
                if target.starts_at < 0 || candidate > target.score as f64 {
                    *target = BestPath {
                        score: candidate as f32,
                        starts_at: starts_at as i32,
                        id,
                    };
                }
                has_single_node |= length == mblen;
            });
            if !has_single_node {
                let target = &mut best[starts_at + mblen];
                let candidate = self.unk_score + till_here;
                if target.starts_at < 0 || candidate > target.score {
                    *target = BestPath {
                        score: candidate,
                        starts_at: starts_at as i32,
                        id: self.unk_id,
                    };
                }
            }
            starts_at += mblen;
        }
        let first = out.len();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let start = node.starts_at as usize;
            out.push((node.id, start..end));
            end = start;
        }
        out[first..].reverse();
    }
}

/// sentencepiece's `OneCharLen`: the length a UTF-8 lead byte announces.
#[inline]
fn char_len(lead: u8) -> usize {
    const LEN: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LEN[(lead >> 4) as usize] as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[(&str, f32, PieceType)]) -> UnigramModel {
        let pieces: Vec<Piece> = pieces
            .iter()
            .map(|&(s, sc, k)| Piece::new(s, sc, Some(k)))
            .collect();
        UnigramModel::new(&pieces, 0, false).unwrap()
    }

    fn enc(m: &UnigramModel, s: &str) -> Vec<(u32, Range<usize>)> {
        let mut out = Vec::new();
        m.encode(s, &mut out);
        out
    }

    use PieceType::*;

    #[test]
    fn best_path_and_unknowns() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -1.0, Normal),
            ("b", -1.0, Normal),
            ("ab", -1.5, Normal),
            ("abc", -5.0, Normal),
        ]);
        assert_eq!(enc(&m, "ab"), vec![(3, 0..2)]);
        // "abc" (-5) vs "ab"+unk(c) = -1.5 + (-5 - 10): the whole piece wins.
        assert_eq!(enc(&m, "abc"), vec![(4, 0..3)]);
        // Unknown characters: one unk token per character, not fused.
        assert_eq!(enc(&m, "x\u{4e2d}a"), vec![(0, 0..1), (0, 1..4), (1, 4..5)]);
        assert_eq!(m.min_score(), -5.0);
        assert_eq!(m.max_score(), f32::MIN_POSITIVE);
        let mut out = vec![(9, 0..0)];
        m.encode("", &mut out);
        m.encode("a", &mut out);
        assert_eq!(out, vec![(9, 0..0), (1, 0..1)]);
    }

    #[test]
    fn ties_keep_the_earliest_start() {
        // "ab" alone (-2) ties with "a"+"b" (-1 + -1); the path reaching position 2 first wins:
        // candidates arrive by start position, so "ab" (start 0) beats "b" (start 1).
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -1.0, Normal),
            ("b", -1.0, Normal),
            ("ab", -2.0, Normal),
        ]);
        assert_eq!(enc(&m, "ab"), vec![(3, 0..2)]);
    }

    #[test]
    fn user_defined_and_unused() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -1.0, Normal),
            ("b", -1.0, Normal),
            ("ab", -0.01, Unused),
            ("<x>", 0.0, UserDefined),
            ("c", 0.0, Unused),
        ]);
        // Unused "ab" never appears; unused "c" leaves "c" unknown.
        assert_eq!(enc(&m, "abc"), vec![(1, 0..1), (2, 1..2), (0, 2..3)]);
        // A user-defined piece scores ~-0.1 and beats the 3 unknowns.
        assert_eq!(enc(&m, "<x>"), vec![(4, 0..3)]);
    }

    #[test]
    fn double_comparison_decides_near_ties() {
        // Path A = "a"+"b": float(-0.1) + float(-0.2) summed in double then rounded to float.
        // Path B = "ab" with the score float(-0.3). In double, A's sum differs from B's score
        // though both round to nearby floats; the stored float then feeds the comparison.
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -0.1, Normal),
            ("b", -0.2, Normal),
            ("ab", -0.3, Normal),
        ]);
        let a = -0.1f32 as f64 + -0.2f32 as f64;
        let expected = if a > -0.3f32 as f64 {
            vec![(1, 0..1), (2, 1..2)]
        } else {
            vec![(3, 0..2)]
        };
        assert_eq!(enc(&m, "ab"), expected);
    }

    #[test]
    fn errors() {
        let p = vec![Piece::new("<unk>", 0.0, Some(Unknown))];
        assert!(matches!(
            UnigramModel::new(&p, 0, false),
            Err(UnigramError::NoPieces)
        ));
        assert!(matches!(
            UnigramModel::new(&p, 3, false),
            Err(UnigramError::UnkOutOfRange { .. })
        ));
    }
}
