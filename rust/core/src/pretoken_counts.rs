//! The Chinese pre-tokens of a corpus and how often each occurs: what `extend-vocab` continues
//! BPE on. A pre-token is what the base's own pre-tokenizer yields
//! ([`ByteLevelTokenizer::for_each_pretoken`]); only those holding a Chinese character
//! ([`crate::chinese`]) are kept, since only they can take the new merges.
//!
//! Memory is bounded, whatever the corpus: the table holds at most `max_entries` distinct
//! pre-tokens. Chinese has no spaces, so a pre-token is a whole clause, and distinct clauses grow
//! with the corpus. When a batch leaves more than `max_entries`, the rarest go by word2vec's rule
//! (`ReduceVocab`): every entry seen at most `floor` times is dropped, `floor` rising by one until
//! the table fits. A pre-token never dropped keeps its exact count; one dropped and seen again
//! restarts from zero. Until the table first overflows every count is exact, so on a corpus that
//! fits, the counts (and the merges learned from them) equal those of the whole input.

use crate::chinese::has_chinese;
use crate::ByteLevelTokenizer;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Documents per rayon task: enough work to amortize the per-task table and merge.
const TASK_DOCS: usize = 256;

type Table = FxHashMap<Box<[u8]>, u64>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CountStats {
    pub documents: u64,
    pub characters: u64,
    /// Chinese pre-token occurrences seen (kept or later dropped).
    pub occurrences: u64,
    /// Occurrences removed with the entries pruning dropped.
    pub dropped_occurrences: u64,
    /// Entries pruning dropped (one pre-token dropped twice counts twice).
    pub dropped_entries: u64,
    /// Entries seen at most this many times were dropped (0: no pruning happened).
    pub floor: u64,
}

pub struct PretokenCounts {
    counts: Table,
    max_entries: usize,
    stats: CountStats,
}

impl PretokenCounts {
    pub fn new(max_entries: usize) -> Self {
        PretokenCounts {
            counts: Table::default(),
            max_entries: max_entries.max(1),
            stats: CountStats::default(),
        }
    }

    /// Count the Chinese pre-tokens of `docs` (in parallel), then prune if the table is over.
    pub fn add_documents<S: AsRef<str> + Sync>(&mut self, tok: &ByteLevelTokenizer, docs: &[S]) {
        let parts: Vec<(Table, u64)> = docs
            .par_chunks(TASK_DOCS)
            .map(|chunk| {
                let mut local = Table::default();
                let mut chars = 0u64;
                for doc in chunk {
                    let doc = doc.as_ref();
                    chars += doc.chars().count() as u64;
                    tok.for_each_pretoken(doc, &mut |piece: &str| {
                        if has_chinese(piece) {
                            match local.get_mut(piece.as_bytes()) {
                                Some(c) => *c += 1,
                                None => {
                                    local.insert(piece.as_bytes().into(), 1);
                                }
                            }
                        }
                    });
                }
                (local, chars)
            })
            .collect();
        // Merged in chunk order: the result is the same for any thread count.
        for (local, chars) in parts {
            self.stats.characters += chars;
            for (piece, c) in local {
                self.stats.occurrences += c;
                *self.counts.entry(piece).or_insert(0) += c;
            }
        }
        self.stats.documents += docs.len() as u64;
        self.prune();
    }

    fn prune(&mut self) {
        while self.counts.len() > self.max_entries {
            self.stats.floor += 1;
            let floor = self.stats.floor;
            let (mut entries, mut occurrences) = (0u64, 0u64);
            self.counts.retain(|_, c| {
                let keep = *c > floor;
                if !keep {
                    entries += 1;
                    occurrences += *c;
                }
                keep
            });
            self.stats.dropped_entries += entries;
            self.stats.dropped_occurrences += occurrences;
        }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn stats(&self) -> &CountStats {
        &self.stats
    }

    /// The pre-tokens seen at least `min_count` times, most frequent first (ties: by bytes), so
    /// the order does not depend on hashing.
    pub fn sorted(&self, min_count: u64) -> Vec<(&[u8], u64)> {
        let mut out: Vec<(&[u8], u64)> = self
            .counts
            .iter()
            .filter(|(_, &c)| c >= min_count)
            .map(|(k, &c)| (&**k, c))
            .collect();
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2() -> ByteLevelTokenizer {
        // A minimal tokenizer.json: GPT-2's pre-tokenizer over the 256 byte tokens, no merges.
        let alphabet = crate::bytelevel::byte_to_char();
        let vocab: serde_json::Map<String, serde_json::Value> = (0..256)
            .map(|i| (alphabet[i].to_string(), serde_json::json!(i)))
            .collect();
        let json = serde_json::json!({
            "model": {"type": "BPE", "vocab": vocab, "merges": []},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "decoder": {"type": "ByteLevel"},
            "added_tokens": [],
        });
        ByteLevelTokenizer::from_json_bytes(json.to_string().as_bytes(), None, "test")
            .expect("tokenizer")
    }

    #[test]
    fn counts_chinese_pretokens_and_prunes_the_rarest() {
        let tok = gpt2();
        let mut counts = PretokenCounts::new(100);
        counts.add_documents(&tok, &["中国人民，中国 hello 人民。", "中国人民"]);
        let got: Vec<(String, u64)> = counts
            .sorted(1)
            .into_iter()
            .map(|(k, c)| (String::from_utf8(k.to_vec()).unwrap(), c))
            .collect();
        assert_eq!(
            got,
            [
                ("中国人民", 2),
                (" 人民", 1),
                ("。", 1),
                ("中国", 1),
                ("，", 1)
            ]
            .map(|(s, c)| (s.to_string(), c))
        );
        assert_eq!(counts.stats().documents, 2);
        assert_eq!(counts.stats().floor, 0);
        let mut small = PretokenCounts::new(2);
        small.add_documents(&tok, &["甲乙，甲乙，丙，丁"]);
        // 甲乙 2, ， 3, 丙 1, 丁 1: four entries over a cap of two; floor 1 drops 丙 and 丁.
        assert_eq!(small.len(), 2);
        assert_eq!(
            (
                small.stats().floor,
                small.stats().dropped_entries,
                small.stats().dropped_occurrences
            ),
            (1, 2, 2)
        );
        assert_eq!(
            small.sorted(1),
            vec![("，".as_bytes(), 3), ("甲乙".as_bytes(), 2)]
        );
    }
}
