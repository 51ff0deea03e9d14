//! sentencepiece's Unigram model: Viterbi segmentation of normalized text, exactly as
//! `unigram::Model::EncodeOptimized` in sentencepiece 0.2.3 (unigram_model.cc), which is what
//! `Model::Encode` always runs there and what the pip package's `encode` uses.
//!
//! Exactness rules mirrored here (0.2.3; older releases differ, see the notes):
//! - The lattice holds NORMAL, USER_DEFINED and UNUSED pieces (`InitializePieces` puts them in
//!   the trie); UNUSED ones are skipped when found, so they are simply left out here.
//! - `min_score` runs over NORMAL pieces only and starts at `FLT_MAX`; an unknown character
//!   costs `min_score - kUnkPenalty` (10). An unk node is added only when no piece covers
//!   exactly that one character. Any NaN or infinite score makes the model fail to load.
//! - A USER_DEFINED piece scores `GetUserDefinedScore(len) = 0.1 * (len - 1)` with `len` in
//!   bytes, computed in `double` and returned as `float` (0.2.0 and earlier used `len * max_score - 0.1`).
//! - Path scores are `float` sums compared with `>`: ties keep the earlier candidate, and
//!   candidates reach a position ordered by start, shortest piece first per start.
//! - When the best score so far leaves [-1e5, 1e5] (`kScoreResetThreshold`), every reached
//!   score from the current start up to the furthest reached position (`max_frontier`) is
//!   re-based by subtracting it, in `float`. On long inputs this changes rounding, and so which
//!   of two equal-looking paths wins; it must be replayed exactly.

use crate::model::{Piece, PieceType};
use crate::normalizer::trie::ByteTrie;
use std::cell::RefCell;
use std::ops::Range;
use thiserror::Error;

/// `kUnkPenalty` in unigram_model.cc.
const UNK_PENALTY: f32 = 10.0;
/// `kScoreResetThreshold` in `EncodeOptimized`.
const SCORE_RESET_THRESHOLD: f32 = 100_000.0;

#[derive(Debug, Error)]
pub enum UnigramError {
    #[error("unk_id {unk_id} is out of range for a vocabulary of {size} pieces")]
    UnkOutOfRange { unk_id: u32, size: usize },
    #[error(
        "piece {id} ({piece:?}) has score {score}; sentencepiece refuses NaN or infinite scores"
    )]
    BadScore {
        id: usize,
        piece: String,
        score: f32,
    },
    #[error(
        "the model has no NORMAL, USER_DEFINED or UNUSED piece, so the Unigram lattice would be \
         empty (sentencepiece: \"no pieces are loaded\"); check that the model file is complete"
    )]
    NoPieces,
}

#[derive(Debug, Clone)]
pub struct UnigramModel {
    trie: ByteTrie,
    /// Per piece id: the score a lattice node for it gets (user-defined pieces: their length
    /// bonus).
    node_score: Vec<f32>,
    unk_id: u32,
    unk_score: f32,
    min_score: f32,
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
    /// `unk`: the index of the UNKNOWN-typed piece (sentencepiece's `unk_id_` comes from the
    /// piece types, not from `trainer_spec.unk_id`); `None` when the model has none, which
    /// sentencepiece allows with byte fallback: unknown characters then get the id
    /// `pieces.len()`, which names no piece, and the caller turns them into bytes.
    /// `byte_fallback` is kept for the caller; the lattice itself never uses BYTE pieces (they
    /// are not in sentencepiece's trie).
    pub fn new(
        pieces: &[Piece],
        unk: Option<u32>,
        byte_fallback: bool,
    ) -> Result<Self, UnigramError> {
        let unk_id = unk.unwrap_or(pieces.len() as u32);
        if unk_id as usize > pieces.len() {
            return Err(UnigramError::UnkOutOfRange {
                unk_id,
                size: pieces.len(),
            });
        }
        let mut min_score = f32::MAX;
        for (id, p) in pieces.iter().enumerate() {
            let score = p.score();
            if !score.is_finite() {
                return Err(UnigramError::BadScore {
                    id,
                    piece: p.piece.clone(),
                    score,
                });
            }
            if p.kind() == PieceType::Normal && score < min_score {
                min_score = score;
            }
        }
        // NORMAL, USER_DEFINED, UNUSED: sentencepiece's ordinary (non-reserved) pieces.
        if pieces.iter().all(|p| p.kind().is_reserved()) {
            return Err(UnigramError::NoPieces);
        }
        let node_score = pieces
            .iter()
            .map(|p| match p.kind() {
                PieceType::UserDefined => user_defined_score(p.piece.len()),
                _ => p.score(),
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
            byte_fallback,
        })
    }

