//! The core's Chinese character ranges (`zhllama_core::chinese`) as module constants:
//! `CHINESE_RANGES` and `HAN_RANGES`, tuples of inclusive `(first, last)` code points.

use pyo3::prelude::*;
use zhllama_core::chinese::{CHINESE_RANGES, HAN_RANGES};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CHINESE_RANGES", CHINESE_RANGES.to_vec())?;
    m.add("HAN_RANGES", HAN_RANGES.to_vec())?;
    Ok(())
}
