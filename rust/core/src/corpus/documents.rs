//! The one document reader for every verb that reads text without writing shards: `stats`,
//! `train-spm`, `pretrain --train-file` and `eval --text-file` (through the Python binding
//! `DocumentReader`).
//!
//! It is built from the same parts as `tokenize-corpus`'s parallel reading stage, so both see
//! the same documents: [`InputFile::open_lines`] (formats, gzip/zstd), the [`TableReader`]
//! callback (Parquet), [`document_text`] (JSON field, sentencepiece's invalid-UTF-8 rule,
//! blank lines) and [`OnBadLine::check`] (the bad-line policy, `file:line` errors). Only the
//! scheduling differs: here one caller pulls documents in order.

use super::error::Result;
use super::input::{Format, InputFile};
use super::manifest::Counts;
use super::reader::{TableBatches, TableReader};
use super::record::{document_text, null_reason, repair_utf8, OnBadLine};
use super::CorpusError;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One document, in input order.
pub struct Document {
    /// The text: a `.txt` line as read (possibly invalid UTF-8), or a JSON/Parquet string
    /// already repaired with sentencepiece's per-byte rule.
    pub text: Vec<u8>,
    /// Bytes sentencepiece turns into U+FFFD (0 for valid UTF-8).
    pub invalid_bytes: u64,
    /// Index into the reader's inputs, and the 1-based line (row) in that file.
    pub file: usize,
    pub line: u64,
}

impl Document {
    /// The text as sentencepiece sees it: each invalid byte is one U+FFFD.
    pub fn into_string(self) -> String {
        String::from_utf8(self.text).unwrap_or_else(|e| repair_utf8(e.as_bytes()))
    }
}

enum Source {
    Closed,
    Lines(super::input::LineSource),
    Table {
        batches: Box<dyn TableBatches>,
        rows: VecDeque<Option<Vec<u8>>>,
    },
}

/// Documents of `inputs`, in order; [`Documents::counts`] says what was read and skipped.
pub struct Documents<'a> {
    inputs: Vec<InputFile>,
    text_field: String,
    on_bad_line: OnBadLine,
    tables: Option<Box<dyn TableReader + 'a>>,
    /// The file `source` reads (or the next to open when it is closed).
    file: usize,
    source: Source,
    line: u64,
    buf: Vec<u8>,
    /// `lines`, `docs`, `bad_lines`, `empty_docs`, `invalid_utf8_*` (no `tokens`: nothing
    /// is encoded here), with the meaning they have in `manifest.json`.
    pub counts: Counts,
    finished: bool,
    /// On-disk bytes read so far (compressed bytes for compressed files; a Parquet file counts
    /// whole once its rows are read), what a progress bar measures.
    bytes_read: Arc<AtomicU64>,
}

impl<'a> Documents<'a> {
    pub fn new(
        inputs: Vec<InputFile>,
        text_field: &str,
        on_bad_line: OnBadLine,
        tables: Option<Box<dyn TableReader + 'a>>,
    ) -> Self {
        Documents {
            inputs,
            text_field: text_field.to_owned(),
            on_bad_line,
            tables,
            file: 0,
            source: Source::Closed,
            line: 0,
            buf: Vec::new(),
            counts: Counts::default(),
            finished: false,
            bytes_read: Arc::new(AtomicU64::new(0)),
        }
    }

