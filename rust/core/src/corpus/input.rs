//! Input files: kind detection from the name, and opening them as one decompressed byte stream.

use super::error::{CorpusError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How documents are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One document per line.
    Txt,
    /// One JSON object per line; the document is one string field.
    Jsonl,
    /// A column of a Parquet table, read by an external (Python/pyarrow) reader.
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: Format,
    pub compression: Compression,
    /// Size on disk, for progress and for the resume check that inputs did not change.
    pub bytes: u64,
}

/// `(format, compression)` from the file name, or `None` for a name we do not read.
pub fn detect_kind(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let format = if stem.ends_with(".txt") {
        Format::Txt
    } else if stem.ends_with(".jsonl") {
        Format::Jsonl
    } else if stem.ends_with(".parquet") && compression == Compression::None {
        Format::Parquet
    } else {
        return None;
    };
    Some((format, compression))
}

impl InputFile {
    pub fn from_path(path: &Path) -> Result<Self> {
        let (format, compression) =
            detect_kind(path).ok_or_else(|| CorpusError::UnsupportedInput {
                path: path.to_path_buf(),
            })?;
        let bytes = std::fs::metadata(path)
            .map_err(|e| CorpusError::io(path, e))?
            .len();
        Ok(InputFile {
            path: path.to_path_buf(),
            format,
            compression,
            bytes,
        })
    }

    /// Open as a decompressed line stream, positioned `skip` decompressed bytes in (resume).
    /// `consumed` counts on-disk bytes read, which is what progress and ETA are measured in.
    pub fn open_lines(&self, skip: u64, consumed: Arc<AtomicU64>) -> Result<LineSource> {
        let mut file = File::open(&self.path).map_err(|e| CorpusError::io(&self.path, e))?;
        let codec = match self.compression {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        if self.compression == Compression::None && skip > 0 {
            file.seek(SeekFrom::Start(skip))
                .map_err(|e| CorpusError::io(&self.path, e))?;
            consumed.fetch_add(skip, Ordering::Relaxed);
        }
        let counted = CountingReader {
            inner: file,
            consumed,
        };
        let inner: Box<dyn Read + Send> = match self.compression {
            Compression::None => Box::new(counted),
            // Multi-member: `cat a.gz b.gz` is a valid gzip file and tools write such files.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 16, counted),
            )),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(counted)
                    .map_err(|e| CorpusError::io(&self.path, e))?,
            ),
        };
        let mut src = LineSource {
            reader: BufReader::with_capacity(1 << 20, inner),
            path: self.path.clone(),
            codec,
        };
        if self.compression != Compression::None && skip > 0 {
            // A compressed stream cannot seek: decompress and discard. Cheap next to encoding.
            let n = io::copy(&mut (&mut src.reader).take(skip), &mut io::sink())
                .map_err(|e| src.error(e))?;
            if n != skip {
                return Err(CorpusError::OutputMismatch {
                    path: self.path.clone(),
                    message: format!("is shorter than when the interrupted run read it ({n} < {skip} bytes); the input changed, so start over with a fresh --out"),
                });
            }
        }
        Ok(src)
    }
}

struct CountingReader<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Decompressed lines of one file; errors name the file and the codec.
pub struct LineSource {
    reader: BufReader<Box<dyn Read + Send>>,
    path: PathBuf,
    codec: &'static str,
}

impl LineSource {
    fn error(&self, e: io::Error) -> CorpusError {
        stream_error(&self.path, self.codec, e)
    }

    /// Append the next line (without `\n`, and without a `\r` before it) to `buf`; returns
    /// the number of bytes consumed from the stream, 0 at the end.
    pub fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let start = buf.len();
        let (path, codec) = (&self.path, self.codec);
        let n = self
            .reader
            .read_until(b'\n', buf)
            .map_err(|e| stream_error(path, codec, e))?;
        if buf.len() > start && buf[buf.len() - 1] == b'\n' {
            buf.pop();
            if buf.len() > start && buf[buf.len() - 1] == b'\r' {
                buf.pop();
            }
        }
        Ok(n)
    }
}

fn stream_error(path: &Path, codec: &'static str, e: io::Error) -> CorpusError {
    if codec.is_empty() {
        CorpusError::io(path, e)
    } else {
        CorpusError::Compressed {
            path: path.to_path_buf(),
            codec,
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let k = |s: &str| detect_kind(Path::new(s));
        assert_eq!(k("a/b.txt"), Some((Format::Txt, Compression::None)));
        assert_eq!(k("b.JSONL.gz"), Some((Format::Jsonl, Compression::Gzip)));
        assert_eq!(k("b.jsonl.zst"), Some((Format::Jsonl, Compression::Zstd)));
        assert_eq!(k("x.parquet"), Some((Format::Parquet, Compression::None)));
        assert_eq!(k("x.parquet.gz"), None);
        assert_eq!(k("x.csv"), None);
    }
}
