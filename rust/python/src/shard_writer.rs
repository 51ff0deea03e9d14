//! Bindings for writing a tokenized corpus from ids encoded elsewhere (the datatrove step,
//! `zhllama.datatrove`): Python encodes documents with `encode_batch_flat` and hands the
//! batches to the pipeline's own writer (`corpus::pipeline::ShardSink`), so the shards,
//! counts, shard boundaries, bad-line policy and manifest are those of `tokenize-corpus`,
//! with one home for the format.
//!
//! One call writes a whole output directory: it pulls the batches from a Python iterator,
//! so the writer lives on this call's stack (no self-referencing pyclass) and each batch is
//! written with the GIL released.

use crate::error::detach;
use crate::reader::parse_on_bad_line;
use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use zhllama_core::corpus::encode::{Encoded, Outcome};
use zhllama_core::corpus::input::{detect_kind, Compression, Format, InputFile};
use zhllama_core::corpus::lock::OutputLock;
use zhllama_core::corpus::manifest::{Manifest, Position, Source, MANIFEST, PROGRESS};
use zhllama_core::corpus::pipeline::{fresh_manifest, remove_stale_files, ShardSink};
use zhllama_core::corpus::reader::Record;
use zhllama_core::corpus::record::document_text;
use zhllama_core::corpus::{CorpusError, Options, Progress, TokenizeConfig};
use zhllama_core::AnyTokenizer;

/// One batch as the Python step sends it: per document its text (`""` for a bad one), its
/// ids (`ids[offsets[i]:offsets[i + 1]]`, BOS/EOS included), source, 1-based line in that
/// source, and the reason it is malformed (or `None`).
type Batch<'py> = (
    Vec<PyBackedStr>,
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, i64>,
    Vec<String>,
    Vec<u64>,
    Vec<Option<String>>,
);

/// A source named by a document: described like a `tokenize-corpus` input when it is a local
/// file zhllama reads; otherwise (a remote URL, a dataset name) by its name, size 0.
fn source_file(name: &str) -> InputFile {
    let path = Path::new(name);
    InputFile::from_path(path).unwrap_or_else(|_| {
        let (format, compression) = detect_kind(path).unwrap_or((Format::Txt, Compression::None));
        InputFile {
            path: path.to_path_buf(),
            format,
            compression,
            bytes: 0,
        }
    })
}

/// Whether a document holds no text, by the rule every reader of the core applies.
fn blank(text: &str) -> bool {
    document_text(Format::Txt, text.as_bytes(), "").is_ok_and(|d| d.is_empty())
}

