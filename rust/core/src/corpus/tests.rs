//! Pipeline tests with a byte-level fake encoder: ordering, sharding, determinism, resume and
//! bad input. Parity with sentencepiece is tested from Python against sentencepiece itself.

use super::manifest::{MANIFEST, PROGRESS};
use super::megatron::{read_shard, Dtype};
use super::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// id = byte + 3, BOS 1, EOS 2 (sentencepiece's default layout); `big` forces int32 output.
struct Bytes {
    big: bool,
}

impl DocEncoder for Bytes {
    fn encode_doc(&self, text: &[u8], out: &mut Vec<u32>) {
        out.extend(
            text.iter()
                .map(|&b| b as u32 + if self.big { 70_000 } else { 3 }),
        );
    }
    fn vocab_size(&self) -> usize {
        if self.big {
            70_259
        } else {
            259
        }
    }
    fn bos_id(&self) -> Option<u32> {
        Some(1)
    }
    fn eos_id(&self) -> Option<u32> {
        Some(2)
    }
}

/// A fresh, empty directory for one test (`tag` unique per test), shared by the crate's tests.
pub(crate) fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zhllama-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(shard_size: u64, skip: bool) -> Options {
    Options {
        text_field: "text".into(),
        append_eos: true,
        add_bos: false,
        shard_size,
        on_bad_line: if skip {
            OnBadLine::Skip
        } else {
            OnBadLine::Fail
        },
        extra: serde_json::Value::Null,
    }
}

fn config(files: &[PathBuf], out: &Path, threads: usize, opts: Options) -> TokenizeConfig {
    TokenizeConfig {
        inputs: files
            .iter()
            .map(|p| InputFile::from_path(p).unwrap())
            .collect(),
        out_dir: out.to_path_buf(),
        threads,
        options: opts,
        tokenizer_sha256: "fake".into(),
    }
}

fn run(cfg: &TokenizeConfig, enc: &Bytes) -> Result<RunSummary, CorpusError> {
    tokenize_corpus(cfg, enc, None, &Progress::default())
}

/// Every document of the output directory, in order.
fn read_docs(out: &Path) -> Vec<Vec<u32>> {
    let m = Manifest::read(&out.join(MANIFEST)).unwrap();
    m.shards
        .iter()
        .flat_map(|s| read_shard(out, &s.name).unwrap().1)
        .collect()
}

