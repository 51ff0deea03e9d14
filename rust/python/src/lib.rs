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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
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
