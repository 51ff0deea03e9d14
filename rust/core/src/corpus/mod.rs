//! Streaming, parallel, resumable corpus tokenization into Megatron indexed shards.
//!
//! - [`input`]: which files we read and how they decompress;
//! - [`record`]: line → document text (JSON field, sentencepiece's invalid-UTF-8 rule, blank
//!   lines) and the bad-line policy [`OnBadLine`];
//! - [`reader`] → [`encode`] → [`pipeline`]: the three overlapped stages;
//! - [`documents`]: the same inputs, records and policy as one ordered iterator of documents,
//!   for every other verb that reads text (stats, train-spm, pretrain, eval);
//! - [`megatron`]: the `.bin`/`.idx` pair; [`manifest`]: `manifest.json` / `progress.json`;
//! - [`lock`]: one writer per output directory; [`merge_parts`]: `--merge-manifests`.
//!
//! The stages are generic over [`DocEncoder`] so that ordering, sharding and resume are tested
//! with a trivial encoder, independently of the sentencepiece-exact one.

pub mod documents;
pub mod encode;
pub mod error;
pub mod input;
pub mod lock;
pub mod manifest;
pub mod megatron;
pub mod merge_parts;
pub mod pipeline;
pub mod reader;
pub mod record;
#[cfg(test)]
pub(crate) mod tests;

pub use documents::{Document, Documents};
pub use error::CorpusError;
pub use input::{detect_kind, Compression, Format, InputFile};
pub use manifest::{Manifest, Options};
pub use merge_parts::merge_parts;
pub use pipeline::{tokenize_corpus, Progress, RunSummary, TokenizeConfig};
pub use reader::{TableBatches, TableReader};
pub use record::OnBadLine;

/// What the corpus pipeline needs from a tokenizer.
pub trait DocEncoder: Send + Sync {
    /// Append the ids of `text` (raw bytes, possibly invalid UTF-8, handled as sentencepiece
    /// does), without BOS/EOS, to `out`.
    fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>);
    /// [`DocEncoder::encode_doc`] for text already known to be valid UTF-8.
    fn encode_str(&self, text: &str, out: &mut Vec<u32>) {
        self.encode_doc(text.as_bytes(), out)
    }
    fn vocab_size(&self) -> usize;
    fn bos_id(&self) -> Option<u32>;
    fn eos_id(&self) -> Option<u32>;
    /// The byte a byte-fallback piece (`<0xAB>`) stands for.
    fn byte_value(&self, _id: u32) -> Option<u8> {
        None
    }
    fn is_unknown(&self, _id: u32) -> bool {
        false
    }
    /// The bytes a byte-level token spells (`None` for SentencePiece pieces): `stats` finds
    /// with them the Chinese characters that no single token covers.
    fn token_bytes(&self, _id: u32) -> Option<&[u8]> {
        None
    }
}

impl DocEncoder for crate::Tokenizer {
    fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>) {
        self.encode_bytes_into(text, false, false, out);
    }
    fn encode_str(&self, text: &str, out: &mut Vec<u32>) {
        self.encode_str_into(text, false, false, out);
    }
    fn vocab_size(&self) -> usize {
        crate::Tokenizer::vocab_size(self)
    }
    fn bos_id(&self) -> Option<u32> {
        crate::Tokenizer::bos_id(self)
    }
    fn eos_id(&self) -> Option<u32> {
        crate::Tokenizer::eos_id(self)
    }
    fn byte_value(&self, id: u32) -> Option<u8> {
        // Byte pieces are spelled `<0xAB>` (sentencepiece's ByteToPiece).
        let hex = self
            .id_to_piece(id)?
            .strip_prefix("<0x")?
            .strip_suffix('>')?;
        if !self.is_byte(id) {
            return None;
        }
        u8::from_str_radix(hex, 16).ok()
    }
    fn is_unknown(&self, id: u32) -> bool {
        crate::Tokenizer::is_unknown(self, id)
    }
}
