//! `tokenize_corpus`: reader thread → N encoder threads → this thread writing shards in input
//! order, with resume from `progress.json`.
//!
//! Determinism: chunks are numbered by the reader and written strictly in that order; a shard
//! closes after the first document that brings its `.bin` to `shard_size` bytes. Both depend on
//! the input and the options only, never on thread timing.

use super::encode::{EncodeStage, Encoded, Outcome};
use super::error::{CorpusError, Result};
use super::input::InputFile;
use super::lock::OutputLock;
use super::manifest::{
    shard_name, Counts, Manifest, Options, Position, Shard, Source, FORMAT, FORMAT_VERSION,
    MANIFEST, MAX_BAD_EXAMPLES, PROGRESS,
};
use super::megatron::{Dtype, ShardWriter};
use super::reader::{ReadStage, TableReader};
use super::DocEncoder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct TokenizeConfig {
    pub inputs: Vec<InputFile>,
    pub out_dir: PathBuf,
    pub threads: usize,
    pub options: Options,
    pub tokenizer_sha256: String,
}

/// Live counters for a progress bar; `cancel` stops the run at the next chunk.
#[derive(Default)]
pub struct Progress {
    pub bytes_read: Arc<AtomicU64>,
    pub total_bytes: AtomicU64,
    pub docs: AtomicU64,
    pub tokens: AtomicU64,
    pub cancel: AtomicBool,
}

#[derive(Debug)]
pub struct RunSummary {
    pub manifest: Manifest,
    /// The output directory already held this finished corpus; nothing was redone.
    pub already_done: bool,
    /// Shards found complete from an interrupted run and kept.
    pub resumed_shards: usize,
}