/// Write the documents of `batches` into `out_dir` as `tokenize-corpus` writes a corpus;
/// returns `(manifest_json, already_done)`. A directory that already holds a finished corpus
/// made with this tokenizer and these options is kept and `batches` is not read.
#[pyfunction]
#[pyo3(signature = (tokenizer_path, out_dir, batches, *, text_field, append_eos, add_bos, shard_size, on_bad_line, tokenizer_sha256, extra_json))]
#[allow(clippy::too_many_arguments)]
fn write_shard_set(
    py: Python<'_>,
    tokenizer_path: PathBuf,
    out_dir: PathBuf,
    batches: &Bound<'_, PyAny>,
    text_field: String,
    append_eos: bool,
    add_bos: bool,
    shard_size: u64,
    on_bad_line: &str,
    tokenizer_sha256: String,
    extra_json: String,
) -> PyResult<(String, bool)> {
    let on_bad_line = parse_on_bad_line(on_bad_line)?;
    let extra =
        serde_json::from_str(&extra_json).map_err(|e| PyValueError::new_err(e.to_string()))?;
    // The manifest's vocabulary, dtype and BOS/EOS come from the loader tokenize-corpus uses.
    let tokenizer = detach(py, || AnyTokenizer::from_path(&tokenizer_path))?;
    let cfg = TokenizeConfig {
        inputs: Vec::new(),
        out_dir,
        threads: 1,
        options: Options {
            text_field,
            append_eos,
            add_bos,
            shard_size,
            on_bad_line,
            extra,
        },
        tokenizer_sha256,
    };
    let fresh = fresh_manifest(&cfg, &tokenizer);
    let dir = cfg.out_dir.clone();
    let (lock, done) = detach(py, || open_output(&dir, &fresh))?;
    if let Some(done) = done {
        return Ok((serde_json::to_string(&done).expect("serializes"), true));
    }
    let progress = Progress::default();
    let mut sink = ShardSink::new(&cfg, fresh, Position::default(), &progress);
    let mut sources: HashMap<String, usize> = HashMap::new();
    let dtype = sink.state.dtype;
    for (seq, batch) in batches.try_iter()?.enumerate() {
        let (texts, ids, offsets, names, lines, bad): Batch<'_> = batch?.extract()?;
        let n = texts.len();
        let (ids, offsets) = (ids.as_slice()?, offsets.as_slice()?);
        if [names.len(), lines.len(), bad.len()] != [n; 3] || offsets.len() != n + 1 {
            return Err(PyValueError::new_err(format!(
                "a batch of {n} texts has {} sources, {} lines, {} reasons and {} offsets (want {n}, {n}, {n}, {})",
                names.len(), lines.len(), bad.len(), offsets.len(), n + 1
            )));
        }
        let mut enc = Encoded {
            seq: seq as u64,
            bytes: Vec::new(),
            records: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
            error: None,
        };
        for i in 0..n {
            let file = *sources.entry(names[i].clone()).or_insert_with(|| {
                sink.state.sources.push(Source {
                    file: source_file(&names[i]),
                    counts: Default::default(),
                });
                sink.state.sources.len() - 1
            });
            let (a, b) = (offsets[i], offsets[i + 1]);
            let outcome = if let Some(reason) = &bad[i] {
                Outcome::Bad(reason.clone())
            } else if blank(&texts[i]) {
                Outcome::Empty
            } else if 0 <= a && a <= b && b as usize <= ids.len() {
                let before = enc.bytes.len();
                dtype.extend_bytes(&ids[a as usize..b as usize], &mut enc.bytes);
                Outcome::Doc {
                    bytes: enc.bytes.len() - before,
                    tokens: (b - a) as u64,
                    invalid_bytes: 0,
                }
            } else {
                return Err(PyValueError::new_err(format!(
                    "offsets[{i}:{}] = [{a}, {b}] outside the batch's {} ids",
                    i + 2,
                    ids.len()
                )));
            };
            // The byte offset is not known to a step that sees documents, not files; resume
            // inside a task is the file-level step's (it reads the files itself).
            let after = Position {
                file,
                line: lines[i],
                offset: 0,
            };
            enc.records.push(Record {
                start: 0,
                end: 0,
                file,
                line: lines[i],
                null: false,
                after,
            });
            enc.outcomes.push(outcome);
        }
        detach(py, || sink.write_chunk(enc))?;
    }
    let manifest = detach(py, || {
        let m = sink.finish()?;
        m.write(&dir.join(MANIFEST))?;
        let _ = std::fs::remove_file(dir.join(PROGRESS));
        Ok::<_, CorpusError>(m)
    })?;
    drop(lock);
    Ok((serde_json::to_string(&manifest).expect("serializes"), false))
}

/// Lock `dir` and either find the finished corpus it already holds, or clear what an
/// earlier, unfinished attempt left (this step restarts a task from its first document).
fn open_output(
    dir: &Path,
    fresh: &Manifest,
) -> Result<(OutputLock, Option<Manifest>), CorpusError> {
    std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
    let lock = OutputLock::acquire(dir)?;
    let manifest = dir.join(MANIFEST);
    if manifest.exists() {
        let done = Manifest::read(&manifest)?;
        // Sources are met as documents arrive, so only what is known up front is compared.
        let why = if done.tokenizer_sha256 != fresh.tokenizer_sha256 {
            Some(format!(
                "tokenizer sha256 {} (now {})",
                done.tokenizer_sha256, fresh.tokenizer_sha256
            ))
        } else if done.options != fresh.options || done.format_version != fresh.format_version {
            Some(format!(
                "options {} (now {})",
                serde_json::to_string(&done.options).unwrap_or_default(),
                serde_json::to_string(&fresh.options).unwrap_or_default()
            ))
        } else {
            None
        };
        return match why {
            Some(why) => Err(CorpusError::OutputMismatch {
                path: dir.to_path_buf(),
                message: format!("already holds a finished corpus made with {why}; choose another output folder or delete it"),
            }),
            None => Ok((lock, Some(done))),
        };
    }
    let progress = dir.join(PROGRESS);
    if progress.exists() {
        std::fs::remove_file(&progress).map_err(|e| CorpusError::io(&progress, e))?;
    }
    remove_stale_files(dir, 0)?;
    Ok((lock, None))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_shard_set, m)?)?;
    Ok(())
}
