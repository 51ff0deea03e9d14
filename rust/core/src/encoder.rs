//! The public encoder: normalizer + BPE/Unigram model + special ids. (Encoder task fills this.)

/// Placeholder type so the crate compiles while the encoder is written.
pub struct Tokenizer;
