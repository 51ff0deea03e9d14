//! Bindings for writing a tokenized corpus from ids encoded elsewhere (the datatrove step,
//! `zhllama.datatrove`): Python encodes documents with `encode_batch_flat` and hands the
//! batches to the pipeline's own writer (`corpus::pipeline::ShardSink`), so the shards,
//! counts, shard boundaries, bad-line policy and manifest are those of `tokenize-corpus`,
//! with one home for the format.
//!
//! One call writes a whole output directory: it pulls the batches from a Python iterator,
//! so the writer lives on this call's stack (no self-referencing pyclass) and each batch is
//! written with the GIL released.
//!
//! Resume: an interrupted call leaves `progress.json` (the writer's, at each completed shard).
//! A rerun keeps those shards and asks Python for the batches with the number of documents
//! they hold, which Python passes along without encoding; they are checked against the
//! interrupted run's record (sources, counts, the last shard's end) and dropped.

use crate::error::{detach, IntoPyErr};
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

/// Write the documents of `batches(skip)` into `out_dir` as `tokenize-corpus` writes a corpus;
/// returns `(manifest_json, already_done)`. `skip` is the number of leading documents an
/// interrupted run already wrote (0 on a fresh start). A directory that already holds a
/// finished corpus made with this tokenizer and these options is kept and `batches` not called.
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
    let (lock, start) = detach(py, || open_output(&dir, fresh))?;
    let state = match start {
        Start::Done(done) => return Ok((serde_json::to_string(&done).expect("serializes"), true)),
        Start::Write(state) => state,
    };
    let mut resume = Resume::new(&state);
    let progress = Progress::default();
    let end = state.shards.last().map(|s| s.end).unwrap_or_default();
    let mut sink = ShardSink::new(&cfg, state, end, &progress);
    let mut sources: HashMap<String, usize> = sink
        .state
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.file.path.display().to_string(), i))
        .collect();
    let dtype = sink.state.dtype;
    for (seq, batch) in batches.call1((resume.skip,))?.try_iter()?.enumerate() {
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
            if resume.pending() {
                resume
                    .check(file, lines[i])
                    .map_err(|m| mismatch(&dir, m).into_pyerr())?;
                continue;
            }
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
            // The byte offset is not known to a step that sees documents, not files; this
            // step resumes by document count instead (see `Resume`).
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
    if resume.pending() {
        return Err(mismatch(
            &dir,
            format!(
                "the input now has {} documents, fewer than the {} the interrupted run had written",
                resume.seen, resume.skip
            ),
        )
        .into_pyerr());
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

/// Where a call starts: a finished corpus to keep, or the state to write from (an interrupted
/// run's, or a fresh one).
enum Start {
    Done(Manifest),
    Write(Manifest),
}

/// Why `m` (found in the output directory) cannot continue as this call: sources are met as
/// documents arrive, so only what is known up front is compared.
fn differs(m: &Manifest, fresh: &Manifest) -> Option<String> {
    if m.tokenizer_sha256 != fresh.tokenizer_sha256 {
        Some(format!(
            "tokenizer sha256 {} (now {})",
            m.tokenizer_sha256, fresh.tokenizer_sha256
        ))
    } else if m.options != fresh.options || m.format_version != fresh.format_version {
        Some(format!(
            "options {} (now {})",
            serde_json::to_string(&m.options).unwrap_or_default(),
            serde_json::to_string(&fresh.options).unwrap_or_default()
        ))
    } else {
        None
    }
}

fn mismatch(dir: &Path, message: String) -> CorpusError {
    CorpusError::OutputMismatch {
        path: dir.to_path_buf(),
        message,
    }
}

/// Lock `dir`, then find what it holds: a finished corpus, an interrupted run to continue
/// (its completed shards kept, debris past them removed), or nothing.
fn open_output(dir: &Path, fresh: Manifest) -> Result<(OutputLock, Start), CorpusError> {
    std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
    let lock = OutputLock::acquire(dir)?;
    let manifest = dir.join(MANIFEST);
    if manifest.exists() {
        let done = Manifest::read(&manifest)?;
        return match differs(&done, &fresh) {
            Some(why) => Err(mismatch(dir, format!("already holds a finished corpus made with {why}; choose another output folder or delete it"))),
            None => Ok((lock, Start::Done(done))),
        };
    }
    let progress = dir.join(PROGRESS);
    let state = if progress.exists() {
        let state = Manifest::read(&progress)?;
        if let Some(why) = differs(&state, &fresh) {
            return Err(mismatch(dir, format!("holds an interrupted run made with {why}; rerun it with the same options to resume, or delete the folder")));
        }
        // As tokenize-corpus checks its inputs before resuming: a source file whose size
        // changed is refused (a changed input would give a corpus that is neither run's).
        for src in &state.sources {
            let now = source_file(&src.file.path.display().to_string());
            if now.bytes != src.file.bytes {
                return Err(mismatch(&src.file.path, format!("is {} bytes now, {} when the interrupted run in {} read it: the input changed; delete that folder and rerun", now.bytes, src.file.bytes, dir.display())));
            }
        }
        for shard in &state.shards {
            for ext in ["bin", "idx"] {
                let path = dir.join(format!("{}.{ext}", shard.name));
                if !path.exists() {
                    return Err(mismatch(&path, "is missing, but progress.json lists its shard as complete; delete the folder and rerun".into()));
                }
            }
        }
        state
    } else {
        fresh
    };
    remove_stale_files(dir, state.shards.len())?;
    Ok((lock, Start::Write(state)))
}

/// The documents an interrupted run already wrote, met again: counted per source and checked
/// to be the same ones (same sources and counts, the last one at its last shard's end), so
/// a changed input is refused instead of giving a corpus that is neither run's.
struct Resume {
    skip: u64,
    seen: u64,
    want: Vec<u64>,
    got: Vec<u64>,
    end: (usize, u64),
}

impl Resume {
    fn new(state: &Manifest) -> Self {
        let want: Vec<u64> = state.sources.iter().map(|s| s.counts.lines).collect();
        let end = state.shards.last().map(|s| s.end).unwrap_or_default();
        Resume {
            skip: want.iter().sum(),
            seen: 0,
            got: vec![0; want.len()],
            want,
            end: (end.file, end.line),
        }
    }

    fn pending(&self) -> bool {
        self.seen < self.skip
    }

    fn check(&mut self, file: usize, line: u64) -> Result<(), String> {
        self.seen += 1;
        let changed = |what: String| {
            format!("the documents before the interrupted run's last shard end differ from its ({what}): the input changed; delete the folder and rerun")
        };
        match self.got.get_mut(file) {
            Some(n) => *n += 1,
            None => {
                return Err(changed(format!(
                    "document {} comes from a source it did not read",
                    self.seen
                )))
            }
        }
        if self.seen == self.skip && (self.got != self.want || (file, line) != self.end) {
            return Err(changed(format!(
                "documents per source {:?}, ending at source {file} line {line}; it had {:?}, ending at source {} line {}",
                self.got, self.want, self.end.0, self.end.1
            )));
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_shard_set, m)?)?;
    Ok(())
}
