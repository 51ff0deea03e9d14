//! `tokenize-corpus --merge-manifests PART... --out DIR`: join the outputs of `--num-shards`
//! workers into one corpus, in the order given.
//!
//! The merged manifest is built from the parts' [`Manifest`]s, so every field and counter the
//! schema has is carried or summed ([`Counts::add`]); a part with a field this schema lacks is
//! refused when read. Shards are hard-linked (copied across file systems) and renumbered;
//! `manifest.json` is written last, so the merged directory is complete or has no manifest.

use super::error::{CorpusError, Result};
use super::lock::OutputLock;
use super::manifest::{
    shard_name, Counts, Manifest, Options, Position, Shard, MANIFEST, MAX_BAD_EXAMPLES, PROGRESS,
};
use std::path::{Path, PathBuf};

/// Merge the finished corpora in `parts` into `out`; returns the merged manifest.
pub fn merge_parts(parts: &[PathBuf], out: &Path) -> Result<Manifest> {
    // Everything that can refuse the merge runs before `out` is created, locked or changed.
    if parts.is_empty() {
        return Err(CorpusError::Options {
            message: "--merge-manifests needs at least one part directory".into(),
        });
    }
    refuse_overlap(parts, out)?;
    let manifests = parts
        .iter()
        .map(|p| {
            let path = p.join(MANIFEST);
            if !path.is_file() {
                return Err(CorpusError::MergeRefused {
                    path: p.clone(),
                    message: "has no manifest.json; is its tokenize-corpus run finished?".into(),
                });
            }
            Ok((p.clone(), Manifest::read(&path)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut merged = merge_manifests(&manifests)?;

    std::fs::create_dir_all(out).map_err(|e| CorpusError::io(out, e))?;
    let _lock = OutputLock::acquire(out)?;
    // An older manifest goes first: from here until the new one is written, `out` is visibly
    // unfinished.
    for name in [MANIFEST, PROGRESS] {
        let path = out.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| CorpusError::io(&path, e))?;
        }
    }
    super::pipeline::remove_stale_files(out, 0)?;
    for (shard, name) in merged.shards.iter_mut().zip(linked_names(&manifests)) {
        let (part, part_shard) = name;
        for ext in ["bin", "idx"] {
            let src = part.join(format!("{part_shard}.{ext}"));
            let dst = out.join(format!("{}.{ext}", shard.name));
            link_or_copy(&src, &dst)?;
        }
        shard.from = Some(part.join(part_shard).display().to_string());
    }
    merged.write(&out.join(MANIFEST))?;
    Ok(merged)
}

/// Refuse an `--out` that is one of the parts (the merge would delete the shards it reads)
/// and a part given twice (its documents would be counted twice).
fn refuse_overlap(parts: &[PathBuf], out: &Path) -> Result<()> {
    let id = |p: &Path| std::fs::canonicalize(p).ok();
    let out_id = id(out);
    let mut seen: Vec<PathBuf> = Vec::new();
    for p in parts {
        let Some(pid) = id(p) else { continue };
        if out_id.as_ref() == Some(&pid) {
            return Err(CorpusError::MergeRefused {
                path: out.to_path_buf(),
                message: format!(
                    "--out is also one of the parts ({}); merge into a new directory",
                    p.display()
                ),
            });
        }
        if seen.contains(&pid) {
            return Err(CorpusError::MergeRefused {
                path: p.clone(),
                message: "is given twice; its documents would be merged twice".into(),
            });
        }
        seen.push(pid);
    }
    Ok(())
}

/// `(part directory, shard name in it)` for each merged shard, in merged order.
fn linked_names(manifests: &[(PathBuf, Manifest)]) -> Vec<(&Path, &str)> {
    manifests
        .iter()
        .flat_map(|(p, m)| m.shards.iter().map(move |s| (p.as_path(), s.name.as_str())))
        .collect()
}

/// The merged manifest: parts checked to come from one command, shards renumbered, sources
/// concatenated (so shard end positions shift by the files before their part), counts summed.
pub fn merge_manifests(parts: &[(PathBuf, Manifest)]) -> Result<Manifest> {
    let (first_dir, first) = &parts[0];
    let comparable = |o: &Options| Options {
        // Each worker records its own split; shard size changes only where shards end.
        extra: serde_json::Value::Null,
        shard_size: 0,
        ..o.clone()
    };
    for (dir, m) in parts {
        let refuse = |message: String| CorpusError::MergeRefused {
            path: dir.clone(),
            message,
        };
        if !m.complete {
            return Err(refuse(
                "holds an unfinished corpus; rerun its tokenize-corpus command first".into(),
            ));
        }
        let differs = |what: &str, a: String, b: String| {
            refuse(format!(
                "{what} {a} differs from {}'s {b}; parts must come from one command",
                first_dir.display()
            ))
        };
        if m.format_version != first.format_version {
            return Err(differs(
                "format version",
                m.format_version.to_string(),
                first.format_version.to_string(),
            ));
        }
        if m.tokenizer_sha256 != first.tokenizer_sha256 {
            return Err(differs(
                "tokenizer sha256",
                m.tokenizer_sha256.clone(),
                first.tokenizer_sha256.clone(),
            ));
        }
        if m.dtype != first.dtype {
            return Err(differs(
                "dtype",
                format!("{:?}", m.dtype),
                format!("{:?}", first.dtype),
            ));
        }
        if comparable(&m.options) != comparable(&first.options) {
            let show = |o: &Options| serde_json::to_string(&comparable(o)).unwrap_or_default();
            return Err(differs("options", show(&m.options), show(&first.options)));
        }
    }
    let mut merged = Manifest {
        options: Options {
            extra: serde_json::json!({
                "merged_from": parts.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>()
            }),
            ..first.options.clone()
        },
        complete: true,
        num_docs: 0,
        num_tokens: 0,
        shards: Vec::new(),
        sources: Vec::new(),
        totals: Counts::default(),
        bad_line_examples: Vec::new(),
        ..first.clone()
    };
    for (_, m) in parts {
        let files_before = merged.sources.len();
        for s in &m.shards {
            merged.shards.push(Shard {
                name: shard_name(merged.shards.len()),
                end: Position {
                    file: files_before + s.end.file,
                    ..s.end
                },
                from: None,
                ..s.clone()
            });
        }
        merged.sources.extend(m.sources.iter().cloned());
        merged.totals.add(&m.totals);
        merged.num_docs += m.num_docs;
        merged.num_tokens += m.num_tokens;
        let room = MAX_BAD_EXAMPLES.saturating_sub(merged.bad_line_examples.len());
        merged
            .bad_line_examples
            .extend(m.bad_line_examples.iter().take(room).cloned());
    }
    Ok(merged)
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_file() {
        return Err(CorpusError::MergeRefused {
            path: src.to_path_buf(),
            message: "is missing, but its part's manifest lists it; rerun that part".into(),
        });
    }
    if std::fs::hard_link(src, dst).is_err() {
        // Across file systems (or where links are not allowed) a copy does the same job.
        std::fs::copy(src, dst).map_err(|e| CorpusError::io(dst, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::input::{Compression, Format, InputFile};
    use crate::corpus::manifest::Source;
    use crate::corpus::megatron::Dtype;

    fn part(n: u64, files: usize) -> Manifest {
        let counts = Counts {
            lines: n,
            docs: n + 1,
            tokens: n + 2,
            bad_lines: n + 3,
            empty_docs: n + 4,
            invalid_utf8_docs: n + 5,
            invalid_utf8_bytes: n + 6,
        };
        Manifest {
            format: super::super::manifest::FORMAT.into(),
            format_version: super::super::manifest::FORMAT_VERSION,
            complete: true,
            tokenizer_sha256: "abc".into(),
            vocab_size: 100,
            dtype: Dtype::Uint16,
            megatron_dtype_code: 8,
            bos_id: Some(1),
            eos_id: Some(2),
            options: Options {
                text_field: "text".into(),
                append_eos: true,
                add_bos: false,
                shard_size: 10,
                // Spelled as in JSON, whatever Rust type the option has.
                on_bad_line: serde_json::from_value(serde_json::json!("fail")).unwrap(),
                extra: serde_json::json!({"shard_index": n}),
            },
            num_docs: n + 1,
            num_tokens: n + 2,
            shards: vec![Shard {
                name: shard_name(0),
                docs: n + 1,
                tokens: n + 2,
                end: Position {
                    file: files - 1,
                    line: 7,
                    offset: 70,
                },
                from: None,
            }],
            sources: (0..files)
                .map(|i| Source {
                    file: InputFile {
                        path: format!("f{n}-{i}").into(),
                        format: Format::Txt,
                        compression: Compression::None,
                        bytes: 1,
                    },
                    counts: counts.clone(),
                })
                .collect(),
            totals: counts,
            bad_line_examples: vec![format!("f{n}:1: bad")],
        }
    }

    #[test]
    fn every_counter_is_summed_and_positions_shift() {
        let parts = vec![("a".into(), part(10, 2)), ("b".into(), part(20, 3))];
        let m = merge_manifests(&parts).unwrap();
        let mut want = parts[0].1.totals.clone();
        want.add(&parts[1].1.totals);
        assert_eq!(m.totals, want);
        assert_eq!(m.totals.invalid_utf8_bytes, 16 + 26);
        assert_eq!((m.num_docs, m.num_tokens), (11 + 21, 12 + 22));
        assert_eq!(m.sources.len(), 5);
        assert_eq!(m.shards[1].name, "shard-00001");
        assert_eq!(m.shards[1].end.file, 2 + 2);
        assert_eq!(m.bad_line_examples.len(), 2);
        assert_eq!(
            m.options.extra["merged_from"],
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn parts_from_different_commands_are_refused() {
        let mut b = part(20, 1);
        b.options.add_bos = true;
        let err = merge_manifests(&[("a".into(), part(10, 1)), ("b".into(), b)]).unwrap_err();
        assert!(err.to_string().contains("options"), "{err}");
        let mut b = part(20, 1);
        b.complete = false;
        let err = merge_manifests(&[("a".into(), part(10, 1)), ("b".into(), b)]).unwrap_err();
        assert!(err.to_string().contains("unfinished"), "{err}");
    }
}