    /// On-disk bytes read so far: the input files' total once every document is read. Reading
    /// runs ahead of the documents returned by up to one buffer (and a Parquet file counts
    /// when its last batch has been read).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    pub fn inputs(&self) -> &[InputFile] {
        &self.inputs
    }

    /// The next document, `None` at the end. After an error (a bad line under
    /// [`OnBadLine::Fail`], an unreadable file) the reader is finished.
    pub fn next_doc(&mut self) -> Result<Option<Document>> {
        if self.finished {
            return Ok(None);
        }
        let r = self.read_next();
        if !matches!(r, Ok(Some(_))) {
            self.finished = true;
            self.source = Source::Closed;
        }
        r
    }

    fn read_next(&mut self) -> Result<Option<Document>> {
        loop {
            let Some(null) = self.next_record()? else {
                return Ok(None);
            };
            self.counts.lines += 1;
            let file = &self.inputs[self.file];
            let parsed = if null {
                Err(null_reason(&self.text_field))
            } else {
                document_text(file.format, &self.buf, &self.text_field)
            };
            match parsed {
                Err(reason) => {
                    self.on_bad_line.check(&file.path, self.line, reason)?;
                    self.counts.bad_lines += 1;
                }
                Ok(doc) if doc.is_empty() => self.counts.empty_docs += 1,
                Ok(doc) => {
                    let invalid_bytes = doc.invalid_bytes;
                    self.counts.docs += 1;
                    if invalid_bytes > 0 {
                        self.counts.invalid_utf8_docs += 1;
                        self.counts.invalid_utf8_bytes += invalid_bytes;
                    }
                    return Ok(Some(Document {
                        text: doc.into_bytes(),
                        invalid_bytes,
                        file: self.file,
                        line: self.line,
                    }));
                }
            }
        }
    }

    /// Load the next line (row) into `buf`: `Some(is_null)`, or `None` after the last file.
    fn next_record(&mut self) -> Result<Option<bool>> {
        loop {
            match &mut self.source {
                Source::Closed => {
                    if self.file >= self.inputs.len() {
                        return Ok(None);
                    }
                    self.open()?;
                    continue;
                }
                Source::Lines(src) => {
                    self.buf.clear();
                    if src.read_line(&mut self.buf)? > 0 {
                        self.line += 1;
                        return Ok(Some(false));
                    }
                }
                Source::Table { batches, rows } => {
                    if let Some(value) = rows.pop_front() {
                        self.buf.clear();
                        self.line += 1;
                        let null = value.is_none();
                        self.buf.extend(value.unwrap_or_default());
                        return Ok(Some(null));
                    }
                    if let Some(batch) = batches.next_batch()? {
                        rows.extend(batch);
                        continue;
                    }
                }
            }
            // The current file is exhausted.
            if matches!(self.source, Source::Table { .. }) {
                let bytes = self.inputs[self.file].bytes;
                self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            }
            self.source = Source::Closed;
            self.file += 1;
        }
    }

    fn open(&mut self) -> Result<()> {
        let file = &self.inputs[self.file];
        self.line = 0;
        self.source = if file.format == Format::Parquet {
            let tables = self
                .tables
                .as_ref()
                .ok_or_else(|| CorpusError::NoParquetReader {
                    path: file.path.clone(),
                })?;
            Source::Table {
                batches: tables.open(&file.path, &self.text_field, 0)?,
                rows: VecDeque::new(),
            }
        } else {
            Source::Lines(file.open_lines(0, self.bytes_read.clone())?)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tests::tmpdir;
    use std::path::Path;

    fn write(dir: &Path, name: &str, data: &[u8]) -> InputFile {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        InputFile::from_path(&p).unwrap()
    }

    fn all(d: &mut Documents) -> Result<Vec<String>> {
        let mut out = Vec::new();
        while let Some(doc) = d.next_doc()? {
            out.push(doc.into_string());
        }
        Ok(out)
    }

    #[test]
    fn reads_formats_in_order_with_one_policy() {
        let dir = tmpdir("docs-formats");
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"{\"text\": \"\xe4\xb8\x89\"}\n{\"text\": \"  \"}\n")
                .unwrap();
            e.finish().unwrap()
        };
        let inputs = vec![
            write(&dir, "a.txt", b"one\n  \n\ntwo\xff\r\n"),
            write(&dir, "b.jsonl.gz", &gz),
            write(
                &dir,
                "c.jsonl",
                b"{\"text\": \"x\"}\n{\"text\": 1}\n{\"text\": \"y\"}\n",
            ),
        ];
        let mut d = Documents::new(inputs.clone(), "text", OnBadLine::Skip, None);
        assert_eq!(all(&mut d).unwrap(), ["one", "two\u{FFFD}", "三", "x", "y"]);
        let c = &d.counts;
        assert_eq!(
            (
                c.lines,
                c.docs,
                c.empty_docs,
                c.bad_lines,
                c.invalid_utf8_docs
            ),
            (9, 5, 3, 1, 1)
        );

        let mut d = Documents::new(inputs, "text", OnBadLine::Fail, None);
        let err = all(&mut d).err().unwrap().to_string();
        assert!(
            err.contains("c.jsonl:2: field \"text\" is a number"),
            "{err}"
        );
        assert_eq!(d.counts.docs, 4);
        assert!(d.next_doc().unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parquet_needs_a_table_reader() {
        let dir = tmpdir("docs-parquet");
        let inputs = vec![write(&dir, "t.parquet", b"PAR1")];
        let mut d = Documents::new(inputs, "text", OnBadLine::Fail, None);
        assert!(matches!(
            d.next_doc(),
            Err(CorpusError::NoParquetReader { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
