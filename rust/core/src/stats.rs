//! Token statistics of a corpus under one or more tokenizers (`zhllama stats`).
//!
//! Only counting lives here: documents come from the one document reader
//! ([`crate::corpus::Documents`]: the inputs, UTF-8 rule, blank-line rule and bad-line policy
//! of `tokenize-corpus`), each batch is encoded in parallel by every tokenizer, and per-piece
//! counts, per-document lengths and byte-fallback characters are accumulated. Percentiles,
//! ratios and the plot are derived in Python from these counts.

use crate::chinese::is_han;
use crate::corpus::record::repair_utf8;
use crate::corpus::{CorpusError, DocEncoder, Documents};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatsError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error("interrupted")]
    Interrupted,
    #[error("cannot start {threads} threads: {message}")]
    Threads { threads: usize, message: String },
}

/// Documents are encoded this many at a time (one parallel batch per tokenizer).
const BATCH_DOCS: usize = 16384;
/// Documents per parallel task: each task's partial counts (a vocabulary-sized vector) are
/// merged afterwards, so tasks must be large enough for that merge to be negligible.
const TASK_DOCS: usize = 1024;

#[derive(Debug, Default, Clone)]
pub struct TokenizerStats {
    pub tokens: u64,
    pub byte_tokens: u64,
    pub unk_tokens: u64,
    /// Tokens per document, without BOS/EOS.
    pub lengths: Vec<u32>,
    /// How often each id occurs.
    pub piece_counts: Vec<u64>,
    /// Characters spelled with byte-fallback pieces (byte-level BPE: Chinese characters that
    /// no single token covers), and how often.
    pub fallback_chars: FxHashMap<char, u64>,
    /// Byte-level BPE: Chinese characters in the encoded text, and those split across tokens
    /// (the byte-level counterpart of byte fallback).
    pub han_chars: u64,
    pub split_han_chars: u64,
}

#[derive(Debug, Default, Clone)]
pub struct CorpusStats {
    pub docs: u64,
    pub chars: u64,
    pub bytes: u64,
    /// Lines skipped under `--on-bad-line skip` (malformed JSON, missing field, null).
    pub bad_lines: u64,
    pub empty_docs: u64,
    pub per_tokenizer: Vec<TokenizerStats>,
}

/// Characters as sentencepiece sees them: each invalid byte becomes one U+FFFD.
fn char_count(text: &[u8]) -> u64 {
    match std::str::from_utf8(text) {
        Ok(s) => s.chars().count() as u64,
        Err(_) => repair_utf8(text).chars().count() as u64,
    }
}

/// Per-id facts looked up once, so the per-token loop is two array reads.
struct PieceTable {
    /// The byte a byte-fallback piece stands for, or -1.
    byte: Vec<i16>,
    unk: Vec<bool>,
    /// Byte-level BPE: every token's bytes (empty for SentencePiece).
    bytes: Vec<Vec<u8>>,
}

impl PieceTable {
    fn new(enc: &dyn DocEncoder) -> Self {
        let n = enc.vocab_size() as u32;
        PieceTable {
            byte: (0..n)
                .map(|i| enc.byte_value(i).map_or(-1, i16::from))
                .collect(),
            unk: (0..n).map(|i| enc.is_unknown(i)).collect(),
            bytes: match enc.token_bytes(0) {
                Some(_) => (0..n)
                    .map(|i| enc.token_bytes(i).unwrap_or_default().to_vec())
                    .collect(),
                None => Vec::new(),
            },
        }
    }
}

impl TokenizerStats {
    fn add_doc(&mut self, table: &PieceTable, ids: &[u32], run: &mut Vec<u8>) {
        self.tokens += ids.len() as u64;
        self.lengths.push(ids.len() as u32);
        for &id in ids {
            let i = id as usize;
            self.piece_counts[i] += 1;
            self.unk_tokens += table.unk[i] as u64;
            match table.byte[i] {
                b if b >= 0 => {
                    self.byte_tokens += 1;
                    run.push(b as u8);
                }
                _ => self.flush_run(run),
            }
        }
        self.flush_run(run);
        if !table.bytes.is_empty() {
            self.count_split_han(table, ids, run);
        }
    }

    /// Walk the bytes the ids spell and count the Chinese characters whose bytes do not all
    /// lie inside one token.
    fn count_split_han(&mut self, table: &PieceTable, ids: &[u32], buf: &mut Vec<u8>) {
        buf.clear();
        let mut ends = Vec::with_capacity(ids.len());
        for &id in ids {
            buf.extend_from_slice(&table.bytes[id as usize]);
            ends.push(buf.len());
        }
        let mut tok = 0;
        for chunk in buf.utf8_chunks() {
            let base = chunk.valid().as_ptr() as usize - buf.as_ptr() as usize;
            for (i, c) in chunk.valid().char_indices() {
                if !is_han(c) {
                    continue;
                }
                let (s, e) = (base + i, base + i + c.len_utf8());
                while ends[tok] <= s {
                    tok += 1;
                }
                self.han_chars += 1;
                if ends[tok] < e {
                    self.split_han_chars += 1;
                    *self.fallback_chars.entry(c).or_default() += 1;
                }
            }
        }
        buf.clear();
    }

    fn flush_run(&mut self, run: &mut Vec<u8>) {
        if run.is_empty() {
            return;
        }
        for c in String::from_utf8_lossy(run).chars() {
            *self.fallback_chars.entry(c).or_default() += 1;
        }
        run.clear();
    }

