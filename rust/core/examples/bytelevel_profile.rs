//! Encode a JSON list of strings with a byte-level `tokenizer.json` in a loop, one thread, and
//! print MB/s: a target for `perf record` when profiling the byte-level encoder.
//!
//!     cargo run --release -p zhllama-core --example bytelevel_profile -- TOKENIZER_JSON DOCS_JSON [SECONDS]
//!
//! `ZHLLAMA_PRETOKEN_CACHE=0`: with the pre-token cache off; `ZHLLAMA_BACKTRACK=0`: the merge
//! loop instead of the backtracking encoder; `ZHLLAMA_CUTS=0`: no cuts between characters;
//! `ZHLLAMA_PROFILE_SPLIT=1`: only
//! the pre-tokenizer (the number of pre-tokens stands for the ids); `ZHLLAMA_HUGE_PAGES=0`: big
//! allocations not advised onto 2 MiB pages ([`zhllama_core::HugePageAlloc`], registered here as
//! in the Python extension).
//!
//! `ZHLLAMA_PROFILE_COLD=R`: instead of the loop, R rounds of what `benches/bytelevel_bench.py`
//! times, each on a freshly loaded tokenizer: one pass over the first half of the documents
//! ("cold": tables never read, empty pre-token cache), one over the second half ("new text":
//! the same tables, text not seen before), the first half again ("again"); the best of the
//! R rounds of each, in MB/s of CPU time; `ZHLLAMA_PROFILE_OTHER_THREAD=1`: those passes on a
//! new thread, not the one that loaded the tokenizer.

use std::path::Path;

/// As in the Python extension: big tables on 2 MiB pages (`ZHLLAMA_HUGE_PAGES=0`: not advised).
#[global_allocator]
static ALLOC: zhllama_core::HugePageAlloc = zhllama_core::HugePageAlloc;

/// CPU seconds this thread has run (Linux: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, exact to
/// the nanosecond; /proc's schedstat only moves at scheduler ticks), else wall-clock seconds.
fn cpu_seconds(wall: std::time::Instant) -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec (64-bit Linux layout).
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as f64 + ts.nsec as f64 / 1e9;
        }
    }
    wall.elapsed().as_secs_f64()
}
use zhllama_core::ByteLevelTokenizer;

fn load(path: &str) -> ByteLevelTokenizer {
    let tok = ByteLevelTokenizer::from_json_file(Path::new(path)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    tok.set_pretoken_cache(std::env::var("ZHLLAMA_PRETOKEN_CACHE").as_deref() != Ok("0"));
    tok.set_backtracking(std::env::var("ZHLLAMA_BACKTRACK").as_deref() != Ok("0"));
    tok.set_char_cuts(std::env::var("ZHLLAMA_CUTS").as_deref() != Ok("0"));
    tok
}

/// MB/s of CPU time of one pass of `tok` over `docs`.
fn pass(tok: &ByteLevelTokenizer, docs: &[String], out: &mut Vec<u32>) -> f64 {
    let wall = std::time::Instant::now();
    let t = cpu_seconds(wall);
    for d in docs {
        out.clear();
        tok.encode_into(d, false, false, false, out);
    }
    docs.iter().map(|d| d.len()).sum::<usize>() as f64 / (cpu_seconds(wall) - t) / 1e6
}

fn main() {
    zhllama_core::HugePageAlloc::set_from_env();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bytelevel_profile TOKENIZER_JSON DOCS_JSON [SECONDS]");
        std::process::exit(2);
    }
    let docs: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&args[2]).expect("DOCS_JSON readable"))
            .expect("DOCS_JSON: a JSON list of strings");
    let mut out = Vec::new();
    if let Ok(rounds) = std::env::var("ZHLLAMA_PROFILE_COLD") {
        let rounds: usize = rounds
            .parse()
            .expect("ZHLLAMA_PROFILE_COLD: a number of rounds");
        let (a, b) = docs.split_at(docs.len() / 2);
        let mut best = [0f64; 3];
        // ZHLLAMA_PROFILE_OTHER_THREAD=1: the passes on one long-lived thread other than the
        // one that built the tables (as the Python binding's pool does).
        let other = std::env::var("ZHLLAMA_PROFILE_OTHER_THREAD").as_deref() == Ok("1");
        let three =
            |tok: &ByteLevelTokenizer, out: &mut Vec<u32>| [a, b, a].map(|set| pass(tok, set, out));
        std::thread::scope(|s| {
            let (to_worker, from_main) = std::sync::mpsc::channel::<ByteLevelTokenizer>();
            let (to_main, from_worker) = std::sync::mpsc::channel::<[f64; 3]>();
            if other {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for tok in from_main {
                        let _ = to_main.send(three(&tok, &mut out));
                    }
                });
            }
            for _ in 0..rounds {
                let tok = load(&args[1]);
                let got = if other {
                    let _ = to_worker.send(tok);
                    from_worker.recv().expect("the worker thread answers")
                } else {
                    three(&tok, &mut out)
                };
                for k in 0..3 {
                    best[k] = best[k].max(got[k]);
                }
            }
        });
        println!(
            "cold {:.1}, new text {:.1}, again {:.1} MB/s of CPU time (best of {rounds})",
            best[0], best[1], best[2]
        );
        return;
    }
    let loading = std::time::Instant::now();
    let tok = load(&args[1]);
    eprintln!(
        "loaded in {:.2} s; backtracking tables (bytes, slow-checked tokens): {:?}",
        loading.elapsed().as_secs_f64(),
        tok.backtracking_tables()
    );
    let seconds: f64 = args
        .get(3)
        .map_or(3.0, |s| s.parse().expect("SECONDS: a number"));
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let wall = std::time::Instant::now();
    let t0 = cpu_seconds(wall);
    let (mut passes, mut n) = (0usize, 0usize);
    let split_only = std::env::var("ZHLLAMA_PROFILE_SPLIT").as_deref() == Ok("1");
    while cpu_seconds(wall) - t0 < seconds {
        for d in &docs {
            if split_only {
                tok.for_each_pretoken(d, &mut |_| n += 1);
                continue;
            }
            out.clear();
            tok.encode_into(d, false, false, false, &mut out);
            n += out.len();
        }
        passes += 1;
    }
    let s = cpu_seconds(wall) - t0;
    println!(
        "{:.1} MB/s of CPU time ({passes} passes, {} ids a pass)",
        (bytes * passes) as f64 / s / 1e6,
        n / passes
    );
}
