//! HF `tokenizer.json` with a byte-level BPE model. Implemented components (anything else is
//! refused in one line naming it):
//! - model `BPE` over the GPT-2 byte alphabet: `vocab`, `merges` (`"a b"` or `["a", "b"]`),
//!   `ignore_merges`; no dropout, no `continuing_subword_prefix`/`end_of_word_suffix`;
//! - normalizer: none, or `NFC` (Qwen2);
//! - pre-tokenizer: `ByteLevel` (with `use_regex`: GPT-2's pattern), or a `Sequence` of
//!   `Split(Regex, Isolated)` / `Digits` stages ending in `ByteLevel`; `add_prefix_space` off;
//! - post-processor: none, `ByteLevel`, `TemplateProcessing` (at most one special token before
//!   and one after `$A`: BOS and EOS), or a `Sequence` of these;
//! - decoder: `ByteLevel`;
//! - `added_tokens` with `lstrip`/`rstrip` (not `single_word`).
//!
//! `tokenizer_config.json` beside the file gives the EOS (when the post-processor appends
//! none) and the pad token.

use super::merge::PairTable;
use super::pretok::{Splitter, Stage};
use super::{byte_to_char, AddedToken, ByteLevelError, ByteLevelTokenizer, Format, Spec};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::path::Path;

struct Ctx<'a> {
    path: &'a str,
}

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> ByteLevelError {
        ByteLevelError::Invalid {
            path: self.path.to_string(),
            message: message.into(),
        }
    }
    fn unsupported(&self, what: &str, v: &Value) -> ByteLevelError {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
        self.err(format!(
            "{what} {kind:?} is not supported (zhllama reads byte-level BPE tokenizer.json: GPT-2, LLaMA-3, Qwen2, SmolLM2 layouts)"
        ))
    }
}