fn dir_bytes(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expect(texts: &[&[u8]]) -> Vec<Vec<u32>> {
    texts
        .iter()
        .map(|t| t.iter().map(|&b| b as u32 + 3).chain([2]).collect())
        .collect()
}

/// Many documents across several files of every line format.
fn corpus(dir: &Path) -> (Vec<PathBuf>, Vec<Vec<u8>>) {
    let mut texts: Vec<Vec<u8>> = Vec::new();
    let mut files = Vec::new();
    let lines = |k: usize| {
        (0..300).map(move |i| format!("doc {k}-{i} {}", "中".repeat(i % 17)).into_bytes())
    };
    let txt = dir.join("a.txt");
    let t: Vec<Vec<u8>> = lines(0).collect();
    std::fs::write(&txt, t.join(&b"\n"[..])).unwrap();
    texts.extend(t);
    files.push(txt);
    let json = |k: usize| -> (Vec<u8>, Vec<Vec<u8>>) {
        let t: Vec<Vec<u8>> = lines(k).collect();
        let body: String = t
            .iter()
            .map(|l| {
                format!(
                    "{{\"id\":1,\"text\":{}}}\n",
                    serde_json::to_string(std::str::from_utf8(l).unwrap()).unwrap()
                )
            })
            .collect();
        (body.into_bytes(), t)
    };
    let (body, t) = json(1);
    let gz = dir.join("b.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&body).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    texts.extend(t);
    files.push(gz);
    let (body, t) = json(2);
    let zst = dir.join("c.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(&body[..], 1).unwrap()).unwrap();
    texts.extend(t);
    files.push(zst);
    (files, texts)
}

#[test]
fn formats_order_and_eos() {
    let dir = tmpdir("formats");
    let (files, texts) = corpus(&dir);
    let out = dir.join("out");
    let s = run(
        &config(&files, &out, 2, options(1 << 30, false)),
        &Bytes { big: false },
    )
    .unwrap();
    let refs: Vec<&[u8]> = texts.iter().map(|t| &t[..]).collect();
    assert_eq!(read_docs(&out), expect(&refs));
    assert_eq!(s.manifest.num_docs, 900);
    assert_eq!(s.manifest.shards.len(), 1);
    assert_eq!(s.manifest.dtype, Dtype::Uint16);
    let again = run(
        &config(&files, &out, 2, options(1 << 30, false)),
        &Bytes { big: false },
    )
    .unwrap();
    assert!(again.already_done);
    let other = run(
        &config(&files, &out, 2, options(1 << 20, false)),
        &Bytes { big: false },
    );
    assert!(other.unwrap_err().to_string().contains("another --out"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn deterministic_across_threads_and_dtype() {
    let dir = tmpdir("determinism");
    let (files, _) = corpus(&dir);
    for big in [false, true] {
        let outs: Vec<_> = [1, 3]
            .iter()
            .map(|&t| {
                let out = dir.join(format!("out-{big}-{t}"));
                let s = run(
                    &config(&files, &out, t, options(4096, false)),
                    &Bytes { big },
                )
                .unwrap();
                assert!(s.manifest.shards.len() > 5);
                dir_bytes(&out)
            })
            .collect();
        assert_eq!(outs[0], outs[1]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_after_interruption_is_byte_identical() {
    let dir = tmpdir("resume");
    let (files, _) = corpus(&dir);
    let whole = dir.join("whole");
    run(
        &config(&files, &whole, 2, options(2048, false)),
        &Bytes { big: false },
    )
    .unwrap();
    let out = dir.join("cut");
    let cfg = config(&files, &out, 2, options(2048, false));
    let progress = Progress::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            while progress.docs.load(Ordering::Relaxed) < 400 {
                std::thread::yield_now();
            }
            progress.cancel.store(true, Ordering::Relaxed);
        });
        let r = tokenize_corpus(&cfg, &Bytes { big: false }, None, &progress);
        assert!(
            matches!(r, Err(CorpusError::Cancelled)),
            "run should be cancelled"
        );
    });
    assert!(out.join(PROGRESS).exists() && !out.join(MANIFEST).exists());
    // Debris a kill -9 leaves: a half-written shard under its temporary name.
    std::fs::write(out.join("shard-99999.bin.tmp"), b"junk").unwrap();
    let s = run(&cfg, &Bytes { big: false }).unwrap();
    assert!(s.resumed_shards > 0 && !s.already_done);
    assert_eq!(dir_bytes(&out), dir_bytes(&whole));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_lines_fail_or_skip_and_invalid_utf8_counted() {
    let dir = tmpdir("bad");
    let j = dir.join("x.jsonl");
    std::fs::write(
        &j,
        b"{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n{\"text\": \"a\xffb\"}\n\n{\"text\": 3\n",
    )
    .unwrap();
    let t = dir.join("y.txt");
    std::fs::write(&t, b"r\xe4\xb8w\r\nlast").unwrap();
    let files = vec![j.clone(), t];
    let err = run(
        &config(&files, &dir.join("o1"), 1, options(1 << 30, false)),
        &Bytes { big: false },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("x.jsonl:2:")
            && msg.contains("--text-field")
            && msg.contains("--on-bad-line skip"),
        "{msg}"
    );
    let out = dir.join("o2");
    let s = run(
        &config(&files, &out, 2, options(1 << 30, true)),
        &Bytes { big: false },
    )
    .unwrap();
    let m = &s.manifest;
    assert_eq!(
        (m.totals.bad_lines, m.totals.empty_docs, m.totals.docs),
        (2, 1, 4)
    );
    assert_eq!(
        (m.totals.invalid_utf8_docs, m.totals.invalid_utf8_bytes),
        (2, 3)
    );
    assert_eq!(m.bad_line_examples.len(), 2);
    // Raw bytes go to the encoder for .txt; JSON text is repaired per byte as sentencepiece does.
    assert_eq!(
        read_docs(&out),
        expect(&[b"ok", "a\u{FFFD}b".as_bytes(), b"r\xe4\xb8w", b"last"])
    );
}

#[test]
fn truncated_gzip_names_the_file() {
    let dir = tmpdir("gz");
    let gz = dir.join("t.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..5000 {
        writeln!(enc, "{{\"text\": \"line {i} with some words\"}}").unwrap();
    }
    let full = enc.finish().unwrap();
    std::fs::write(&gz, &full[..full.len() / 2]).unwrap();
    let err = run(
        &config(&[gz], &dir.join("o"), 2, options(1 << 30, false)),
        &Bytes { big: false },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("t.jsonl.gz") && msg.contains("gzip"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
