//! Scheduling CPython's cyclic GC while `encode_batch` builds one list per text.
//!
//! Left alone, the GC runs a generation-0 pass every `threshold0` (700) new containers and a
//! generation-1 pass every tenth of those, so a 20K-text batch walks its own lists two or three
//! times while they are being built, on the one thread that holds the GIL. Disabling the GC
//! for the whole call instead leaves every list young, and the first allocation after the
//! call walks them all at once, serially, after the encoder threads are done.
//!
//! [`GcPacer`] does the young-generation work exactly as often as CPython would (one
//! `gc.collect(0)` per `threshold0` lists), but from the list-building loop, where it overlaps
//! with the pool threads still encoding. Older generations are left to CPython's own schedule
//! once the GC is enabled again: nothing is skipped, only generation 0 is moved. A GC the
//! caller had disabled stays disabled and is never run.

use pyo3::prelude::*;

pub struct GcPacer<'py> {
    gc: Bound<'py, PyModule>,
    /// The GC was enabled on entry (so this pacer disabled it and enables it again).
    was_enabled: bool,
    /// Lists between two generation-0 passes; `None` when the GC was off or `threshold0` is 0.
    every: Option<usize>,
    made: usize,
}

impl<'py> GcPacer<'py> {
    /// Disable automatic collection for the duration (re-enabled by `Drop`).
    pub fn start(py: Python<'py>) -> PyResult<Self> {
        let gc = py.import("gc")?;
        let was_enabled = gc.call_method0("isenabled")?.is_truthy()?;
        let mut every = None;
        if was_enabled {
            let threshold0: i64 = gc.call_method0("get_threshold")?.get_item(0)?.extract()?;
            // threshold0 == 0 means "never collect automatically": never collect here either.
            every = (threshold0 > 0).then_some(threshold0 as usize);
            gc.call_method0("disable")?;
        }
        Ok(GcPacer {
            gc,
            was_enabled,
            every,
            made: 0,
        })
    }

    /// Count one new list; run the generation-0 pass CPython would have run by now.
    pub fn tick(&mut self) -> PyResult<()> {
        self.made += 1;
        match self.every {
            Some(n) if self.made.is_multiple_of(n) => {
                self.gc.call_method1("collect", (0,)).map(drop)
            }
            _ => Ok(()),
        }
    }
}

impl Drop for GcPacer<'_> {
    fn drop(&mut self) {
        if self.was_enabled {
            // Re-enabling cannot fail in CPython; an error here would leave nothing to undo.
            let _ = self.gc.call_method0("enable");
        }
    }
}
