//! zhllama-core: the pure-Rust half of zhllama. No Python types live here; the
//! `zhllama-python` crate binds this API.
//!
//! - [`proto`], [`model`]: SentencePiece `ModelProto` I/O, byte-exact round trips, validation.
//! - [`normalizer`], [`bpe`], [`unigram`], [`encoder`]: an encoder whose ids equal sentencepiece's.
//! - [`merge`]: vocabulary merging (reference mode and the default, flaw-fixing mode).
//! - [`corpus`]: streaming, parallel, resumable corpus tokenization into Megatron indexed shards.
//! - [`bytelevel`]: byte-level BPE (LLaMA-3, Qwen2, SmolLM2): HF tokenizer.json and tiktoken
//!   files, ids equal to HF tokenizers' / tiktoken's; [`any`]: one type over both families.
//! - [`stats`]: token-length statistics; [`chinese`]: which characters are Chinese;
//!   [`pretoken_counts`]: a corpus's Chinese pre-tokens, counted for `extend-vocab`.
//! - [`HugePageAlloc`]: a global allocator that puts big tables on 2 MiB pages (the Python
//!   extension registers it).

pub mod any;
pub mod bpe;
mod bpe_table;
pub mod bytelevel;
pub mod chinese;
pub mod corpus;
pub mod decoder;
pub mod encoder;
mod huge_pages;
pub mod merge;
pub mod model;
pub mod normalizer;
pub mod pretoken_counts;
pub mod proto;
pub mod stats;
pub mod unigram;

pub use any::AnyTokenizer;
pub use bytelevel::ByteLevelTokenizer;
pub use encoder::{EncoderError, Tokenizer};
pub use huge_pages::HugePageAlloc;
pub use model::{ModelProto, Piece, PieceType};
