//! The reading stage: input files → numbered chunks of raw lines (about 1 MB each), in input
//! order. Parsing and encoding happen in the workers, so this thread only moves bytes.

use super::error::{CorpusError, Result};
use super::input::{Format, InputFile};
use super::manifest::Position;
use crossbeam_channel::{Receiver, Sender};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A chunk closes at this many bytes of text: large enough to amortise channel traffic,
/// small enough that (chunks in flight × size) stays a few MB.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_RECORDS: usize = 8192;

/// Rows of one column of a table file (Parquet), produced outside the core (pyarrow).
pub trait TableReader: Send + Sync {
    /// Open `path` and yield the `column` values from row `skip` on; `None` is a null.
    fn open(&self, path: &Path, column: &str, skip: u64) -> Result<Box<dyn TableBatches>>;
}

/// A borrowed reader is a reader (so [`super::Documents`] can hold a caller's `&dyn`).
impl<T: TableReader + ?Sized> TableReader for &T {
    fn open(&self, path: &Path, column: &str, skip: u64) -> Result<Box<dyn TableBatches>> {
        (**self).open(path, column, skip)
    }
}

pub trait TableBatches: Send {
    /// The next batch of values, `None` at the end.
    fn next_batch(&mut self) -> Result<Option<Vec<Option<Vec<u8>>>>>;
}

pub struct Record {
    pub start: usize,
    pub end: usize,
    pub file: usize,
    /// 1-based line (or row) number, for error messages.
    pub line: u64,
    /// A null value from a table: reported as a bad line.
    pub null: bool,
    /// Input position just after this record: the resume point if a shard ends here.
    pub after: Position,
}

pub struct Chunk {
    pub seq: u64,
    pub data: Vec<u8>,
    pub records: Vec<Record>,
    /// A read error after `records`: reported once the records before it are written.
    pub error: Option<CorpusError>,
}

pub struct ReadStage<'a> {
    pub inputs: &'a [InputFile],
    pub text_field: &'a str,
    pub tables: Option<&'a dyn TableReader>,
    pub start: Position,
    pub bytes_read: Arc<AtomicU64>,
    pub cancel: &'a AtomicBool,
    pub chunks: Sender<Chunk>,
    /// One ticket per chunk in flight anywhere in the pipeline; the writer returns them. This
    /// is what bounds memory: a slow chunk (a 200 MB line) cannot let the others pile up.
    pub tickets: Receiver<()>,
}

impl ReadStage<'_> {
    pub fn run(self) {
        let mut chunk = Chunk {
            seq: 0,
            data: Vec::new(),
            records: Vec::new(),
            error: None,
        };
        let result = self.read_all(&mut chunk);
        if let Err(e) = result {
            chunk.error = Some(e);
        }
        if !chunk.records.is_empty() || chunk.error.is_some() {
            let _ = self.send(chunk);
        }
    }

    /// Send `chunk` once a ticket is free; `false` when the pipeline has shut down.
    fn send(&self, chunk: Chunk) -> bool {
        self.tickets.recv().is_ok() && self.chunks.send(chunk).is_ok()
    }

    fn flush(&self, chunk: &mut Chunk) -> Result<()> {
        let seq = chunk.seq;
        let full = std::mem::replace(
            chunk,
            Chunk {
                seq: seq + 1,
                data: Vec::new(),
                records: Vec::new(),
                error: None,
            },
        );
        if self.cancel.load(Ordering::Relaxed) || !self.send(full) {
            return Err(CorpusError::Cancelled);
        }
        Ok(())
    }

    fn read_all(&self, chunk: &mut Chunk) -> Result<()> {
        for (fi, file) in self.inputs.iter().enumerate() {
            if fi < self.start.file {
                self.bytes_read.fetch_add(file.bytes, Ordering::Relaxed);
                continue;
            }
            let at = if fi == self.start.file {
                self.start
            } else {
                Position {
                    file: fi,
                    line: 0,
                    offset: 0,
                }
            };
            if file.format == Format::Parquet {
                self.read_table(fi, file, at, chunk)?;
            } else {
                self.read_lines(fi, file, at, chunk)?;
            }
        }
        Ok(())
    }

    fn read_lines(
        &self,
        fi: usize,
        file: &InputFile,
        at: Position,
        chunk: &mut Chunk,
    ) -> Result<()> {
        let mut src = file.open_lines(at.offset, self.bytes_read.clone())?;
        let (mut line, mut offset) = (at.line, at.offset);
        loop {
            let start = chunk.data.len();
            let n = src.read_line(&mut chunk.data)?;
            if n == 0 {
                return Ok(());
            }
            line += 1;
            offset += n as u64;
            let after = Position {
                file: fi,
                line,
                offset,
            };
            chunk.records.push(Record {
                start,
                end: chunk.data.len(),
                file: fi,
                line,
                null: false,
                after,
            });
            if chunk.data.len() >= CHUNK_BYTES || chunk.records.len() >= CHUNK_RECORDS {
                self.flush(chunk)?;
            }
        }
    }

    fn read_table(
        &self,
        fi: usize,
        file: &InputFile,
        at: Position,
        chunk: &mut Chunk,
    ) -> Result<()> {
        let tables = self.tables.ok_or_else(|| CorpusError::NoParquetReader {
            path: file.path.clone(),
        })?;
        let mut batches = tables.open(&file.path, self.text_field, at.line)?;
        let mut line = at.line;
        while let Some(batch) = batches.next_batch()? {
            for value in batch {
                let start = chunk.data.len();
                let null = value.is_none();
                if let Some(v) = value {
                    chunk.data.extend_from_slice(&v);
                }
                line += 1;
                let after = Position {
                    file: fi,
                    line,
                    offset: 0,
                };
                chunk.records.push(Record {
                    start,
                    end: chunk.data.len(),
                    file: fi,
                    line,
                    null,
                    after,
                });
                if chunk.data.len() >= CHUNK_BYTES || chunk.records.len() >= CHUNK_RECORDS {
                    self.flush(chunk)?;
                }
            }
        }
        // Rows are not bytes on disk; count the file once it is read, for progress.
        self.bytes_read.fetch_add(file.bytes, Ordering::Relaxed);
        Ok(())
    }
}
