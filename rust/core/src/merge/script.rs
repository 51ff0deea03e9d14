//! Fullwidth spellings, and the merge's use of which characters are Chinese ([`crate::chinese`]).
//!
//! The default merge only adds pieces that contain at least one of these characters, so a
//! text without any of them meets only base pieces and tokenizes exactly as with the base
//! model: BPE can only form a piece whose characters all occur in the text.

use crate::chinese::has_chinese;

/// Characters NFKC produces from a fullwidth source: ASCII `!`..`~` (from U+FF01..U+FF5E).
/// (U+3000 also folds to a space, but `▁` pieces are mostly reached from ordinary spaces and
/// the dummy prefix, so counting them would say little.)
pub fn is_fold_target(c: char) -> bool {
    matches!(c as u32, 0x21..=0x7E)
}

/// The fullwidth spelling of a piece learned on NFKC-normalized text: digits and ASCII
/// punctuation become U+FF10.. / U+FF01.., the way Chinese text (People's Daily among it)
/// writes them. Latin letters are left alone unless the piece also has a Chinese character
/// (fullwidth Latin words are rare). `None` when nothing would change.
pub fn fullwidth_variant(piece: &str) -> Option<String> {
    let chinese = has_chinese(piece);
    let body: Vec<char> = piece.chars().filter(|&c| c != '\u{2581}').collect();
    if body.is_empty() {
        return None;
    }
    let letters = body.iter().any(|c| c.is_ascii_alphabetic());
    if letters && !chinese {
        return None;
    }
    let mut changed = false;
    let v: String = piece
        .chars()
        .map(|c| {
            if matches!(c as u32, 0x21..=0x7E) {
                changed = true;
                char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        })
        .collect();
    changed.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_chars() {
        assert!(has_chinese("▁中国"));
        assert!(has_chinese("，"));
        assert!(has_chinese("１"));
        assert!(!has_chinese("▁the"));
        assert!(!has_chinese("1949"));
        assert!(!has_chinese("“…”"));
    }

    #[test]
    fn variants() {
        assert_eq!(fullwidth_variant("1998").as_deref(), Some("１９９８"));
        assert_eq!(fullwidth_variant(",但").as_deref(), Some("，但"));
        assert_eq!(fullwidth_variant("▁(").as_deref(), Some("▁（"));
        assert_eq!(fullwidth_variant("中国"), None);
        assert_eq!(fullwidth_variant("abc"), None);
        assert_eq!(fullwidth_variant("A股").as_deref(), Some("Ａ股"));
        assert_eq!(fullwidth_variant("▁"), None);
    }
}
