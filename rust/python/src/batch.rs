//! Batches: the fork-aware rayon pools, and `encode_batch`'s overlap of encoding (pool
//! threads, no GIL) with building the result lists (this thread, GIL held).
//!
//! Pools are keyed by thread count and by the pid that built them: a process forked from
//! one that already used a pool (DataLoader workers, `datasets.map(num_proc=...)`) finds a
//! pid that is not its own and builds fresh threads instead of waiting forever on threads
//! that did not survive the fork.

use crate::error::{panic_message, InternalError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use zhllama_core::Tokenizer;

struct Pools {
    pid: u32,
    by_threads: HashMap<usize, Arc<rayon::ThreadPool>>,
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
        by_threads: HashMap::new(),
    });
    if let Some(p) = pools.by_threads.get(&threads) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("zhllama-encode-{i}"))
        .build()
        .map_err(|e| format!("cannot start {threads} encoder threads: {e}"))?;
    let p = Arc::new(p);
    pools.by_threads.insert(threads, p.clone());
    Ok(p)
}

pub fn resolve_threads(num_threads: Option<i64>) -> PyResult<usize> {
    match num_threads {
        None => Ok(default_threads()),
        Some(n) if n < 1 => Err(PyValueError::new_err(format!(
            "num_threads must be a positive int or None (all cores), got {n}"
        ))),
        Some(n) => Ok(n as usize),
    }
}

/// Run `f` on a pool of `threads` threads, one thread included: `f`'s parallel iterators
/// run on the pool they are called from, and called outside one they would take rayon's
/// global pool (every core, and not fork-aware).
pub fn on_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T, PyErr> {
    let p = pool(threads.max(1)).map_err(InternalError::new_err)?;
    Ok(p.install(f))
}

/// At most this many texts per block handed from the pool to the list-building thread;
/// fewer when there are few texts, so that every thread gets blocks.
const MAX_BLOCK: usize = 128;

/// One block's ids back to back and each text's id count.
type Block = (Vec<u32>, Vec<u32>);

fn encode_block(tok: &Tokenizer, texts: &[&str], add_bos: bool, add_eos: bool) -> Block {
    let mut ids = Vec::new();
    let mut lens = Vec::with_capacity(texts.len());
    for t in texts {
        let before = ids.len();
        tok.encode_str_into(t, add_bos, add_eos, &mut ids);
        lens.push((ids.len() - before) as u32);
    }
    (ids, lens)
}

/// Encode `texts` on a `threads`-thread pool while this thread (holding the GIL) turns each
/// finished block, in input order, into Python lists with `to_list`. Building lists needs the
/// GIL and cannot run in parallel; overlapping it with the encoding hides most of it.
pub fn encode_to_lists<'py>(
    py: Python<'py>,
    tok: &Tokenizer,
    texts: &[&str],
    add_bos: bool,
    add_eos: bool,
    threads: usize,
    to_list: &mut dyn FnMut(&[u32]) -> PyResult<Bound<'py, PyList>>,
) -> PyResult<Vec<Bound<'py, PyList>>> {
    let size = texts.len().div_ceil(threads.max(1) * 4).clamp(1, MAX_BLOCK);
    let n_blocks = texts.len().div_ceil(size);
    let block = |i: usize| {
        encode_block(
            tok,
            &texts[i * size..((i + 1) * size).min(texts.len())],
            add_bos,
            add_eos,
        )
    };
    let mut out = Vec::with_capacity(texts.len());
    let mut emit = |out: &mut Vec<Bound<'py, PyList>>, (ids, lens): Block| -> PyResult<()> {
        let mut at = 0usize;
        for l in lens {
            out.push(to_list(&ids[at..at + l as usize])?);
            at += l as usize;
        }
        Ok(())
    };
    if threads <= 1 || n_blocks <= 1 {
        let blocks = crate::error::detach(py, || {
            Ok::<_, PyErr>((0..n_blocks).map(block).collect::<Vec<_>>())
        })?;
        for b in blocks {
            emit(&mut out, b)?;
        }
        return Ok(out);
    }
    let pool = pool(threads).map_err(InternalError::new_err)?;
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Block)>();
    // `Receiver` is not Sync; the Mutex lets the GIL-free wait borrow it.
    let rx = Mutex::new(rx);
    let mut pending: Vec<Option<Block>> = (0..n_blocks).map(|_| None).collect();
    let next_block = AtomicUsize::new(0);
    let run = catch_unwind(AssertUnwindSafe(|| {
        pool.in_place_scope(|s| -> PyResult<()> {
            // Blocks are handed out in input order (one shared counter) rather than split
            // into halves as a parallel iterator would: this thread emits in input order, and
            // with halves it would wait for the whole first half while the second piled up,
            // then convert that pile alone after the encoders had finished.
            for _ in 0..threads {
                let tx = tx.clone();
                let next_block = &next_block;
                let block = &block;
                s.spawn(move |_| loop {
                    let i = next_block.fetch_add(1, Ordering::Relaxed);
                    if i >= n_blocks || tx.send((i, block(i))).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut next = 0;
            while next < n_blocks {
                // Wait without the GIL; an Err means every sender is gone (a worker panicked,
                // which the scope re-raises below).
                let Ok((i, b)) = py.detach(|| rx.lock().unwrap_or_else(|e| e.into_inner()).recv())
                else {
                    break;
                };
                pending[i] = Some(b);
                while let Some(b) = pending.get_mut(next).and_then(Option::take) {
                    emit(&mut out, b)?;
                    next += 1;
                }
            }
            Ok(())
        })
    }));
    match run {
        Ok(r) => r.map(|()| out),
        Err(p) => Err(InternalError::new_err(panic_message(p))),
    }
}
