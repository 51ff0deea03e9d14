//! Bindings for the one document reader: `DocumentReader`, a Python iterator of `str`
//! documents read by the Rust core (`zhllama_core::corpus::Documents`), so every verb that reads
//! text sees the documents `tokenize-corpus` sees. Python wraps it in
//! `zhllama.corpus.inputs.read_documents`, which also expands directories and globs.

use crate::error::detach;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use zhllama_core::corpus::{
    CorpusError, Documents, InputFile, OnBadLine, TableBatches, TableReader,
};

/// Documents handed to Python per GIL release: a chunk of about this many bytes or documents.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_DOCS: usize = 4096;

/// A Python callable `open(path, column, skip) -> iterator of lists of bytes-or-None`.
pub(crate) struct PyTables(pub(crate) Py<PyAny>);

struct PyBatches {
    iter: Py<PyAny>,
    path: PathBuf,
}

fn external(path: &Path, e: PyErr) -> CorpusError {
    CorpusError::External {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl TableReader for PyTables {
    fn open(
        &self,
        path: &Path,
        column: &str,
        skip: u64,
    ) -> Result<Box<dyn TableBatches>, CorpusError> {
        Python::attach(|py| {
            let it = self
                .0
                .call1(py, (path.to_path_buf(), column, skip))
                .map_err(|e| external(path, e))?;
            Ok(Box::new(PyBatches {
                iter: it,
                path: path.to_path_buf(),
            }) as Box<dyn TableBatches>)
        })
    }
}

impl TableBatches for PyBatches {
    fn next_batch(&mut self) -> Result<Option<Vec<Option<Vec<u8>>>>, CorpusError> {
        Python::attach(|py| {
            let it = self.iter.bind(py);
            match it.call_method0("__next__") {
                Ok(batch) => batch
                    .extract::<Vec<Option<Vec<u8>>>>()
                    .map(Some)
                    .map_err(|e| external(&self.path, e)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => Ok(None),
                Err(e) => Err(external(&self.path, e)),
            }
        })
    }
}

/// `"fail"` / `"skip"` → [`OnBadLine`], parsed once here; anything else is a `ValueError`
/// naming the valid values.
pub(crate) fn parse_on_bad_line(value: &str) -> PyResult<OnBadLine> {
    value.parse().map_err(PyValueError::new_err)
}

/// Open every input (kind from the name, size from the file system) before reading starts, so a
/// missing or unsupported file fails at once, not after minutes of reading the ones before it.
pub(crate) fn input_files(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Vec<InputFile>> {
    detach(py, || {
        paths
            .iter()
            .map(|p| InputFile::from_path(p))
            .collect::<Result<Vec<_>, _>>()
    })
}

/// An iterator of the documents of `paths` (in order), with counters of what was skipped.
#[pyclass(name = "DocumentReader", module = "zhllama._native")]
struct PyDocumentReader {
    /// A mutex only because pyclasses must be `Sync` (the open file streams are `Send` only);
    /// `__next__` holds `&mut self`, so it never waits on it.
    docs: Mutex<Documents<'static>>,
    ready: VecDeque<String>,
    /// An error met after the documents in `ready`: raised once they have been yielded.
    error: Option<CorpusError>,
}

#[pymethods]
impl PyDocumentReader {
    #[new]
    #[pyo3(signature = (paths, *, text_field="text", on_bad_line="fail", table_reader=None))]
    fn new(
        py: Python<'_>,
        paths: Vec<PathBuf>,
        text_field: &str,
        on_bad_line: &str,
        table_reader: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let policy = parse_on_bad_line(on_bad_line)?;
        let inputs = input_files(py, paths)?;
        let tables = table_reader.map(|t| Box::new(PyTables(t)) as Box<dyn TableReader>);
        Ok(PyDocumentReader {
            docs: Mutex::new(Documents::new(inputs, text_field, policy, tables)),
            ready: VecDeque::new(),
            error: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<String>> {
        if self.ready.is_empty() && self.error.is_none() {
            let docs = self.docs.get_mut().unwrap_or_else(|e| e.into_inner());
            let (chunk, error) = detach(py, || Ok::<_, PyErr>(read_chunk(docs)))?;
            self.ready = chunk;
            self.error = error;
        }
        if let Some(doc) = self.ready.pop_front() {
            return Ok(Some(doc));
        }
        match self.error.take() {
            Some(e) => Err(crate::error::IntoPyErr::into_pyerr(e)),
            None => Ok(None),
        }
    }

    /// The input files, in reading order.
    #[getter]
    fn files(&self) -> Vec<PathBuf> {
        self.lock()
            .inputs()
            .iter()
            .map(|f| f.path.clone())
            .collect()
    }

    /// Documents read so far (yielded or about to be).
    #[getter]
    fn documents(&self) -> u64 {
        self.lock().counts.docs
    }

    /// Lines (Parquet rows) read so far.
    #[getter]
    fn lines(&self) -> u64 {
        self.lock().counts.lines
    }

    /// Lines skipped under `on_bad_line="skip"`.
    #[getter]
    fn bad_lines(&self) -> u64 {
        self.lock().counts.bad_lines
    }

    /// Lines skipped because they are empty or only whitespace.
    #[getter]
    fn empty_docs(&self) -> u64 {
        self.lock().counts.empty_docs
    }

    /// Documents with invalid UTF-8 (each invalid byte became U+FFFD, as in sentencepiece).
    #[getter]
    fn invalid_utf8_docs(&self) -> u64 {
        self.lock().counts.invalid_utf8_docs
    }

    #[getter]
    fn invalid_utf8_bytes(&self) -> u64 {
        self.lock().counts.invalid_utf8_bytes
    }

    /// On-disk bytes read so far (compressed bytes of a compressed file; a Parquet file once
    /// read whole): the measure of a progress bar whose total is the files' size.
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.lock().bytes_read()
    }
}

impl PyDocumentReader {
    fn lock(&self) -> MutexGuard<'_, Documents<'static>> {
        self.docs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read up to one chunk of documents; an error ends the chunk and is kept for after it.
fn read_chunk(docs: &mut Documents<'static>) -> (VecDeque<String>, Option<CorpusError>) {
    let mut chunk = VecDeque::new();
    let mut bytes = 0;
    while bytes < CHUNK_BYTES && chunk.len() < CHUNK_DOCS {
        match docs.next_doc() {
            Ok(Some(doc)) => {
                bytes += doc.text.len();
                chunk.push_back(doc.into_string());
            }
            Ok(None) => break,
            Err(e) => return (chunk, Some(e)),
        }
    }
    (chunk, None)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ON_BAD_LINE", OnBadLine::VALUES.to_vec())?;
    m.add_class::<PyDocumentReader>()
}
