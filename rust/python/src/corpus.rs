//! Bindings for the corpus domain: `tokenize-corpus` as a background job.
//!
//! The pipeline runs on its own Rust thread; Python polls `wait(timeout)` (GIL released) and
//! `progress()` to draw the bar, and calls `cancel()` on Ctrl-C. That keeps signal handling
//! in Python's main thread, where it works, and never holds the GIL during the run. The job
//! is also a context manager and cancels itself when dropped, so it cannot outlive a failure.
//! Parquet is read by pyarrow through a Python callable (see `zhllama.corpus`), so the wheel
//! does not compile a Parquet stack for one input format.

use crate::error::{detach, panic_message, CorpusError as PyCorpusError, InternalError, IntoPyErr};
use crate::reader::{input_files, parse_on_bad_line, PyTables};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError};
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use zhllama_core::corpus::{
    self, CorpusError, Options, Progress, RunSummary, TableReader, TokenizeConfig,
};
use zhllama_core::AnyTokenizer;

impl IntoPyErr for CorpusError {
    fn into_pyerr(self) -> PyErr {
        match &self {
            CorpusError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(self.to_string())
            }
            CorpusError::Internal { .. } => InternalError::new_err(self.to_string()),
            _ => PyCorpusError::new_err(self.to_string()),
        }
    }
}

type JobResult = Result<RunSummary, CorpusError>;
type JobOutcome = std::thread::Result<JobResult>;

/// Where a job is: its thread still owned, its outcome joined, or that outcome handed out.
enum JobState {
    Running(JoinHandle<JobOutcome>),
    Joined(Box<JobOutcome>),
    Taken,
}

/// A running `tokenize-corpus`.
///
/// Its thread never outlives the handle: leaving a `with` block, or dropping the last
/// reference (e.g. while an exception unwinds), cancels the run and joins the thread, so a
/// failed Python caller never leaves Rust writing the output directory behind its back.
#[pyclass(name = "CorpusJob", module = "zhllama._native", frozen)]
struct PyCorpusJob {
    progress: Arc<Progress>,
    state: Mutex<JobState>,
}

impl PyCorpusJob {
    fn set_cancel(&self) {
        self.progress
            .cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Join the thread if it is still owned (call without the GIL: a Parquet read needs it).
    fn join(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let JobState::Running(_) = &*state {
            let JobState::Running(handle) = std::mem::replace(&mut *state, JobState::Taken) else {
                unreachable!()
            };
            *state = JobState::Joined(Box::new(handle.join().and_then(|r| r)));
        }
    }
}

impl Drop for PyCorpusJob {
    fn drop(&mut self) {
        self.set_cancel();
        let running = matches!(
            *self.state.get_mut().unwrap_or_else(|e| e.into_inner()),
            JobState::Running(_)
        );
        if running {
            // Dealloc runs with the GIL held; the job's Parquet reader may be waiting for it.
            Python::attach(|py| py.detach(|| self.join()));
        }
    }
}

#[pymethods]
impl PyCorpusJob {
    /// Wait up to `timeout` seconds without the GIL; `True` once the run has ended.
    /// Signals are checked every tick, so Ctrl-C raises `KeyboardInterrupt` here within
    /// 5 ms rather than after `timeout` (by which time a short run may have finished).
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let state = &self.state;
        detach(py, || {
            let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
            loop {
                let finished = match &*state.lock().unwrap() {
                    JobState::Running(h) => h.is_finished(),
                    _ => true,
                };
                if finished || std::time::Instant::now() >= deadline {
                    return Ok::<bool, PyErr>(finished);
                }
                // Short ticks: the run's end is noticed within 5 ms (a whole tokenize-corpus
                // of 100 MB takes under a second, so a 20 ms tick was a visible share of it).
                std::thread::sleep(Duration::from_millis(5));
                Python::attach(|py| py.check_signals())?;
            }
        })
    }

