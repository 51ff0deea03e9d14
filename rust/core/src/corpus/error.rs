//! The corpus module's one error type. Every variant names the file (and line, where there is
//! one) and says what to do, because these errors surface after minutes of work on a 20 GB
//! corpus and the user must be able to fix the input without reading code.

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CorpusError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: truncated or corrupt {codec} stream ({source}); re-download or recompress the file, or leave it out of --input", path.display())]
    Compressed {
        path: PathBuf,
        codec: &'static str,
        source: std::io::Error,
    },

    #[error("{}:{line}: {reason}; fix or remove the line, or pass --on-bad-line skip to skip and count such lines", path.display())]
    BadLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error("{}: unsupported input type; expected .txt, .jsonl, .jsonl.gz, .jsonl.zst (also .txt.gz/.txt.zst) or .parquet", path.display())]
    UnsupportedInput { path: PathBuf },

    #[error("{}: parquet input needs the Python front end (zhllama tokenize-corpus), which reads it with pyarrow", path.display())]
    NoParquetReader { path: PathBuf },

    #[error("{}: {message}", path.display())]
    External { path: PathBuf, message: String },

    #[error("{}: {message}", path.display())]
    OutputMismatch { path: PathBuf, message: String },

    #[error("{message}")]
    Options { message: String },

    #[error("{}: corrupt progress or manifest file ({source}); delete the output directory and rerun", path.display())]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("{}: another run is writing this directory ({holder}); wait for it to finish, or give each run its own {flag}", path.display())]
    Locked {
        path: PathBuf,
        holder: String,
        /// The option that names the directory, as the refused command spelled it.
        flag: String,
    },

    #[error("{}: field `{field}` is not in this zhllama's manifest schema (format version {version}), so it would be lost; use the zhllama version that wrote the file", path.display())]
    UnknownField {
        path: PathBuf,
        field: String,
        version: u32,
    },

    #[error("{}: {message}", path.display())]
    MergeRefused { path: PathBuf, message: String },

    #[error("internal error while encoding (please report it with the input): {message}")]
    Internal { message: String },

    #[error("cancelled; rerun the same command to resume from the last completed shard")]
    Cancelled,
}

impl CorpusError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CorpusError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = CorpusError> = std::result::Result<T, E>;
