//! One writer per output directory: an advisory `flock` on `DIR/.zhllama-lock`, taken before
//! anything in the directory is read or cleaned up, and held for the whole run.
//!
//! Without it, a second run (or a second Slurm task given the same `--shard-index`) starts by
//! deleting the first run's `*.tmp` files and later shards, and both die or interleave. The
//! lock file records the holder's pid, host and command, so the refusal names who holds it.
//! The kernel drops the lock when its holder dies (even by `kill -9`), so a stale file never
//! blocks a rerun; a clean exit removes the file, so a finished directory holds only the corpus.

use super::error::{CorpusError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK: &str = ".zhllama-lock";

/// The held lock; dropping it removes the file and releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    // Declared after `path` only for clarity: `Drop::drop` runs first (unlink), then the
    // file closes (unlock), which is the order `acquire` relies on.
    _file: File,
}

/// How `tokenize-corpus` names its output directory in the refusal.
const CORPUS_FLAG: &str = "--out (two workers must not share a --shard-index)";

impl OutputLock {
    /// Lock `dir` (which must exist) for this process, or fail at once naming the holder.
    pub fn acquire(dir: &Path) -> Result<Self> {
        Self::acquire_for(dir, CORPUS_FLAG)
    }

    /// [`OutputLock::acquire`] for a command whose output directory is given by `flag`
    /// (`--output-dir` for the training verbs): the refusal tells the user to change that.
    pub fn acquire_for(dir: &Path, flag: &str) -> Result<Self> {
        let path = dir.join(LOCK);
        let io = |e| CorpusError::io(&path, e);
        // A holder that is releasing unlinks the file before unlocking it: if we lock that
        // unlinked file, we hold nothing, so check that the path still names what we locked.
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(CorpusError::Locked {
                        path: dir.to_path_buf(),
                        holder: describe_holder(&holder),
                        flag: flag.into(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if !same_file(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(holder_record().as_bytes()).map_err(io)?;
            file.flush().map_err(io)?;
            return Ok(OutputLock { path, _file: file });
        }
        Err(CorpusError::Locked {
            path: dir.to_path_buf(),
            holder: "runs keep taking and releasing its lock".into(),
            flag: flag.into(),
        })
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// What the lock file holds: this process, as `ps` and a human would name it.
fn holder_record() -> String {
    let command: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let record = serde_json::json!({
        "pid": std::process::id(),
        "host": hostname(),
        "command": command.join(" "),
    });
    format!("{record}\n")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

fn describe_holder(record: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(record) else {
        return "its holder has not recorded itself yet".into();
    };
    format!(
        "pid {} on {}: {}",
        v["pid"],
        v["host"].as_str().unwrap_or("?"),
        v["command"].as_str().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_holder_and_release_removes_the_file() {
        let dir = crate::corpus::tests::tmpdir("lock");
        let first = OutputLock::acquire(&dir).unwrap();
        let err = OutputLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(!dir.join(LOCK).exists());
        // A file left by a dead holder (no lock on it) does not block.
        std::fs::write(dir.join(LOCK), "{\"pid\": 1}\n").unwrap();
        let again = OutputLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
