//! A tiktoken rank file (`base64-token rank` per line), read as LLaMA-3's `tokenizer.model`:
//! Meta's pattern and its 256 special tokens right after the ranks (`<|begin_of_text|>` =
//! 128000 ... `<|reserved_special_token_247|>` = 128255), as `llama_models/llama3/tokenizer.py`
//! defines them. Ids equal `tiktoken.Encoding(...).encode_ordinary(text)` on the whole text:
//! Meta's `Tokenizer.encode` also cuts runs of more than 25,000 (non-)whitespace characters
//! to dodge tiktoken's quadratic time (openai/tiktoken #195); zhllama has no such cost and
//! does not cut, so on those runs it agrees with tiktoken, not with Meta's wrapper.

use super::merge::PairTable;
use super::pretok::{Splitter, Stage};
pub use super::tables::llama3_special_tokens;
use super::tables::LLAMA3_PATTERN;
use super::{AddedToken, ByteLevelError, ByteLevelTokenizer, Format, Spec};
use rustc_hash::FxHashMap;
use std::path::Path;

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Standard base64 with `=` padding (what tiktoken writes).
fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (k, chunk) in s.chunks(4).enumerate() {
        let last = k == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut v = 0u32;
        for &c in &chunk[..4 - pad] {
            v = (v << 6) | b64_value(c)?;
        }
        v <<= 6 * pad as u32;
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Parse the rank lines; errors name `path:line` and the offending value.
fn parse_ranks(data: &[u8], path: &str) -> Result<Vec<Vec<u8>>, ByteLevelError> {
    let bad = |line: usize, message: String| ByteLevelError::Invalid {
        path: format!("{path}:{line}"),
        message,
    };
    let mut by_rank: Vec<Option<Vec<u8>>> = Vec::new();
    let mut seen: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let show = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
        let mut parts = line.split(|&b| b == b' ');
        let (Some(tok), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(
                n,
                format!(
                    "expected `BASE64 RANK`, found {show:?} (a truncated or non-tiktoken file?)"
                ),
            ));
        };
        let token = b64_decode(tok)
            .ok_or_else(|| bad(n, format!("{show:?}: the token is not valid base64")))?;
        let rank: usize = std::str::from_utf8(rank)
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|&r: &usize| r < 1 << 24)
            .ok_or_else(|| {
                bad(
                    n,
                    format!("{show:?}: the rank is not an integer below 2^24"),
                )
            })?;
        if let Some(prev) = seen.insert(token.clone(), n) {
            return Err(bad(n, format!("{show:?}: the same token as line {prev}")));
        }
        if by_rank.len() <= rank {
            by_rank.resize(rank + 1, None);
        }
        if by_rank[rank].is_some() {
            return Err(bad(n, format!("{show:?}: rank {rank} given twice")));
        }
        by_rank[rank] = Some(token);
    }
    if by_rank.is_empty() {
        return Err(ByteLevelError::Invalid {
            path: path.into(),
            message: "no ranks: not a tiktoken file".into(),
        });
    }
    if let Some(r) = by_rank.iter().position(Option::is_none) {
        return Err(ByteLevelError::Invalid {
            path: path.into(),
            message: format!(
                "rank {r} is missing (ranks must be 0..{}); a truncated file?",
                by_rank.len()
            ),
        });
    }
    let tokens: Vec<Vec<u8>> = by_rank.into_iter().flatten().collect();
    let mut have = [false; 256];
    for t in &tokens {
        if t.len() == 1 {
            have[t[0] as usize] = true;
        }
    }
    if let Some(b) = have.iter().position(|h| !h) {
        return Err(ByteLevelError::Invalid {
            path: path.into(),
            message: format!(
                "no token for the byte 0x{b:02X}: every byte needs one (a truncated file?)"
            ),
        });
    }
    Ok(tokens)
}

/// tiktoken's merge order as a pair table: merging two adjacent tokens costs the rank of their
/// concatenation, so every split of a token into two tokens is a pair of that rank.
fn pairs_from_ranks(tokens: &[Vec<u8>]) -> PairTable {
    let ids: FxHashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_slice(), i as u32))
        .collect();
    let mut pairs = PairTable::new();
    for (r, t) in tokens.iter().enumerate() {
        for k in 1..t.len() {
            if let (Some(&a), Some(&b)) = (ids.get(&t[..k]), ids.get(&t[k..])) {
                pairs.insert(a, b, r as u32, r as u32);
            }
        }
    }
    pairs
}

impl ByteLevelTokenizer {
    /// LLaMA-3's `tokenizer.model` (tiktoken format) from its bytes; `path` names errors.
    pub fn from_tiktoken_bytes(data: &[u8], path: &str) -> Result<Self, ByteLevelError> {
        let tokens = parse_ranks(data, path)?;
        let n = tokens.len() as u32;
        let pairs = pairs_from_ranks(&tokens);
        let names = llama3_special_tokens();
        let id_of = |name: &str| names.iter().position(|s| s == name).map(|i| n + i as u32);
        let added = names
            .iter()
            .enumerate()
            .map(|(i, s)| AddedToken {
                content: s.clone(),
                id: n + i as u32,
                special: true,
                lstrip: false,
                rstrip: false,
            })
            .collect();
        Ok(Self::build(Spec {
            tokens: tokens.into_iter().map(Some).collect(),
            pairs,
            ignore_merges: true,
            stages: vec![Stage::Split(
                Splitter::for_pattern(LLAMA3_PATTERN).map_err(|m| ByteLevelError::Invalid {
                    path: path.into(),
                    message: m,
                })?,
            )],
            nfc: false,
            added,
            bos_id: id_of("<|begin_of_text|>"),
            eos_id: id_of("<|end_of_text|>"),
            pad_id: id_of("<|finetune_right_pad_id|>"),
            format: Format::Tiktoken,
        }))
    }

    pub fn from_tiktoken_file(path: &Path) -> Result<Self, ByteLevelError> {
        let data = std::fs::read(path).map_err(|e| ByteLevelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_tiktoken_bytes(&data, &path.display().to_string())
    }
}

/// Whether `data` looks like a tiktoken rank file (its first line is `BASE64 RANK`).
pub fn looks_like_tiktoken(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut parts = first.split(|&b| b == b' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(t), Some(r), None) if b64_decode(t).is_some() && !r.is_empty() && r.iter().all(u8::is_ascii_digit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(b64_decode(b"IQ==").unwrap(), b"!");
        assert_eq!(b64_decode(b"IGE=").unwrap(), b" a");
        assert_eq!(b64_decode(b"IGFi").unwrap(), b" ab");
        assert!(b64_decode(b"IQ=").is_none());
        assert!(b64_decode(b"I=Q=").is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_ranks(b"IQ== 0\nIg== x\n", "t.model")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.model:2: ") && e.contains("rank"), "{e}");
        let e = parse_ranks(b"IQ== 0\nIgI", "t.model")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.model:2: ") && e.contains("truncated"),
            "{e}"
        );
        let e = parse_ranks(b"IQ== 0\n", "t.model").unwrap_err().to_string();
        assert!(e.contains("no token for the byte 0x00"), "{e}");
    }
}
