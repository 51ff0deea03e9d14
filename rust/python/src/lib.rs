//! `zhllama._native`: the thin PyO3 layer over `zhllama-core`.
//!
//! Each file binds one domain. Every binding extracts Python inputs into owned Rust values,
//! then runs the core inside [`error::detach`], which releases the GIL, catches panics and
//! maps core errors to the exception classes declared in `error.rs`.

use pyo3::prelude::*;

mod batch;
mod bytelevel;
mod chinese;
mod corpus;
mod error;
mod gc_pacer;
mod lock;
mod merge;
mod model;
mod pretoken_counts;
mod reader;
mod shard_writer;
mod stats;
mod text;
mod tokenizer;

/// Big tables (the byte-level encoder's maps, trie and records) on 2 MiB pages: fewer TLB
/// misses on their random reads. `ZHLLAMA_HUGE_PAGES=0` at import: not advised (A/B runs).
#[global_allocator]
static ALLOC: zhllama_core::HugePageAlloc = zhllama_core::HugePageAlloc;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    zhllama_core::HugePageAlloc::set_from_env();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    error::register(m)?;
    model::register(m)?;
    tokenizer::register(m)?;
    bytelevel::register(m)?;
    merge::register(m)?;
    corpus::register(m)?;
    lock::register(m)?;
    reader::register(m)?;
    shard_writer::register(m)?;
    stats::register(m)?;
    chinese::register(m)?;
    pretoken_counts::register(m)?;
    Ok(())
}
