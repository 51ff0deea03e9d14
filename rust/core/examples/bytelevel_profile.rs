//! Encode a JSON list of strings with a byte-level `tokenizer.json` in a loop, one thread, and
//! print MB/s: a target for `perf record` when profiling the byte-level encoder.
//!
//!     cargo run --release -p zhllama-core --example bytelevel_profile -- TOKENIZER_JSON DOCS_JSON [SECONDS]
//!
//! `ZHLLAMA_PRETOKEN_CACHE=0`: with the pre-token cache off; `ZHLLAMA_BACKTRACK=0`: the merge
//! loop instead of the backtracking encoder; `ZHLLAMA_PROFILE_SPLIT=1`: only
//! the pre-tokenizer (the number of pre-tokens stands for the ids).

use std::path::Path;

/// CPU seconds this thread has run (Linux: /proc/thread-self/schedstat), else wall-clock seconds.
fn cpu_seconds(wall: std::time::Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns / 1e9)
}
use zhllama_core::ByteLevelTokenizer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bytelevel_profile TOKENIZER_JSON DOCS_JSON [SECONDS]");
        std::process::exit(2);
    }
    let loading = std::time::Instant::now();
    let tok = ByteLevelTokenizer::from_json_file(Path::new(&args[1])).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    tok.set_pretoken_cache(std::env::var("ZHLLAMA_PRETOKEN_CACHE").as_deref() != Ok("0"));
    tok.set_backtracking(std::env::var("ZHLLAMA_BACKTRACK").as_deref() != Ok("0"));
    eprintln!(
        "loaded in {:.2} s; backtracking tables (bytes, slow-checked tokens): {:?}",
        loading.elapsed().as_secs_f64(),
        tok.backtracking_tables()
    );
    let docs: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(&args[2]).expect("DOCS_JSON readable"))
            .expect("DOCS_JSON: a JSON list of strings");
    let seconds: f64 = args
        .get(3)
        .map_or(3.0, |s| s.parse().expect("SECONDS: a number"));
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let wall = std::time::Instant::now();
    let t0 = cpu_seconds(wall);
    let (mut passes, mut n) = (0usize, 0usize);
    let mut out = Vec::new();
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