pub fn tokenize_corpus(
    cfg: &TokenizeConfig,
    encoder: &dyn DocEncoder,
    tables: Option<&dyn TableReader>,
    progress: &Progress,
) -> Result<RunSummary> {
    if cfg.options.append_eos && encoder.eos_id().is_none() {
        return Err(CorpusError::Options {
            message: "the tokenizer has no EOS piece; pass --no-append-eos".into(),
        });
    }
    if cfg.options.add_bos && encoder.bos_id().is_none() {
        return Err(CorpusError::Options {
            message: "the tokenizer has no BOS piece; drop --add-bos".into(),
        });
    }
    let dir = &cfg.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
    // Held until this function returns: no other run may read, clean up or write `dir`.
    let _lock = OutputLock::acquire(dir)?;
    let fresh = fresh_manifest(cfg, encoder);
    progress
        .total_bytes
        .store(cfg.inputs.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);

    let manifest_path = dir.join(MANIFEST);
    if manifest_path.exists() {
        let done = Manifest::read(&manifest_path)?;
        if let Some(why) = done.mismatch(&fresh) {
            return Err(CorpusError::OutputMismatch {
                path: dir.clone(),
                message: format!("already holds a finished corpus made with {why}; choose another --out or delete it"),
            });
        }
        progress.bytes_read.store(
            progress.total_bytes.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        progress.docs.store(done.num_docs, Ordering::Relaxed);
        progress.tokens.store(done.num_tokens, Ordering::Relaxed);
        return Ok(RunSummary {
            resumed_shards: done.shards.len(),
            manifest: done,
            already_done: true,
        });
    }
    let progress_path = dir.join(PROGRESS);
    let state = resume_state(dir, fresh)?;
    let resumed_shards = state.shards.len();
    progress.docs.store(state.num_docs, Ordering::Relaxed);
    progress.tokens.store(state.num_tokens, Ordering::Relaxed);
    let start = state.shards.last().map(|s| s.end).unwrap_or_default();

    let threads = cfg.threads.max(1);
    let in_flight = 4 * threads + 2;
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded(threads);
    let (done_tx, done_rx) = crossbeam_channel::bounded(in_flight);
    let (ticket_tx, ticket_rx) = crossbeam_channel::bounded(in_flight);
    for _ in 0..in_flight {
        ticket_tx.send(()).expect("fresh channel has room");
    }
    let stage = EncodeStage {
        encoder,
        inputs: &cfg.inputs,
        text_field: &cfg.options.text_field,
        dtype: state.dtype,
        bos: if cfg.options.add_bos {
            encoder.bos_id()
        } else {
            None
        },
        eos: if cfg.options.append_eos {
            encoder.eos_id()
        } else {
            None
        },
    };
    let manifest = std::thread::scope(|s| {
        let reader = ReadStage {
            inputs: &cfg.inputs,
            text_field: &cfg.options.text_field,
            tables,
            start,
            bytes_read: progress.bytes_read.clone(),
            cancel: &progress.cancel,
            chunks: chunk_tx,
            tickets: ticket_rx,
        };
        s.spawn(move || reader.run());
        for _ in 0..threads {
            let (rx, tx, stage) = (chunk_rx.clone(), done_tx.clone(), &stage);
            s.spawn(move || stage.run(rx, tx));
        }
        drop((chunk_rx, done_tx));
        // The writer owns the receiving ends: when it returns (done or failed) they drop, and
        // every other stage sees a closed channel and stops.
        ShardSink::new(cfg, state, start, progress).run(done_rx, ticket_tx)
    })?;
    manifest.write(&manifest_path)?;
    let _ = std::fs::remove_file(&progress_path);
    Ok(RunSummary {
        manifest,
        already_done: false,
        resumed_shards,
    })
}

/// The state to continue from: an interrupted run's `progress.json` (checked to come from
/// the same command, its shards present, debris past them removed), or `fresh`.
fn resume_state(dir: &Path, fresh: Manifest) -> Result<Manifest> {
    let progress_path = dir.join(PROGRESS);
    let state = if progress_path.exists() {
        let p = Manifest::read(&progress_path)?;
        if let Some(why) = p.mismatch(&fresh) {
            return Err(CorpusError::OutputMismatch {
                path: dir.to_path_buf(),
                message: format!("holds an interrupted run made with {why}; rerun that exact command to resume, or choose another --out"),
            });
        }
        p
    } else {
        fresh
    };
    for shard in &state.shards {
        for ext in ["bin", "idx"] {
            let path = dir.join(format!("{}.{ext}", shard.name));
            if !path.exists() {
                return Err(CorpusError::OutputMismatch {
                    path,
                    message: "is missing, but progress.json lists its shard as complete; delete the output directory and rerun".into(),
                });
            }
        }
    }
    remove_stale_files(dir, state.shards.len())?;
    Ok(state)
}

/// The manifest of a run that has written nothing yet (also the start of a
/// [`ShardSink`] fed from outside the pipeline, e.g. by the datatrove step's binding).
pub fn fresh_manifest(cfg: &TokenizeConfig, encoder: &dyn DocEncoder) -> Manifest {
    let dtype = Dtype::for_vocab(encoder.vocab_size());
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        complete: false,
        tokenizer_sha256: cfg.tokenizer_sha256.clone(),
        vocab_size: encoder.vocab_size(),
        dtype,
        megatron_dtype_code: dtype.code(),
        bos_id: encoder.bos_id(),
        eos_id: encoder.eos_id(),
        options: cfg.options.clone(),
        num_docs: 0,
        num_tokens: 0,
        shards: Vec::new(),
        sources: cfg
            .inputs
            .iter()
            .map(|f| Source {
                file: f.clone(),
                counts: Counts::default(),
            })
            .collect(),
        totals: Counts::default(),
        bad_line_examples: Vec::new(),
    }
}

/// Delete what an interrupted run left beyond its last completed shard: `*.tmp` files, and
/// shards renamed after the progress file was last written (they are rewritten identically).
pub fn remove_stale_files(dir: &Path, kept: usize) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| CorpusError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| CorpusError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stale_shard = name
            .strip_prefix("shard-")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|i| i >= kept);
        if name.ends_with(".tmp") || stale_shard {
            std::fs::remove_file(&path).map_err(|e| CorpusError::io(&path, e))?;
        }
    }
    Ok(())
}

/// The writing stage: reorders encoded chunks, appends documents, closes shards.
///
/// Public so that a front end that encodes documents itself (the datatrove step) writes
/// shards, counts and `progress.json` through this one writer: `new`, `write_chunk` per
/// chunk in order, `finish`.
pub struct ShardSink<'a> {
    cfg: &'a TokenizeConfig,
    /// The manifest as written so far; a front end that meets its sources as it goes
    /// appends them to `state.sources` before writing records that name them.
    pub state: Manifest,
    shard: Option<ShardWriter>,
    shard_counts: (u64, u64),
    last: Position,
    progress: &'a Progress,
}