    /// The id unknown characters get: the UNKNOWN piece, or the piece count when there is none.
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
        let mut starts_at = 0usize;
        // Furthest position any candidate has reached (`max_frontier`), bounding the re-basing.
        let mut max_frontier = 0usize;
        while starts_at < size {
            let mut till_here = best[starts_at].score;
            if !(-SCORE_RESET_THRESHOLD..=SCORE_RESET_THRESHOLD).contains(&till_here) {
                let offset = till_here;
                // (An empty range when nothing reached past here, as the C++ `for` loop.)
                for (i, node) in best
                    .iter_mut()
                    .take(max_frontier + 1)
                    .skip(starts_at)
                    .enumerate()
                {
                    if i == 0 || node.starts_at >= 0 {
                        node.score -= offset;
                    }
                }
                till_here = 0.0;
            }
            // `OneCharLen`: text is valid UTF-8, so this is the character's length.
            let mblen = char_len(text[starts_at]).min(size - starts_at);
            let mut has_single_node = false;
            self.trie.for_each_prefix(&text[starts_at..], |id, length| {
                let end = starts_at + length;
                max_frontier = max_frontier.max(end);
                let target = &mut best[end];
                let candidate = self.node_score[id as usize] + till_here;
                if target.starts_at < 0 || candidate > target.score {
                    *target = BestPath {
                        score: candidate,
                        starts_at: starts_at as i32,
                        id,
                    };
                }
                has_single_node |= length == mblen;
            });
            if !has_single_node {
                let end = starts_at + mblen;
                max_frontier = max_frontier.max(end);
                let target = &mut best[end];
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

/// `GetUserDefinedScore`: `0.1 * (length - 1)` in `double`, returned as `float`. It makes a
/// user-defined piece beat any split of it into normal pieces (log-probabilities <= 0) and
/// prefer fewer, longer user-defined pieces.
fn user_defined_score(len_bytes: usize) -> f32 {
    (0.1 * (len_bytes as i32 - 1) as f64) as f32
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
        UnigramModel::new(&pieces, Some(0), false).unwrap()
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
        // A user-defined piece scores 0.2 and beats the 3 unknowns.
        assert_eq!(enc(&m, "<x>"), vec![(4, 0..3)]);
    }

    #[test]
    fn float_sums_decide_near_ties() {
        // "a"+"b" is float(-0.1) + float(-0.2) rounded to float; it replaces "ab" only if that
        // float is strictly greater than float(-0.3).
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -0.1, Normal),
            ("b", -0.2, Normal),
            ("ab", -0.3, Normal),
        ]);
        let expected = if -0.1f32 + -0.2f32 > -0.3f32 {
            vec![(1, 0..1), (2, 1..2)]
        } else {
            vec![(3, 0..2)]
        };
        assert_eq!(enc(&m, "ab"), expected);
    }

    #[test]
    fn user_defined_score_prefers_longer_pieces() {
        assert_eq!(user_defined_score(1), 0.0);
        assert_eq!(user_defined_score(3), (0.1f64 * 2.0) as f32);
        // (A normal piece keeps the unk score finite: with none, min_score stays FLT_MAX.)
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("ab", 0.0, UserDefined),
            ("abcd", 0.0, UserDefined),
            ("cd", 0.0, UserDefined),
            ("z", -1.0, Normal),
        ]);
        assert_eq!(enc(&m, "abcd"), vec![(2, 0..4)]);
    }

    #[test]
    fn long_inputs_rebase_scores() {
        // 30,000 unknown characters at -20 each pass -1e5 several times; the path must still
        // cover the input and end with the same tokens as without re-basing.
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -10.0, Normal),
            ("b", -10.0, Normal),
            ("ab", -20.0, Normal),
        ]);
        let text: String = "ab".repeat(30_000);
        let got = enc(&m, &text);
        assert_eq!(got.iter().map(|(_, r)| r.len()).sum::<usize>(), text.len());
        assert!(got.windows(2).all(|w| w[0].1.end == w[1].1.start));
    }

    #[test]
    fn thread_safe() {
        fn check<T: Send + Sync + Clone>() {}
        check::<UnigramModel>();
        check::<crate::normalizer::Normalizer>();
    }

    #[test]
    fn errors() {
        let mut p = vec![
            Piece::new("<unk>", 0.0, Some(Unknown)),
            Piece::new("a", f32::NAN, None),
        ];
        assert!(matches!(
            UnigramModel::new(&p, Some(0), false),
            Err(UnigramError::BadScore { id: 1, .. })
        ));
        p.pop();
        assert!(matches!(
            UnigramModel::new(&p, Some(0), false),
            Err(UnigramError::NoPieces)
        ));
        assert!(matches!(
            UnigramModel::new(&p, Some(3), false),
            Err(UnigramError::UnkOutOfRange { .. })
        ));
    }
}
