//! Batches: the fork-aware rayon pools, and the one loop that runs a batch's blocks on a pool
//! (no GIL) while this thread (GIL held) takes each finished block in input order and checks
//! for Ctrl-C.
//!
//! Pools are keyed by thread count and by the pid that built them: a process forked from
//! one that already used a pool (DataLoader workers, `datasets.map(num_proc=...)`) finds a
//! pid that is not its own and builds fresh threads instead of waiting forever on threads
//! that did not survive the fork. At most [`MAX_POOLS`] pools are kept, so calls with ever
//! new thread counts cannot pile up idle threads.

use crate::error::{internal_error, InternalError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zhllama_core::AnyTokenizer;

/// The largest `num_threads` accepted.
pub const MAX_THREADS: i64 = 1024;

/// Pools kept for reuse; the least recently used beyond this is dropped (its threads exit).
const MAX_POOLS: usize = 4;

/// How long the waiting thread sleeps between two checks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(20);

struct Pools {
    pid: u32,
    /// Least recently used first.
    by_threads: Vec<(usize, Arc<rayon::ThreadPool>)>,
}

static POOLS: Mutex<Option<Pools>> = Mutex::new(None);

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, String> {
    let pid = std::process::id();
    let mut guard = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_some_and(|p| p.pid != pid) {
        // Pools inherited across fork have no threads; dropping them would try to signal
        // those threads, so they are leaked on purpose.
        if let Some(old) = guard.take() {
            std::mem::forget(old);
        }
    }
    let pools = guard.get_or_insert_with(|| Pools {
        pid,
        by_threads: Vec::new(),
    });
    if let Some(i) = pools.by_threads.iter().position(|(n, _)| *n == threads) {
        let entry = pools.by_threads.remove(i);
        let p = entry.1.clone();
        pools.by_threads.push(entry);
        return Ok(p);
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zhllama-encode-{i}"))
        .build()
        .map_err(|e| format!("cannot start {threads} encoder threads: {e}"))?;
    let p = Arc::new(p);
    pools.by_threads.push((threads, p.clone()));
    if pools.by_threads.len() > MAX_POOLS {
        // A call still running on it holds its own Arc; the threads exit after that call.
        pools.by_threads.remove(0);
    }
    Ok(p)
}

/// `num_threads` of the batch methods: 1..=1024, or None for every core.
pub fn resolve_threads(num_threads: Option<i64>) -> PyResult<usize> {
    match num_threads {
        None => Ok(default_threads().min(MAX_THREADS as usize)),
        Some(n) => check_threads("num_threads", n, ", or None for all cores"),
    }
}

/// A thread count named `name` in the error: 1..=1024 (the corpus and stats runs size their
/// pools from it).
pub fn check_threads(name: &str, n: i64, otherwise: &str) -> PyResult<usize> {
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n as usize)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be between 1 and {MAX_THREADS}{otherwise}; got {n}"
        )))
    }
}

/// At most this many texts per block handed from the pool to the waiting thread; fewer when
/// there are few texts, so that every thread gets blocks. With one thread, the blocks the
/// calling thread encodes itself (Ctrl-C is checked between them).
pub const MAX_BLOCK: usize = 128;

/// One block's ids back to back and each text's id count.
pub type Block = (Vec<u32>, Vec<u32>);

/// Encode `texts` on a `threads`-thread pool while this thread (holding the GIL) passes each
/// finished block, in input order, to `take`. Ctrl-C (any pending signal whose handler
/// raises) stops the workers at their next block and is raised here within ~20 ms.
pub fn encode_blocks(
    py: Python<'_>,
    tok: &AnyTokenizer,
    texts: &[&str],
    (add_bos, add_eos, parse_special): (bool, bool, bool),
    threads: usize,
    take: &mut dyn FnMut(Block) -> PyResult<()>,
) -> PyResult<()> {
    let size = texts.len().div_ceil(threads.max(1) * 4).clamp(1, MAX_BLOCK);
    let n_blocks = texts.len().div_ceil(size);
    let block = |i: usize| {
        tok.encode_block(
            &texts[i * size..((i + 1) * size).min(texts.len())],
            add_bos,
            add_eos,
            parse_special,
        )
    };
    if n_blocks <= 1 {
        // One block: not worth a pool, and short enough not to need Ctrl-C.
        if n_blocks == 1 {
            take(crate::error::detach(py, || Ok::<_, PyErr>(block(0)))?)?;
        }
        return Ok(());
    }
    if threads == 1 {
        // One thread: the blocks run here, the GIL released around each, Ctrl-C checked
        // before each; no pool thread to wake and wait for.
        for chunk in texts.chunks(MAX_BLOCK) {
            py.check_signals()?;
            take(crate::error::detach(py, || {
                Ok::<_, PyErr>(tok.encode_block(chunk, add_bos, add_eos, parse_special))
            })?)?;
        }
        return Ok(());
    }
    let pool = pool(threads.max(1)).map_err(InternalError::new_err)?;
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Block)>();
    // `Receiver` is not Sync; the Mutex lets the GIL-free wait borrow it.
    let rx = Mutex::new(rx);
    let mut pending: Vec<Option<Block>> = (0..n_blocks).map(|_| None).collect();
    let next_block = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let run = catch_unwind(AssertUnwindSafe(|| {
        pool.in_place_scope(|s| -> PyResult<()> {
            // Blocks are handed out in input order (one shared counter) rather than split
            // into halves as a parallel iterator would: this thread takes them in input
            // order, and with halves it would wait for the whole first half while the second
            // piled up, then convert that pile alone after the encoders had finished.
            for _ in 0..threads.min(n_blocks) {
                let tx = tx.clone();
                let (next_block, stop, block) = (&next_block, &stop, &block);
                s.spawn(move |_| loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next_block.fetch_add(1, Ordering::Relaxed);
                    if i >= n_blocks || tx.send((i, block(i))).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut next = 0;
            let mut take_all = || -> PyResult<()> {
                while next < n_blocks {
                    py.check_signals()?;
                    // Wait without the GIL; Disconnected means every sender is gone (a worker
                    // panicked, which the scope re-raises below).
                    let got = py.detach(|| {
                        rx.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .recv_timeout(SIGNAL_POLL)
                    });
                    match got {
                        Ok((i, b)) => pending[i] = Some(b),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    while let Some(b) = pending.get_mut(next).and_then(Option::take) {
                        take(b)?;
                        next += 1;
                    }
                }
                Ok(())
            };
            let r = take_all();
            if r.is_err() {
                // The scope waits for its workers: have them stop after their current block.
                stop.store(true, Ordering::Relaxed);
            }
            r
        })
    }));
    run.unwrap_or_else(|p| Err(internal_error(p)))
}
