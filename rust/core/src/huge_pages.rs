//! A global allocator that asks Linux for 2 MiB pages (transparent huge pages, `madvise`) under
//! every allocation of at least [`MIN_BYTES`], and is the system allocator otherwise.
//!
//! Why: the byte-level encoder's tables (the vocabulary's hash maps, the trie, the token
//! records, the pair table: 4-12 MB each) are read at random. With 4 KiB pages a read of a new
//! line nearly always misses the TLB too, and in a virtual machine a TLB miss is a
//! two-dimensional page walk; one 2 MiB page covers 512 times as much. The ids do not change,
//! only where the tables' bytes sit (see `benches/RESULTS.md`, byte-level, sixth session).
//!
//! Register it where the program is linked (the Python extension, a binary):
//! `#[global_allocator] static ALLOC: zhllama_core::HugePageAlloc = zhllama_core::HugePageAlloc;`.
//! The kernel may decline (THP `never`, or no free 2 MiB page): then the pages are 4 KiB ones,
//! as without it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Allocations of at least this many bytes are aligned to 2 MiB and advised.
pub const MIN_BYTES: usize = 1 << 21;
const HUGE: usize = 1 << 21;

pub struct HugePageAlloc;

static ON: AtomicBool = AtomicBool::new(true);

impl HugePageAlloc {
    /// Advise the allocations made from now on (the default) or not (for A/B measurements;
    /// blocks keep the alignment either way).
    pub fn set_enabled(on: bool) {
        ON.store(on, Ordering::Relaxed);
    }

    /// [`Self::set_enabled`] from the environment: off when `ZHLLAMA_HUGE_PAGES=0`, else on
    /// (the one reading of that variable, for the Python extension and the profiling harness).
    pub fn set_from_env() {
        Self::set_enabled(std::env::var("ZHLLAMA_HUGE_PAGES").as_deref() != Ok("0"));
    }
}

/// The layout a big allocation is made with: aligned to a 2 MiB page.
#[inline]
fn big(l: Layout) -> Layout {
    // A size >= MIN_BYTES and a power-of-two alignment >= the original one: always valid
    // (the size was valid for the smaller alignment and is far below isize::MAX - 2 MiB).
    Layout::from_size_align(l.size(), l.align().max(HUGE)).unwrap_or(l)
}

#[cfg(target_os = "linux")]
fn advise(p: *mut u8, len: usize) {
    extern "C" {
        fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
    }
    const MADV_HUGEPAGE: i32 = 14;
    // SAFETY: [p, p + len) is one live allocation of ours, aligned to 2 MiB (so to a page);
    // MADV_HUGEPAGE only changes how its not-yet-touched pages will be backed. A failure
    // (THP compiled out) leaves 4 KiB pages, which is fine.
    unsafe {
        madvise(p, len, MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_p: *mut u8, _len: usize) {}

// SAFETY: every method hands the System allocator a valid layout and frees a block with the
// layout it was made with (`big(l)` for sizes >= MIN_BYTES, whatever path made them).
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() < MIN_BYTES {
            return System.alloc(l);
        }
        let p = System.alloc(big(l));
        if !p.is_null() && ON.load(Ordering::Relaxed) {
            advise(p, l.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() < MIN_BYTES {
            return System.alloc_zeroed(l);
        }
        // Advise before the first write, so that the zeroing faults in 2 MiB pages.
        let p = self.alloc(l);
        if !p.is_null() {
            std::ptr::write_bytes(p, 0, l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if l.size() < MIN_BYTES {
            System.dealloc(p, l)
        } else {
            System.dealloc(p, big(l))
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.size() < MIN_BYTES && new_size < MIN_BYTES {
            return System.realloc(p, l, new_size);
        }
        let Ok(new) = Layout::from_size_align(new_size, l.align()) else {
            return std::ptr::null_mut();
        };
        let q = self.alloc(new);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small and big blocks, grown and shrunk across the threshold, keep their bytes.
    #[test]
    fn keeps_bytes_across_the_threshold() {
        let a = HugePageAlloc;
        for (from, to) in [
            (100, 200),
            (1000, MIN_BYTES + 5),
            (MIN_BYTES + 5, 3 * MIN_BYTES),
            (3 * MIN_BYTES, 64),
        ] {
            let l = Layout::from_size_align(from, 8).unwrap_or_else(|e| panic!("{e}"));
            // SAFETY: a non-zero layout; the block is written only within its size and freed
            // once, with the layout of its last size.
            unsafe {
                let p = a.alloc_zeroed(l);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, from).iter().all(|&b| b == 0));
                for i in 0..from {
                    *p.add(i) = (i % 251) as u8;
                }
                if from >= MIN_BYTES {
                    assert_eq!(p as usize % HUGE, 0);
                }
                let q = a.realloc(p, l, to);
                assert!(!q.is_null());
                let kept = from.min(to);
                assert!((0..kept).all(|i| *q.add(i) == (i % 251) as u8));
                a.dealloc(
                    q,
                    Layout::from_size_align(to, 8).unwrap_or_else(|e| panic!("{e}")),
                );
            }
        }
    }
}
