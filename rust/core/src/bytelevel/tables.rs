//! The byte-level tables that Python, the tests and the loaders all read from here (the binding
//! exports them as `zhllama._native.bytelevel_tables()`): the pre-tokenizer patterns of the
//! known bases, LLaMA-3's 256 special tokens, and GPT-2's byte alphabet.

/// GPT-2's pattern (HF's ByteLevel pre-tokenizer with `use_regex`): GPT-2, SmolLM2.
pub const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// cl100k's pattern as LLaMA-3 publishes it (`llama_models/llama3/tokenizer.py`).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's and Qwen3's: LLaMA-3's with single digits.
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// o200k's (GPT-4o; LLaMA-4's `O200K_PATTERN` in `llama_models/llama4/tokenizer.py`).
pub const O200K_PATTERN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Mistral's Tekken (`config.pattern` of `mistral_common/data/tekken_*.json`).
pub const TEKKEN_PATTERN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// DeepSeek-V3's pre-tokenizer is a `Sequence` of three `Split(Regex, Isolated)` stages, then
/// `ByteLevel` without its regex (`tokenizer.json` of `deepseek-ai/DeepSeek-V3`; llama.cpp's
/// `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM` lists the same three). Stage 1: digits in threes.
pub const DEEPSEEK3_DIGITS_PATTERN: &str = r"\p{N}{1,3}";
/// Stage 2: runs of CJK Unified Ideographs U+4E00..U+9FA5, hiragana and katakana
/// (U+3040..U+30FF), written as the characters themselves.
pub const DEEPSEEK3_CJK_PATTERN: &str = "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+";
/// Stage 3. The file spells CR and LF as the characters themselves (JSON `\r`, `\n`), not as
/// regex escapes; the rest as JSON-decoded.
pub const DEEPSEEK3_PATTERN: &str = concat!(
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|"##,
    "[^\r\n",
    r"\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+",
    "[\r\n]*|",
    r"\s*",
    "[\r\n]+|",
    r"\s+(?!\S)|\s+"
);

/// Every pattern with a hand-written splitter, by name.
pub const PATTERNS: [(&str, &str); 8] = [
    ("gpt2", GPT2_PATTERN),
    ("llama3", LLAMA3_PATTERN),
    ("qwen2", QWEN2_PATTERN),
    ("o200k", O200K_PATTERN),
    ("tekken", TEKKEN_PATTERN),
    ("deepseek3-digits", DEEPSEEK3_DIGITS_PATTERN),
    ("deepseek3-cjk", DEEPSEEK3_CJK_PATTERN),
    ("deepseek3", DEEPSEEK3_PATTERN),
];

/// LLaMA-3's tiktoken file has this many ranks; its special tokens follow.
pub const LLAMA3_BASE_TOKENS: u32 = 128_000;

/// LLaMA-3's 256 special tokens in id order after the ranks (`<|begin_of_text|>` = 128000 ...
/// `<|reserved_special_token_245|>` = 128255), as `llama_models/llama3/tokenizer.py` names them.
pub fn llama3_special_tokens() -> Vec<String> {
    let mut names: Vec<String> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>",
        "<|step_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
        "<|image|>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let fixed = names.len();
    names.extend((0..256 - fixed).map(|i| format!("<|reserved_special_token_{}|>", 2 + i)));
    names
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68
/// bytes for U+0100.. in byte order.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let specials = llama3_special_tokens();
        assert_eq!(specials.len(), 256);
        assert_eq!(specials[255], "<|reserved_special_token_245|>");
        let alphabet = byte_to_char();
        assert_eq!(
            (alphabet[b' ' as usize], alphabet[b'a' as usize]),
            ('Ġ', 'a')
        );
        let mut sorted = alphabet.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        for (_, p) in PATTERNS {
            assert!(fancy_regex::Regex::new(p).is_ok(), "{p}");
        }
    }
}