impl<'a> ShardSink<'a> {
    pub fn new(
        cfg: &'a TokenizeConfig,
        state: Manifest,
        start: Position,
        progress: &'a Progress,
    ) -> Self {
        ShardSink {
            cfg,
            state,
            shard: None,
            shard_counts: (0, 0),
            last: start,
            progress,
        }
    }

    fn run(
        mut self,
        done: crossbeam_channel::Receiver<Encoded>,
        tickets: crossbeam_channel::Sender<()>,
    ) -> Result<Manifest> {
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        for enc in done {
            pending.insert(enc.seq, enc);
            while let Some(enc) = pending.remove(&next) {
                if self.progress.cancel.load(Ordering::Relaxed) {
                    return Err(CorpusError::Cancelled);
                }
                self.write_chunk(enc)?;
                next += 1;
                let _ = tickets.send(());
            }
        }
        if self.progress.cancel.load(Ordering::Relaxed) {
            return Err(CorpusError::Cancelled);
        }
        self.finish()
    }

    /// Close the last shard; the complete manifest (the caller writes it as `manifest.json`).
    pub fn finish(mut self) -> Result<Manifest> {
        self.close_shard()?;
        self.refresh_totals();
        self.state.complete = true;
        Ok(self.state)
    }

    pub fn write_chunk(&mut self, enc: Encoded) -> Result<()> {
        let mut at = 0usize;
        for (rec, out) in enc.records.iter().zip(&enc.outcomes) {
            let src = &mut self.state.sources[rec.file];
            src.counts.lines += 1;
            match out {
                Outcome::Empty => src.counts.empty_docs += 1,
                Outcome::Bad(reason) => {
                    self.cfg
                        .options
                        .on_bad_line
                        .check(&src.file.path, rec.line, reason.clone())?;
                    src.counts.bad_lines += 1;
                    if self.state.bad_line_examples.len() < MAX_BAD_EXAMPLES {
                        self.state.bad_line_examples.push(format!(
                            "{}:{}: {reason}",
                            src.file.path.display(),
                            rec.line
                        ));
                    }
                }
                Outcome::Doc {
                    bytes,
                    tokens,
                    invalid_bytes,
                } => {
                    src.counts.docs += 1;
                    src.counts.tokens += tokens;
                    if *invalid_bytes > 0 {
                        src.counts.invalid_utf8_docs += 1;
                        src.counts.invalid_utf8_bytes += invalid_bytes;
                    }
                    if self.shard.is_none() {
                        let name = shard_name(self.state.shards.len());
                        self.shard = Some(ShardWriter::create(
                            &self.cfg.out_dir,
                            &name,
                            self.state.dtype,
                        )?);
                        self.shard_counts = (0, 0);
                    }
                    let shard = self.shard.as_mut().expect("just opened");
                    shard.push_doc(&enc.bytes[at..at + bytes])?;
                    at += bytes;
                    self.shard_counts.0 += 1;
                    self.shard_counts.1 += tokens;
                    self.progress.docs.fetch_add(1, Ordering::Relaxed);
                    self.progress.tokens.fetch_add(*tokens, Ordering::Relaxed);
                    // Lines after a shard's last document belong to the next shard (they are
                    // re-read on resume), so the resume point moves only with documents.
                    self.last = rec.after;
                    if shard.bin_bytes() >= self.cfg.options.shard_size {
                        self.close_shard()?;
                    }
                }
            }
        }
        match enc.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn refresh_totals(&mut self) {
        let mut totals = Counts::default();
        self.state
            .sources
            .iter()
            .for_each(|s| totals.add(&s.counts));
        self.state.totals = totals;
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(shard) = self.shard.take() else {
            return Ok(());
        };
        shard.finish()?;
        let (docs, tokens) = self.shard_counts;
        let name = shard_name(self.state.shards.len());
        self.state.shards.push(Shard {
            name,
            docs,
            tokens,
            end: self.last,
            from: None,
        });
        self.state.num_docs += docs;
        self.state.num_tokens += tokens;
        self.refresh_totals();
        self.state.write(&self.cfg.out_dir.join(PROGRESS))
    }
}