    fn merge(&mut self, o: TokenizerStats) {
        self.tokens += o.tokens;
        self.byte_tokens += o.byte_tokens;
        self.unk_tokens += o.unk_tokens;
        self.han_chars += o.han_chars;
        self.split_han_chars += o.split_han_chars;
        self.lengths.extend(o.lengths);
        self.piece_counts
            .iter_mut()
            .zip(&o.piece_counts)
            .for_each(|(a, b)| *a += b);
        for (k, v) in o.fallback_chars {
            *self.fallback_chars.entry(k).or_default() += v;
        }
    }
}

/// Count `encoders` over the first `sample` documents of `docs` (all when `None`).
/// `docs` applies the bad-line policy: under [`crate::corpus::OnBadLine::Fail`] a bad line
/// stops the count with its `file:line`, as it stops `tokenize-corpus`.
/// `keep_going` is called between batches (the binding checks for Ctrl-C there).
pub fn collect_stats(
    docs: &mut Documents,
    sample: Option<u64>,
    encoders: &[&dyn DocEncoder],
    threads: usize,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<CorpusStats, StatsError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| StatsError::Threads {
            threads,
            message: e.to_string(),
        })?;
    let mut stats = CorpusStats {
        per_tokenizer: encoders
            .iter()
            .map(|e| TokenizerStats {
                piece_counts: vec![0; e.vocab_size()],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let piece_tables: Vec<PieceTable> = encoders.iter().map(|e| PieceTable::new(*e)).collect();
    let limit = sample.unwrap_or(u64::MAX);
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH_DOCS);
    let mut count = |stats: &mut CorpusStats, batch: &mut Vec<Vec<u8>>| -> Result<(), StatsError> {
        if !keep_going() {
            return Err(StatsError::Interrupted);
        }
        for ((enc, st), table) in encoders
            .iter()
            .zip(stats.per_tokenizer.iter_mut())
            .zip(&piece_tables)
        {
            let empty = TokenizerStats {
                piece_counts: vec![0; enc.vocab_size()],
                ..Default::default()
            };
            // Chunks keep document order inside each partial, and partials are merged in
            // order, so `lengths` follows the input order.
            let parts: Vec<TokenizerStats> = pool.install(|| {
                batch
                    .par_chunks(TASK_DOCS)
                    .map(|docs| {
                        let mut part = empty.clone();
                        let (mut ids, mut run) = (Vec::new(), Vec::new());
                        for d in docs {
                            ids.clear();
                            enc.encode_doc(d, &mut ids);
                            part.add_doc(table, &ids, &mut run);
                        }
                        part
                    })
                    .collect()
            });
            parts.into_iter().for_each(|p| st.merge(p));
        }
        batch.clear();
        Ok(())
    };
    while stats.docs < limit {
        let Some(doc) = docs.next_doc()? else { break };
        stats.docs += 1;
        stats.bytes += doc.text.len() as u64;
        stats.chars += char_count(&doc.text);
        batch.push(doc.text);
        if batch.len() >= BATCH_DOCS {
            count(&mut stats, &mut batch)?;
        }
    }
    count(&mut stats, &mut batch)?;
    stats.bad_lines = docs.counts.bad_lines;
    stats.empty_docs = docs.counts.empty_docs;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes below 0x80 are pieces 3.., others fall back to byte pieces 200.. (plus UNK 0 for 'U').
    struct Fake;
    impl DocEncoder for Fake {
        fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>) {
            out.extend(text.iter().map(|&b| match b {
                b'U' => 0,
                b if b < 0x80 => b as u32 + 3,
                b => 200 + b as u32,
            }));
        }
        fn vocab_size(&self) -> usize {
            456
        }
        fn bos_id(&self) -> Option<u32> {
            None
        }
        fn eos_id(&self) -> Option<u32> {
            None
        }
        fn byte_value(&self, id: u32) -> Option<u8> {
            (id >= 200).then(|| (id - 200) as u8)
        }
        fn is_unknown(&self, id: u32) -> bool {
            id == 0
        }
    }

    use crate::corpus::{InputFile, OnBadLine};

    fn read(inputs: &[InputFile], on_bad_line: OnBadLine) -> Documents<'static> {
        Documents::new(inputs.to_vec(), "text", on_bad_line, None)
    }

    #[test]
    fn counts() {
        let dir = crate::corpus::tests::tmpdir("stats");
        let p = dir.join("a.txt");
        std::fs::write(&p, "ab中\n\nU中中\nx\n").unwrap();
        let inputs = [InputFile::from_path(&p).unwrap()];
        let mut docs = read(&inputs, OnBadLine::Fail);
        let s = collect_stats(&mut docs, None, &[&Fake], 2, &mut || true).unwrap();
        assert_eq!((s.docs, s.chars, s.bytes, s.empty_docs), (3, 7, 13, 1));
        let t = &s.per_tokenizer[0];
        assert_eq!((t.tokens, t.byte_tokens, t.unk_tokens), (13, 9, 1));
        assert_eq!(t.lengths, vec![5, 7, 1]);
        assert_eq!(t.fallback_chars[&'中'], 3);
        let mut docs = read(&inputs, OnBadLine::Fail);
        let first = collect_stats(&mut docs, Some(1), &[&Fake], 1, &mut || true).unwrap();
        assert_eq!(first.docs, 1);

        // A bad line stops the count with file:line (as tokenize-corpus), or is skipped and counted.
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"text\": \"a\"}\n{\"text\": \n{\"x\": 1}\n").unwrap();
        let inputs = [InputFile::from_path(&bad).unwrap()];
        let e = collect_stats(
            &mut read(&inputs, OnBadLine::Fail),
            None,
            &[&Fake],
            1,
            &mut || true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bad.jsonl:2: malformed JSON"), "{e}");
        let s = collect_stats(
            &mut read(&inputs, OnBadLine::Skip),
            None,
            &[&Fake],
            1,
            &mut || true,
        )
        .unwrap();
        assert_eq!((s.docs, s.bad_lines), (1, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
