//! `manifest.json` (a finished corpus) and `progress.json` (an interrupted one) share one
//! shape: the progress file is the manifest as of the last completed shard, plus the input
//! position after that shard, which is all a rerun needs to resume byte-identically.

use super::error::{CorpusError, Result};
use super::input::InputFile;
use super::megatron::Dtype;
use super::record::OnBadLine;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

pub const MANIFEST: &str = "manifest.json";
pub const PROGRESS: &str = "progress.json";
pub const FORMAT: &str = "zhllama-tokenized-corpus";
pub const FORMAT_VERSION: u32 = 1;
/// How many skipped lines a manifest quotes as `file:line: reason`.
pub const MAX_BAD_EXAMPLES: usize = 20;

/// Where reading resumes: file index, lines (rows) already consumed in that file, and
/// decompressed bytes already consumed in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: usize,
    pub line: u64,
    pub offset: u64,
}

/// What happened to the lines of one source (or of all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub lines: u64,
    pub docs: u64,
    pub tokens: u64,
    /// Lines skipped under `--on-bad-line skip` (malformed JSON, missing field, null).
    pub bad_lines: u64,
    /// Lines whose text is empty: skipped, since an empty document carries no text.
    pub empty_docs: u64,
    /// Documents with invalid UTF-8, and the bytes sentencepiece turns into U+FFFD.
    pub invalid_utf8_docs: u64,
    pub invalid_utf8_bytes: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        // Destructured without `..`, so a new counter does not compile until it is summed here:
        // this sum is what both a run's totals and `--merge-manifests` use.
        let Counts {
            lines,
            docs,
            tokens,
            bad_lines,
            empty_docs,
            invalid_utf8_docs,
            invalid_utf8_bytes,
        } = o;
        self.lines += lines;
        self.docs += docs;
        self.tokens += tokens;
        self.bad_lines += bad_lines;
        self.empty_docs += empty_docs;
        self.invalid_utf8_docs += invalid_utf8_docs;
        self.invalid_utf8_bytes += invalid_utf8_bytes;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    #[serde(flatten)]
    pub file: InputFile,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// Megatron prefix: `NAME.bin` / `NAME.idx` in the corpus directory.
    pub name: String,
    pub docs: u64,
    pub tokens: u64,
    /// Input position just after this shard's last document.
    pub end: Position,
    /// In a merged corpus: the part shard this one links to (`PART/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Everything that changes the output bytes; a rerun must match it to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub text_field: String,
    pub append_eos: bool,
    pub add_bos: bool,
    pub shard_size: u64,
    pub on_bad_line: OnBadLine,
    /// Front-end options recorded as given (e.g. `num_shards`, `shard_index`).
    pub extra: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub complete: bool,
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
    pub dtype: Dtype,
    pub megatron_dtype_code: u8,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub options: Options,
    pub num_docs: u64,
    pub num_tokens: u64,
    pub shards: Vec<Shard>,
    pub sources: Vec<Source>,
    pub totals: Counts,
    /// The first few skipped lines as `file:line: reason`, so skips can be audited.
    pub bad_line_examples: Vec<String>,
}

impl Manifest {
    /// Read a manifest or progress file, refusing any field this schema does not hold: it
    /// would be silently dropped by a resume or a merge that writes the manifest back.
    pub fn read(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| CorpusError::io(path, e))?;
        let state = |source| CorpusError::State {
            path: path.to_path_buf(),
            source,
        };
        let raw: serde_json::Value = serde_json::from_slice(&data).map_err(state)?;
        let manifest: Manifest = serde_json::from_value(raw.clone()).map_err(state)?;
        let kept = serde_json::to_value(&manifest).expect("manifest serializes");
        if let Some(field) = dropped_field(&raw, &kept, "") {
            return Err(CorpusError::UnknownField {
                path: path.to_path_buf(),
                field,
                version: manifest.format_version,
            });
        }
        Ok(manifest)
    }

    /// Write via a temporary file and rename, so a reader never sees half a manifest.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = super::megatron::tmp_path(path);
        let mut data = serde_json::to_vec_pretty(self).expect("manifest serializes");
        data.push(b'\n');
        let mut f = std::fs::File::create(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
        f.write_all(&data).map_err(|e| CorpusError::io(&tmp, e))?;
        f.sync_all().map_err(|e| CorpusError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| CorpusError::io(path, e))
    }

    /// Why an existing output directory cannot continue with this run, if it cannot.
    pub fn mismatch(&self, other: &Manifest) -> Option<String> {
        if self.format_version != other.format_version {
            return Some(format!(
                "format version {} (this zhllama writes {})",
                self.format_version, other.format_version
            ));
        }
        if self.tokenizer_sha256 != other.tokenizer_sha256 {
            return Some(format!(
                "tokenizer sha256 {} (now {})",
                self.tokenizer_sha256, other.tokenizer_sha256
            ));
        }
        if self.options != other.options {
            return Some(format!(
                "options {} (now {})",
                serde_json::to_string(&self.options).unwrap_or_default(),
                serde_json::to_string(&other.options).unwrap_or_default()
            ));
        }
        let a: Vec<_> = self
            .sources
            .iter()
            .map(|s| (&s.file.path, s.file.bytes))
            .collect();
        let b: Vec<_> = other
            .sources
            .iter()
            .map(|s| (&s.file.path, s.file.bytes))
            .collect();
        if a != b {
            return Some("a different list of input files (or sizes)".into());
        }
        None
    }
}

/// The first key path of `raw` that is absent from `kept` (its round trip through the schema).
/// `options.extra` is free-form and round-trips whole, so it never reports.
fn dropped_field(raw: &serde_json::Value, kept: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (raw, kept) {
        (Value::Object(r), Value::Object(k)) => r.iter().find_map(|(key, v)| {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match k.get(key) {
                None => Some(here),
                Some(kv) => dropped_field(v, kv, &here),
            }
        }),
        (Value::Array(r), Value::Array(k)) => r
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (v, kv))| dropped_field(v, kv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

pub fn shard_name(i: usize) -> String {
    format!("shard-{i:05}")
}
