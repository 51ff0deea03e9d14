//! Added tokens (HF `added_tokens`, tiktoken's special tokens) found in text: leftmost-longest
//! as HF's `AddedVocabulary` (aho-corasick, LeftmostLongest), with `lstrip`/`rstrip`
//! taking the whitespace beside a match into it.

use rustc_hash::FxHashMap;

#[derive(Clone, Debug)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub special: bool,
    pub lstrip: bool,
    pub rstrip: bool,
}

/// A piece of text between matches, or a matched token.
pub(crate) enum Segment<'a> {
    Text(&'a str),
    Token(u32),
}

pub(crate) struct AddedTokens {
    pub(crate) tokens: Vec<AddedToken>,
    /// First byte → indices into `tokens`, longest content first.
    by_first: FxHashMap<u8, Vec<usize>>,
}

impl AddedTokens {
    pub(crate) fn new(tokens: Vec<AddedToken>) -> Self {
        let mut by_first: FxHashMap<u8, Vec<usize>> = FxHashMap::default();
        for (i, t) in tokens.iter().enumerate() {
            if let Some(&b) = t.content.as_bytes().first() {
                by_first.entry(b).or_default().push(i);
            }
        }
        for v in by_first.values_mut() {
            v.sort_by_key(|&i| std::cmp::Reverse(tokens[i].content.len()));
        }
        AddedTokens { tokens, by_first }
    }

    /// Whether any token can match when `special` tokens are (or are not) looked for.
    pub(crate) fn any(&self, special: bool) -> bool {
        self.tokens.iter().any(|t| special || !t.special)
    }

    /// The longest token (allowed by `special`) whose content starts at byte `i`.
    fn longest_at(&self, text: &str, i: usize, special: bool) -> Option<&AddedToken> {
        let cands = self.by_first.get(&text.as_bytes()[i])?;
        cands
            .iter()
            .map(|&k| &self.tokens[k])
            .find(|t| (special || !t.special) && text[i..].starts_with(t.content.as_str()))
    }

    /// Split `text` into text and tokens; special tokens only when `special`.
    pub(crate) fn split<'a>(&self, text: &'a str, special: bool, f: &mut impl FnMut(Segment<'a>)) {
        let b = text.as_bytes();
        let mut last = 0; // end of the previous match
        let mut i = 0;
        while i < b.len() {
            if !self.by_first.contains_key(&b[i]) || !text.is_char_boundary(i) {
                i += 1;
                continue;
            }
            let Some(t) = self.longest_at(text, i, special) else {
                i += 1;
                continue;
            };
            let mut start = i;
            if t.lstrip {
                start = last + text[last..i].trim_end().len();
            }
            let mut end = i + t.content.len();
            if t.rstrip {
                end = text.len() - text[end..].trim_start().len();
            }
            if start > last {
                f(Segment::Text(&text[last..start]));
            }
            f(Segment::Token(t.id));
            last = end;
            i = end;
        }
        if last < text.len() {
            f(Segment::Text(&text[last..]));
        }
    }
}
