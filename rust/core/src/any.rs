//! [`AnyTokenizer`]: one tokenizer type over both families, SentencePiece
//! ([`crate::Tokenizer`]) and byte-level BPE ([`ByteLevelTokenizer`]), chosen by what the
//! file is. The bindings, the corpus pipeline and stats take this type.

use crate::bytelevel::load_tiktoken::looks_like_tiktoken;
use crate::bytelevel::{ByteLevelError, ByteLevelTokenizer};
use crate::corpus::DocEncoder;
use crate::encoder::{EncoderError, Tokenizer};
use crate::model::ModelError;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    SentencePiece(#[from] EncoderError),
    #[error(transparent)]
    ByteLevel(#[from] ByteLevelError),
    #[error("{0}: no tokenizer.model or tokenizer.json in this directory")]
    EmptyDir(String),
}

#[derive(Clone)]
pub enum AnyTokenizer {
    SentencePiece(Tokenizer),
    ByteLevel(ByteLevelTokenizer),
}

/// The file a path names: itself, or in a directory `tokenizer.model` (SentencePiece or
/// tiktoken) before `tokenizer.json` (HF LLaMA-2 directories hold both; the `.model` is the
/// exact one there).
pub fn resolve(path: &Path) -> Result<PathBuf, LoadError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    for name in ["tokenizer.model", "tokenizer.json"] {
        let p = path.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(LoadError::EmptyDir(path.display().to_string()))
}

impl AnyTokenizer {
    /// A tokenizer file or directory: a `tokenizer.json`, a tiktoken rank file, or a
    /// SentencePiece model, told apart by their content.
    pub fn from_path(path: &Path) -> Result<Self, LoadError> {
        let file = resolve(path)?;
        let data = std::fs::read(&file).map_err(|e| {
            EncoderError::Model(ModelError::Io {
                path: file.display().to_string(),
                source: e,
            })
        })?;
        let name = file.display().to_string();
        if data.first() == Some(&b'{') || file.extension().is_some_and(|e| e == "json") {
            return Ok(Self::ByteLevel(ByteLevelTokenizer::from_json_file(&file)?));
        }
        if looks_like_tiktoken(&data) {
            return Ok(Self::ByteLevel(ByteLevelTokenizer::from_tiktoken_bytes(
                &data, &name,
            )?));
        }
        Ok(Self::SentencePiece(
            Tokenizer::from_bytes(&data).map_err(|e| e.in_file(&file))?,
        ))
    }

    /// From the bytes of a file of any of the three kinds (no `tokenizer_config.json`).
    pub fn from_bytes(data: &[u8], source: &str) -> Result<Self, LoadError> {
        if data.first() == Some(&b'{') {
            return Ok(Self::ByteLevel(ByteLevelTokenizer::from_json_bytes(
                data, None, source,
            )?));
        }
        if looks_like_tiktoken(data) {
            return Ok(Self::ByteLevel(ByteLevelTokenizer::from_tiktoken_bytes(
                data, source,
            )?));
        }
        Ok(Self::SentencePiece(Tokenizer::from_bytes(data)?))
    }

    pub fn sentencepiece(&self) -> Option<&Tokenizer> {
        match self {
            Self::SentencePiece(t) => Some(t),
            Self::ByteLevel(_) => None,
        }
    }

    pub fn byte_level(&self) -> Option<&ByteLevelTokenizer> {
        match self {
            Self::ByteLevel(t) => Some(t),
            Self::SentencePiece(_) => None,
        }
    }

    /// `parse_special` only applies to byte-level tokenizers (sentencepiece never reads control
    /// tokens from text).
    pub fn encode_str_into(
        &self,
        text: &str,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) {
        match self {
            Self::SentencePiece(t) => t.encode_str_into(text, add_bos, add_eos, out),
            Self::ByteLevel(t) => t.encode_into(text, add_bos, add_eos, parse_special, out),
        }
    }

    pub fn encode_bytes_into(
        &self,
        text: &[u8],
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) {
        match self {
            Self::SentencePiece(t) => t.encode_bytes_into(text, add_bos, add_eos, out),
            Self::ByteLevel(t) => t.encode_bytes_into(text, add_bos, add_eos, parse_special, out),
        }
    }

    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 2 + 2);
        self.encode_str_into(text, add_bos, add_eos, parse_special, &mut out);
        out
    }

    /// The ids of `texts` back to back, and each text's id count.
    pub fn encode_block<S: AsRef<str>>(
        &self,
        texts: &[S],
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> (Vec<u32>, Vec<u32>) {
        let mut ids = Vec::new();
        let mut lens = Vec::with_capacity(texts.len());
        for t in texts {
            let before = ids.len();
            self.encode_str_into(t.as_ref(), add_bos, add_eos, parse_special, &mut ids);
            lens.push((ids.len() - before) as u32);
        }
        (ids, lens)
    }

    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> Vec<Vec<u32>> {
        texts
            .par_iter()
            .map(|t| self.encode(t.as_ref(), add_bos, add_eos, parse_special))
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::SentencePiece(t) => t.vocab_size(),
            Self::ByteLevel(t) => t.vocab_size(),
        }
    }
    pub fn bos_id(&self) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.bos_id(),
            Self::ByteLevel(t) => t.bos_id(),
        }
    }
    pub fn eos_id(&self) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.eos_id(),
            Self::ByteLevel(t) => t.eos_id(),
        }
    }
    pub fn pad_id(&self) -> Option<u32> {
        match self {
            Self::SentencePiece(t) => t.pad_id(),
            Self::ByteLevel(t) => t.pad_id(),
        }
    }
}

impl DocEncoder for ByteLevelTokenizer {
    fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>) {
        self.encode_bytes_into(text, false, false, false, out)
    }
    fn encode_str(&self, text: &str, out: &mut Vec<u32>) {
        self.encode_into(text, false, false, false, out)
    }
    fn vocab_size(&self) -> usize {
        ByteLevelTokenizer::vocab_size(self)
    }
    fn bos_id(&self) -> Option<u32> {
        ByteLevelTokenizer::bos_id(self)
    }
    fn eos_id(&self) -> Option<u32> {
        ByteLevelTokenizer::eos_id(self)
    }
    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        ByteLevelTokenizer::token_bytes(self, id)
    }
}

impl DocEncoder for AnyTokenizer {
    fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>) {
        match self {
            Self::SentencePiece(t) => t.encode_doc(text, out),
            Self::ByteLevel(t) => t.encode_doc(text, out),
        }
    }
    fn encode_str(&self, text: &str, out: &mut Vec<u32>) {
        match self {
            Self::SentencePiece(t) => DocEncoder::encode_str(t, text, out),
            Self::ByteLevel(t) => DocEncoder::encode_str(t, text, out),
        }
    }
    fn vocab_size(&self) -> usize {
        AnyTokenizer::vocab_size(self)
    }
    fn bos_id(&self) -> Option<u32> {
        AnyTokenizer::bos_id(self)
    }
    fn eos_id(&self) -> Option<u32> {
        AnyTokenizer::eos_id(self)
    }
    fn byte_value(&self, id: u32) -> Option<u8> {
        self.sentencepiece().and_then(|t| t.byte_value(id))
    }
    fn is_unknown(&self, id: u32) -> bool {
        self.sentencepiece().is_some_and(|t| t.is_unknown(id))
    }
    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.byte_level().and_then(|t| t.token_bytes(id))
    }
}
