//! Differential test of the normalizer and the Unigram model against sentencepiece itself.
//!
//! `tests/gen_unigram_cases.py` (run here, cached under target/ by the script's hash) asks the
//! installed sentencepiece for `normalize` and `encode` on the real fixtures and on tiny models
//! it trains with every normalizer flag flipped. This test rebuilds both answers from
//! `Normalizer` + `UnigramModel` and requires zero mismatches.
//!
//! Env: `ZHLLAMA_PARITY_DIR` = use an existing generated directory; `ZHLLAMA_PARITY_QUICK=1` =
//! generate fewer cases. Without python3 + sentencepiece the test skips (fails when
//! `ZHLLAMA_REQUIRE_FIXTURES=1`).

mod common;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use zhllama_core::model::{parse_byte_piece, ModelProto, PieceType};
use zhllama_core::normalizer::Normalizer;
use zhllama_core::unigram::UnigramModel;

fn skip_or_fail(why: &str) -> Option<PathBuf> {
    if std::env::var("ZHLLAMA_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("unigram parity cannot run: {why}");
    }
    eprintln!("skipping unigram parity: {why}");
    None
}

/// The generated directory, generating it when absent.
fn cases_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("ZHLLAMA_PARITY_DIR") {
        return Some(PathBuf::from(d));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/gen_unigram_cases.py");
    let quick = std::env::var("ZHLLAMA_PARITY_QUICK").is_ok_and(|v| v == "1");
    let fixtures =
        common::fixture("chinese_sp.model").and_then(|p| p.parent().map(Path::to_path_buf));
    let source = std::fs::read(&script).expect("tests/gen_unigram_cases.py is missing");
    let mut h = Sha256::new();
    h.update(&source);
    h.update([quick as u8, fixtures.is_some() as u8]);
    let tag: String = h
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("unigram-parity-{tag}"));
    if dir.join("manifest.json").exists() {
        return Some(dir);
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(&dir);
    if quick {
        cmd.arg("--quick");
    }
    if let Some(f) = &fixtures {
        cmd.arg("--fixtures").arg(f);
    }
    eprintln!("generating sentencepiece cases: {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Some(dir),
        Ok(s) => skip_or_fail(&format!(
            "the generator exited with {s} (is sentencepiece==0.2.3 installed?)"
        )),
        Err(e) => skip_or_fail(&format!("python3 not runnable: {e}")),
    }
}

fn clip(s: &str) -> String {
    let n = s.chars().count();
    if n <= 120 {
        return s.to_string();
    }
    format!("{}…[{} chars]", s.chars().take(120).collect::<String>(), n)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `SentencePieceProcessor::PopulateSentencePieceText` on a Unigram result: unk tokens become
/// one `<0xXX>` per byte with byte fallback, else consecutive unk tokens fuse into one.
fn finish_ids(
    model: &ModelProto,
    unigram: &UnigramModel,
    normalized: &str,
    tokens: &[(u32, std::ops::Range<usize>)],
) -> Vec<u32> {
    let byte_ids: std::collections::HashMap<u8, u32> = model
        .pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind() == PieceType::Byte)
        .filter_map(|(i, p)| Some((parse_byte_piece(&p.piece)?, i as u32)))
        .collect();
    let mut ids = Vec::new();
    let mut prev_unk = false;
    for (id, range) in tokens {
        let is_unk = *id == unigram.unk_id();
        if is_unk && unigram.byte_fallback() {
            ids.extend(
                normalized.as_bytes()[range.clone()]
                    .iter()
                    .map(|b| byte_ids.get(b).copied().unwrap_or(unigram.unk_id())),
            );
        } else if !(is_unk && prev_unk) {
            ids.push(*id);
        }
        prev_unk = is_unk;
    }
    ids
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    normalized: String,
    ids: Option<Vec<u32>>,
}

#[derive(serde::Deserialize)]
struct Entry {
    name: String,
    model: String,
    cases: String,
    unigram: bool,
}

#[test]
fn normalizer_and_unigram_match_sentencepiece() {
    let Some(dir) = cases_dir() else { return };
    let manifest: Vec<Entry> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for e in &manifest {
        let model = ModelProto::from_file(&e.model).unwrap();
        let trainer = model.trainer_spec();
        let user: Vec<String> = model
            .pieces
            .iter()
            .filter(|p| p.kind() == PieceType::UserDefined)
            .map(|p| p.piece.clone())
            .collect();
        let norm = Normalizer::new(
            &model.normalizer_spec(),
            trainer.treat_whitespace_as_suffix,
            &user,
        )
        .unwrap();
        // sentencepiece's unk id is the UNKNOWN piece's index, whatever trainer_spec.unk_id says.
        let unk_id = model
            .pieces
            .iter()
            .position(|p| p.kind() == PieceType::Unknown)
            .map(|i| i as u32);
        let unigram = e
            .unigram
            .then(|| UnigramModel::new(&model.pieces, unk_id, trainer.byte_fallback).unwrap());
        let (mut n_cases, mut bad_norm, mut bad_ids, mut n_ids) = (0, 0, 0, 0);
        let text = std::fs::read_to_string(dir.join(&e.cases)).unwrap();
        let mut buf = String::new();
        let mut tokens = Vec::new();
        for line in text.lines() {
            let c: Case = serde_json::from_str(line).unwrap();
            let input = unhex(&c.text);
            n_cases += 1;
            buf.clear();
            norm.normalize_into(&input, &mut buf);
            if buf != c.normalized {
                bad_norm += 1;
                if failures.len() < 10 {
                    failures.push(format!(
                        "{}: normalize({:?}) = {:?}, sentencepiece {:?}",
                        e.name,
                        clip(&String::from_utf8_lossy(&input)),
                        clip(&buf),
                        clip(&c.normalized)
                    ));
                }
                continue;
            }
            if let (Some(u), Some(expected)) = (&unigram, &c.ids) {
                n_ids += 1;
                tokens.clear();
                u.encode(&buf, &mut tokens);
                let ids = finish_ids(&model, u, &buf, &tokens);
                if &ids != expected {
                    bad_ids += 1;
                    if failures.len() < 10 {
                        let at = ids
                            .iter()
                            .zip(expected)
                            .position(|(a, b)| a != b)
                            .unwrap_or(ids.len().min(expected.len()));
                        let lo = at.saturating_sub(3);
                        failures.push(format!(
                            "{}: encode({:?}) differs at token {at}: ours {:?}, sentencepiece {:?}",
                            e.name,
                            clip(&buf),
                            &ids[lo..(at + 4).min(ids.len())],
                            &expected[lo..(at + 4).min(expected.len())]
                        ));
                    }
                }
            }
        }
        report.push(format!(
            "{:<20} cases {n_cases:>6}  normalize mismatches {bad_norm}  encode checked {n_ids:>6} mismatches {bad_ids}",
            e.name
        ));
    }
    eprintln!(
        "unigram parity ({}):\n  {}",
        dir.display(),
        report.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "mismatches against sentencepiece:\n{}",
        failures.join("\n")
    );
}