    /// `(bytes_read, total_bytes, docs, tokens)` so far.
    fn progress(&self) -> (u64, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let p = &self.progress;
        (
            p.bytes_read.load(Relaxed),
            p.total_bytes.load(Relaxed),
            p.docs.load(Relaxed),
            p.tokens.load(Relaxed),
        )
    }

    /// Ask the run to stop at the next chunk; completed shards stay, a rerun resumes.
    fn cancel(&self) {
        self.set_cancel();
    }

    /// Wait for the end; `(manifest_json, already_done, resumed_shards)` or the run's error.
    fn result(&self, py: Python<'_>) -> PyResult<(String, bool, usize)> {
        py.detach(|| self.join());
        let outcome = match std::mem::replace(&mut *self.state.lock().unwrap(), JobState::Taken) {
            JobState::Joined(outcome) => *outcome,
            _ => return Err(PyRuntimeError::new_err("result() already taken")),
        };
        match outcome {
            Ok(Ok(s)) => Ok((
                serde_json::to_string(&s.manifest).expect("serializes"),
                s.already_done,
                s.resumed_shards,
            )),
            Ok(Err(e)) => Err(e.into_pyerr()),
            Err(panic) => Err(InternalError::new_err(panic_message(panic))),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Cancel (a no-op once the run has ended) and join: the job ends with the block.
    /// Returns `False`, so an exception raised in the block propagates.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.set_cancel();
        py.detach(|| self.join());
        false
    }
}

/// Start tokenizing `inputs` (already expanded and ordered) into `out_dir`.
#[pyfunction]
#[pyo3(signature = (tokenizer_path, inputs, out_dir, *, threads, text_field, append_eos, add_bos, shard_size, on_bad_line, tokenizer_sha256, extra_json, table_reader=None))]
#[allow(clippy::too_many_arguments)]
fn tokenize_corpus_start(
    py: Python<'_>,
    tokenizer_path: PathBuf,
    inputs: Vec<PathBuf>,
    out_dir: PathBuf,
    threads: i64,
    text_field: String,
    append_eos: bool,
    add_bos: bool,
    shard_size: u64,
    on_bad_line: &str,
    tokenizer_sha256: String,
    extra_json: String,
    table_reader: Option<Py<PyAny>>,
) -> PyResult<PyCorpusJob> {
    let threads = crate::batch::check_threads("--threads", threads, "")?;
    let on_bad_line = parse_on_bad_line(on_bad_line)?;
    let tokenizer = detach(py, || AnyTokenizer::from_path(&tokenizer_path))?;
    let inputs = input_files(py, inputs)?;
    let extra = serde_json::from_str(&extra_json)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let cfg = TokenizeConfig {
        inputs,
        out_dir,
        threads,
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
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let tables = table_reader.map(PyTables);
    let handle = std::thread::Builder::new()
        .name("zhllama-corpus".into())
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                corpus::tokenize_corpus(
                    &cfg,
                    &tokenizer,
                    tables.as_ref().map(|t| t as &dyn TableReader),
                    &p,
                )
            }))
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the corpus thread: {e}")))?;
    Ok(PyCorpusJob {
        progress,
        state: Mutex::new(JobState::Running(handle)),
    })
}

/// `--merge-manifests`: join finished parts into `out`; the merged manifest as JSON.
#[pyfunction]
fn corpus_merge_parts(py: Python<'_>, parts: Vec<PathBuf>, out: PathBuf) -> PyResult<String> {
    let merged = detach(py, || corpus::merge_parts(&parts, &out))?;
    Ok(serde_json::to_string(&merged).expect("manifest serializes"))
}

/// `"txt"`, `"jsonl"` or `"parquet"` for a file name we read, else `None`.
#[pyfunction]
fn corpus_input_format(path: PathBuf) -> Option<&'static str> {
    corpus::detect_kind(&path).map(|(f, _)| match f {
        corpus::Format::Txt => "txt",
        corpus::Format::Jsonl => "jsonl",
        corpus::Format::Parquet => "parquet",
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCorpusJob>()?;
    m.add_function(wrap_pyfunction!(tokenize_corpus_start, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_input_format, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_merge_parts, m)?)?;
    Ok(())
}