fn kind(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// The token a byte-level string spells (chars outside the alphabet: their own UTF-8).
fn unmap(s: &str, from_char: &FxHashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match from_char.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

fn pre_tokenizer(ctx: &Ctx, v: &Value) -> Result<Vec<Stage>, ByteLevelError> {
    let steps: Vec<&Value> = match kind(v) {
        "Sequence" => v
            .get("pretokenizers")
            .and_then(Value::as_array)
            .ok_or_else(|| ctx.err("pre_tokenizer Sequence without a \"pretokenizers\" list"))?
            .iter()
            .collect(),
        "" if v.is_null() => {
            return Err(
                ctx.err("no pre_tokenizer: not a byte-level BPE tokenizer (expected ByteLevel)")
            )
        }
        _ => vec![v],
    };
    let mut stages = Vec::new();
    let mut byte_level = false;
    for (i, s) in steps.iter().enumerate() {
        if byte_level {
            return Err(ctx.unsupported("pre_tokenizer after ByteLevel:", s));
        }
        match kind(s) {
            "ByteLevel" => {
                if flag(s, "add_prefix_space", false) {
                    return Err(ctx.err(
                        "pre_tokenizer ByteLevel with add_prefix_space=true is not supported",
                    ));
                }
                if flag(s, "use_regex", true) {
                    stages.push(Stage::Split(Splitter::Gpt2));
                }
                byte_level = true;
            }
            "Split" => {
                let pattern = s
                    .get("pattern")
                    .and_then(|p| p.get("Regex"))
                    .and_then(Value::as_str);
                let Some(pattern) = pattern else {
                    return Err(ctx.err(format!("pre_tokenizer {i}: Split with a String pattern is not supported (only Regex)")));
                };
                let behavior = s.get("behavior").and_then(Value::as_str).unwrap_or("");
                if behavior != "Isolated" || flag(s, "invert", false) {
                    return Err(ctx.err(format!(
                        "pre_tokenizer {i}: Split with behavior {behavior:?}{} is not supported (only Isolated)",
                        if flag(s, "invert", false) { " and invert" } else { "" }
                    )));
                }
                let sp = Splitter::for_pattern(pattern).map_err(|e| {
                    ctx.err(format!("pre_tokenizer {i}: Split pattern {pattern:?}: {e}"))
                })?;
                stages.push(Stage::Split(sp));
            }
            "Digits" => stages.push(Stage::Digits {
                individual: flag(s, "individual_digits", false),
            }),
            "Metaspace" => {
                return Err(ctx.err(
                    "pre_tokenizer \"Metaspace\" is not supported here: a SentencePiece-style tokenizer.json; \
                     load the SentencePiece tokenizer.model it was converted from",
                ))
            }
            _ => return Err(ctx.unsupported("pre_tokenizer", s)),
        }
    }
    if !byte_level {
        return Err(ctx.err("pre_tokenizer has no ByteLevel step: not a byte-level BPE tokenizer"));
    }
    Ok(stages)
}

/// (BOS, EOS) the post-processor adds to a single sequence.
fn post_processor(
    ctx: &Ctx,
    v: &Value,
    ids: &dyn Fn(&str) -> Option<u32>,
) -> Result<(Option<u32>, Option<u32>), ByteLevelError> {
    let steps: Vec<&Value> = match kind(v) {
        _ if v.is_null() => return Ok((None, None)),
        "Sequence" => v
            .get("processors")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![v],
    };
    let (mut bos, mut eos) = (None, None);
    for s in steps {
        match kind(s) {
            "ByteLevel" => {} // offsets only
            "TemplateProcessing" => {
                let single = s
                    .get("single")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut seen_a = false;
                let (mut before, mut after) = (Vec::new(), Vec::new());
                for item in &single {
                    if item.get("Sequence").is_some() {
                        seen_a = true;
                    } else if let Some(t) = item
                        .get("SpecialToken")
                        .and_then(|t| t.get("id"))
                        .and_then(Value::as_str)
                    {
                        let id = s
                            .get("special_tokens")
                            .and_then(|m| m.get(t))
                            .and_then(|m| m.get("ids"))
                            .and_then(Value::as_array)
                            .and_then(|a| match a.as_slice() {
                                [one] => one.as_u64().map(|x| x as u32),
                                _ => None,
                            })
                            .or_else(|| ids(t))
                            .ok_or_else(|| {
                                ctx.err(format!(
                                    "post_processor: template token {t:?} has no single id"
                                ))
                            })?;
                        if seen_a {
                            after.push(id)
                        } else {
                            before.push(id)
                        }
                    }
                }
                if before.len() > 1 || after.len() > 1 {
                    return Err(ctx.err("post_processor TemplateProcessing with more than one token before or after $A is not supported"));
                }
                bos = before.first().copied();
                eos = after.first().copied();
            }
            _ => return Err(ctx.unsupported("post_processor", s)),
        }
    }
    Ok((bos, eos))
}

fn token_name(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) => Some(s),
        Some(o @ Value::Object(_)) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

impl ByteLevelTokenizer {
    /// Parse a `tokenizer.json`; `config`: the `tokenizer_config.json` beside it, if any.
    pub fn from_json_bytes(
        data: &[u8],
        config: Option<&Value>,
        path: &str,
    ) -> Result<Self, ByteLevelError> {
        let ctx = Ctx { path };
        let j: Value = serde_json::from_slice(data).map_err(|e| ByteLevelError::Invalid {
            path: format!("{path}:{}:{}", e.line(), e.column()),
            message: format!("not valid JSON ({e})"),
        })?;
        let model = j
            .get("model")
            .ok_or_else(|| ctx.err("no \"model\": not a tokenizer.json"))?;
        if kind(model) != "BPE" && !(kind(model).is_empty() && model.get("merges").is_some()) {
            return Err(ctx.unsupported("model", model));
        }
        if model.get("dropout").is_some_and(|d| !d.is_null()) {
            return Err(ctx.err("model BPE with dropout is not supported"));
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if model
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ctx.err(format!(
                    "model BPE with {key} is not supported (not a byte-level BPE)"
                )));
            }
        }
        if flag(model, "byte_fallback", false) {
            return Err(ctx.err("model BPE with byte_fallback is a SentencePiece-style BPE, not byte-level; load its tokenizer.model"));
        }
        let stages = pre_tokenizer(&ctx, j.get("pre_tokenizer").unwrap_or(&Value::Null))?;
        let nfc = match j.get("normalizer") {
            None | Some(Value::Null) => false,
            Some(n) if kind(n) == "NFC" => true,
            Some(n) => return Err(ctx.unsupported("normalizer", n)),
        };
        match j.get("decoder") {
            Some(d) if kind(d) == "ByteLevel" => {}
            Some(d) if !d.is_null() => return Err(ctx.unsupported("decoder", d)),
            _ => {
                return Err(
                    ctx.err("no decoder: a byte-level BPE tokenizer.json has a ByteLevel decoder")
                )
            }
        }

        let from_char: FxHashMap<char, u8> = byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| ctx.err("model BPE has no \"vocab\" object"))?;
        let mut by_str: FxHashMap<&str, u32> = FxHashMap::default();
        let mut tokens: Vec<Option<Vec<u8>>> = Vec::new();
        for (s, id) in vocab {
            let id = id.as_u64().filter(|&i| i < 1 << 26).ok_or_else(|| {
                ctx.err(format!(
                    "vocab entry {s:?}: id {id} is not an integer below 2^26"
                ))
            })? as usize;
            if tokens.len() <= id {
                tokens.resize(id + 1, None);
            }
            if tokens[id].is_some() {
                return Err(ctx.err(format!("vocab entry {s:?}: id {id} is used twice")));
            }
            tokens[id] = Some(unmap(s, &from_char));
            by_str.insert(s.as_str(), id as u32);
        }
        let merges = model
            .get("merges")
            .and_then(Value::as_array)
            .ok_or_else(|| ctx.err("model BPE has no \"merges\" list"))?;
        let mut pairs = PairTable::new();
        for (rank, m) in merges.iter().enumerate() {
            let (a, b) = match m {
                Value::String(s) => match s.split_once(' ') {
                    Some((a, b)) if !b.contains(' ') => (a, b),
                    _ => {
                        return Err(ctx.err(format!(
                            "merge {rank} {s:?}: expected two tokens separated by one space"
                        )))
                    }
                },
                Value::Array(v) => match v.as_slice() {
                    [Value::String(a), Value::String(b)] => (a.as_str(), b.as_str()),
                    _ => {
                        return Err(
                            ctx.err(format!("merge {rank} {m}: expected [\"left\", \"right\"]"))
                        )
                    }
                },
                _ => {
                    return Err(ctx.err(format!(
                        "merge {rank} {m}: expected \"left right\" or [\"left\", \"right\"]"
                    )))
                }
            };
            let id = |t: &str| {
                by_str.get(t).copied().ok_or_else(|| {
                    ctx.err(format!(
                        "merge {rank} [{a:?}, {b:?}]: {t:?} is not in the vocabulary"
                    ))
                })
            };
            let (l, r) = (id(a)?, id(b)?);
            let merged = format!("{a}{b}");
            pairs.insert(l, r, rank as u32, id(&merged)?);
        }

        let mut added = Vec::new();
        for t in j
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let content = t
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| ctx.err(format!("added token {t}: no content")))?;
            let id = t
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| ctx.err(format!("added token {content:?}: no id")))?;
            if flag(t, "single_word", false) {
                return Err(ctx.err(format!(
                    "added token {content:?} with single_word=true is not supported"
                )));
            }
            if content.is_empty() || id >= 1 << 26 {
                return Err(ctx.err(format!(
                    "added token {content:?}: empty content or id {id} out of range"
                )));
            }
            added.push(AddedToken {
                content: content.to_string(),
                id: id as u32,
                special: flag(t, "special", false),
                lstrip: flag(t, "lstrip", false),
                rstrip: flag(t, "rstrip", false),
            });
        }
        let id_of = |name: &str| -> Option<u32> {
            added
                .iter()
                .find(|t| t.content == name)
                .map(|t| t.id)
                .or_else(|| by_str.get(name).copied())
        };
        let (bos_id, post_eos) = post_processor(
            &ctx,
            j.get("post_processor").unwrap_or(&Value::Null),
            &id_of,
        )?;
        let config_id = |key: &str| -> Result<Option<u32>, ByteLevelError> {
            match token_name(config.and_then(|c| c.get(key))) {
                None => Ok(None),
                Some(name) => id_of(name).map(Some).ok_or_else(|| {
                    ctx.err(format!(
                        "tokenizer_config.json's {key} {name:?} is not a token of this tokenizer"
                    ))
                }),
            }
        };
        let eos_id = match post_eos {
            Some(e) => Some(e),
            None => config_id("eos_token")?,
        };
        let pad_id = config_id("pad_token")?;
        let ignore_merges = flag(model, "ignore_merges", false);
        Ok(Self::build(Spec {
            tokens,
            pairs,
            ignore_merges,
            stages,
            nfc,
            added,
            bos_id,
            eos_id,
            pad_id,
            format: Format::TokenizerJson,
        }))
    }

    /// `DIR/tokenizer.json` (or the file itself), with `tokenizer_config.json` beside it.
    pub fn from_json_file(path: &Path) -> Result<Self, ByteLevelError> {
        let io = |p: &Path, e| ByteLevelError::Io {
            path: p.display().to_string(),
            source: e,
        };
        let data = std::fs::read(path).map_err(|e| io(path, e))?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        let config =
            match std::fs::read(&cfg_path) {
                Ok(b) => Some(serde_json::from_slice::<Value>(&b).map_err(|e| {
                    ByteLevelError::Invalid {
                        path: format!("{}:{}:{}", cfg_path.display(), e.line(), e.column()),
                        message: format!("not valid JSON ({e})"),
                    }
                })?),
                Err(_) => None,
            };
        Self::from_json_bytes(&data, config.as_ref(), &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(j: &str) -> Result<ByteLevelTokenizer, String> {
        ByteLevelTokenizer::from_json_bytes(j.as_bytes(), None, "t.json").map_err(|e| e.to_string())
    }

    #[test]
    fn refusals_name_the_component() {
        let e = load(r#"{"model": {"type": "WordPiece", "vocab": {}}}"#).unwrap_err();
        assert!(
            e.starts_with("t.json: model \"WordPiece\" is not supported"),
            "{e}"
        );
        let e = load(r#"{"model": {"type": "Unigram", "vocab": []}}"#).unwrap_err();
        assert!(e.contains("model \"Unigram\""), "{e}");
        let bpe = r#""model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}"#;
        let e = load(&format!(r#"{{{bpe}, "pre_tokenizer": {{"type": "Metaspace"}}, "decoder": {{"type": "ByteLevel"}}}}"#)).unwrap_err();
        assert!(e.contains("pre_tokenizer \"Metaspace\""), "{e}");
        let e = load(&format!(r#"{{{bpe}, "pre_tokenizer": {{"type": "ByteLevel"}}, "normalizer": {{"type": "NFKC"}}, "decoder": {{"type": "ByteLevel"}}}}"#)).unwrap_err();
        assert!(e.contains("normalizer \"NFKC\""), "{e}");
        let e = load(&format!(r#"{{{bpe}, "pre_tokenizer": {{"type": "ByteLevel"}}, "decoder": {{"type": "ByteLevel"}}}}"#)).unwrap_err();
        assert!(
            e.contains("merge 0 [\"a\", \"c\"]: \"c\" is not in the vocabulary"),
            "{e}"
        );
        let e = load("{\"model\": \n {").unwrap_err();
        assert!(
            e.starts_with("t.json:2:") && e.contains("not valid JSON"),
            "{e}"
        );
    }

    /// A pre-token that spells a token is that token with `ignore_merges`; without, only if
    /// the merges make it ("ab" is a token no merge makes: its two bytes), as HF's BPE gives
    /// (`tokenizers` 0.22: [0, 1], [5], [4], [0, 1, 5] and [3], [5], [4], [3, 5]).
    #[test]
    fn whole_tokens_follow_ignore_merges() {
        for (ignore, ab) in [(false, vec![0, 1]), (true, vec![3])] {
            let tok = load(&format!(
                r#"{{"model": {{"type": "BPE", "vocab": {{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}}, "merges": ["b c", "a bc"], "ignore_merges": {ignore}}}, "pre_tokenizer": {{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}}, "decoder": {{"type": "ByteLevel"}}}}"#
            ))
            .unwrap();
            let enc = |s: &str| tok.encode(s, false, false, false);
            assert_eq!(enc("ab"), ab, "ignore_merges {ignore}");
            assert_eq!(enc("abc"), [5]);
            assert_eq!(enc("bc"), [4]);
            assert_eq!(enc("ab abc"), [&ab[..], &[5]].concat());
        }
    }
}
