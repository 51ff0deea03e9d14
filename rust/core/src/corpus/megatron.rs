//! Megatron-LM indexed dataset pairs (DESIGN.md "Formats"), so that Megatron-LM, GPT-NeoX
//! and NeMo read our shards as they are:
//!
//! - `NAME.bin`: token ids, little-endian, `uint16` (code 8) or `int32` (code 4);
//! - `NAME.idx`: `b"MMIDIDX\0\0"`, `<Q` version 1, `<B` dtype code, `<Q` sequence count N,
//!   `<Q` document count N+1, `i32[N]` lengths, `i64[N]` byte pointers, `i64[N+1]` document
//!   indices 0..=N (one sequence per document).
//!
//! Both files are written as `*.tmp` and renamed only once complete and synced, so a file
//! under its final name is always whole.

use super::error::{CorpusError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Uint16,
    Int32,
}

impl Dtype {
    /// uint16 whenever every id fits; Megatron has no uint32, so int32 above that.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Dtype::Uint16
        } else {
            Dtype::Int32
        }
    }
    pub fn code(self) -> u8 {
        match self {
            Dtype::Uint16 => 8,
            Dtype::Int32 => 4,
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::Uint16 => 2,
            Dtype::Int32 => 4,
        }
    }
    /// Append `ids` as little-endian values of this dtype.
    pub fn extend_bytes(self, ids: &[u32], out: &mut Vec<u8>) {
        // Resize then fill fixed-size chunks: this compiles to a vector loop, unlike pushing
        // two or four bytes at a time.
        let start = out.len();
        out.resize(start + ids.len() * self.size(), 0);
        let dst = &mut out[start..];
        match self {
            Dtype::Uint16 => dst
                .chunks_exact_mut(2)
                .zip(ids)
                .for_each(|(c, &i)| c.copy_from_slice(&(i as u16).to_le_bytes())),
            Dtype::Int32 => dst
                .chunks_exact_mut(4)
                .zip(ids)
                .for_each(|(c, &i)| c.copy_from_slice(&(i as i32).to_le_bytes())),
        }
    }
}

pub fn tmp_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// One shard being written.
pub struct ShardWriter {
    bin_path: PathBuf,
    idx_path: PathBuf,
    bin: BufWriter<File>,
    dtype: Dtype,
    // Only lengths are kept (4 bytes a document); pointers are their running sum.
    lengths: Vec<i32>,
    bin_bytes: u64,
}

impl ShardWriter {
    pub fn create(dir: &Path, name: &str, dtype: Dtype) -> Result<Self> {
        let bin_path = dir.join(format!("{name}.bin"));
        let idx_path = dir.join(format!("{name}.idx"));
        let tmp = tmp_path(&bin_path);
        let f = File::create(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
        Ok(ShardWriter {
            bin_path,
            idx_path,
            bin: BufWriter::with_capacity(4 << 20, f),
            dtype,
            lengths: Vec::new(),
            bin_bytes: 0,
        })
    }

    /// Append one document already laid out in the shard's dtype.
    pub fn push_doc(&mut self, bytes: &[u8]) -> Result<()> {
        let n = bytes.len() / self.dtype.size();
        let n = i32::try_from(n).map_err(|_| CorpusError::Options {
            message: format!(
                "a document has {n} tokens, more than Megatron's int32 lengths hold; split it"
            ),
        })?;
        self.bin
            .write_all(bytes)
            .map_err(|e| CorpusError::io(&tmp_path(&self.bin_path), e))?;
        self.lengths.push(n);
        self.bin_bytes += bytes.len() as u64;
        Ok(())
    }

    pub fn bin_bytes(&self) -> u64 {
        self.bin_bytes
    }

    pub fn docs(&self) -> usize {
        self.lengths.len()
    }

    /// Write the index, sync both files and rename them to their final names.
    pub fn finish(self) -> Result<()> {
        let tmp_bin = tmp_path(&self.bin_path);
        let bin = self
            .bin
            .into_inner()
            .map_err(|e| CorpusError::io(&tmp_bin, e.into_error()))?;
        bin.sync_all().map_err(|e| CorpusError::io(&tmp_bin, e))?;
        let tmp_idx = tmp_path(&self.idx_path);
        let werr = |e| CorpusError::io(&tmp_idx, e);
        let f = File::create(&tmp_idx).map_err(werr)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = self.lengths.len() as u64;
        w.write_all(MAGIC).map_err(werr)?;
        w.write_all(&1u64.to_le_bytes()).map_err(werr)?;
        w.write_all(&[self.dtype.code()]).map_err(werr)?;
        w.write_all(&n.to_le_bytes()).map_err(werr)?;
        w.write_all(&(n + 1).to_le_bytes()).map_err(werr)?;
        for l in &self.lengths {
            w.write_all(&l.to_le_bytes()).map_err(werr)?;
        }
        let mut ptr = 0i64;
        for l in &self.lengths {
            w.write_all(&ptr.to_le_bytes()).map_err(werr)?;
            ptr += *l as i64 * self.dtype.size() as i64;
        }
        for i in 0..=n as i64 {
            w.write_all(&i.to_le_bytes()).map_err(werr)?;
        }
        let f = w.into_inner().map_err(|e| werr(e.into_error()))?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp_bin, &self.bin_path)
            .map_err(|e| CorpusError::io(&self.bin_path, e))?;
        std::fs::rename(&tmp_idx, &self.idx_path)
            .map_err(|e| CorpusError::io(&self.idx_path, e))?;
        Ok(())
    }
}

/// Read a whole pair back (tests and tools; training reads it with numpy.memmap).
pub fn read_shard(dir: &Path, name: &str) -> Result<(Dtype, Vec<Vec<u32>>)> {
    let idx_path = dir.join(format!("{name}.idx"));
    let idx = std::fs::read(&idx_path).map_err(|e| CorpusError::io(&idx_path, e))?;
    let bad = |m: &str| CorpusError::OutputMismatch {
        path: idx_path.clone(),
        message: m.to_string(),
    };
    if idx.len() < 34 || &idx[..9] != MAGIC {
        return Err(bad("not a Megatron MMIDIDX index"));
    }
    let u64_at = |o: usize| u64::from_le_bytes(idx[o..o + 8].try_into().unwrap());
    let dtype = match idx[17] {
        8 => Dtype::Uint16,
        4 => Dtype::Int32,
        _ => return Err(bad("unsupported dtype code")),
    };
    let n = u64_at(18) as usize;
    let bin_path = dir.join(format!("{name}.bin"));
    let bin = std::fs::read(&bin_path).map_err(|e| CorpusError::io(&bin_path, e))?;
    let mut docs = Vec::with_capacity(n);
    for i in 0..n {
        let len = i32::from_le_bytes(idx[34 + 4 * i..38 + 4 * i].try_into().unwrap()) as usize;
        let ptr = u64_at(34 + 4 * n + 8 * i) as usize;
        let raw = &bin[ptr..ptr + len * dtype.size()];
        docs.push(match dtype {
            Dtype::Uint16 => raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect(),
            Dtype::Int32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
                .collect(),
        });
    }
    Ok((dtype, docs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = crate::corpus::tests::tmpdir("megatron");
        for dtype in [Dtype::Uint16, Dtype::Int32] {
            let mut w = ShardWriter::create(&dir, "s", dtype).unwrap();
            let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![], vec![65535, 7]];
            for d in &docs {
                let mut b = Vec::new();
                dtype.extend_bytes(d, &mut b);
                w.push_doc(&b).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(read_shard(&dir, "s").unwrap(), (dtype, docs));
            assert!(!tmp_path(&dir.join("s.bin")).exists());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
