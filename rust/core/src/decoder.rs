//! Decoding, as `SentencePieceProcessor::Decode` (src/sentencepiece_processor.cc).

use crate::encoder::{EncoderError, Tokenizer};
use crate::model::{parse_byte_piece, PieceType};

const SPACE_SYMBOL: &str = "\u{2581}";

impl Tokenizer {
    /// `sentencepiece.SentencePieceProcessor.decode(ids)`; ids past the vocabulary are skipped
    /// (see [`Tokenizer::try_decode`] to reject them as sentencepiece does).
    pub fn decode(&self, ids: &[u32]) -> String {
        let n = self.vocab_size();
        if ids.iter().all(|&i| (i as usize) < n) {
            return self.decode_checked(ids);
        }
        let kept: Vec<u32> = ids.iter().copied().filter(|&i| (i as usize) < n).collect();
        self.decode_checked(&kept)
    }

    /// Decode, refusing ids outside the vocabulary (sentencepiece raises "piece id is out of
    /// range").
    pub fn try_decode(&self, ids: &[u32]) -> Result<String, EncoderError> {
        let n = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(EncoderError::IdOutOfRange { id, vocab_size: n });
        }
        Ok(self.decode_checked(ids))
    }

    fn decode_checked(&self, ids: &[u32]) -> String {
        let inner = &*self.inner;
        let mut text = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        // Only the first piece that starts the text may lose its leading U+2581 (the dummy
        // prefix): `is_bos_ws` holds until something non-empty has been written or a piece
        // already consumed it.
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        let strip_bos = inner.add_dummy_prefix || inner.remove_extra_whitespaces;
        for &id in ids {
            let kind = inner.kinds[id as usize];
            let piece = inner.pieces[id as usize].as_str();
            if kind == PieceType::Byte {
                bytes.push(parse_byte_piece(piece).unwrap_or(0));
                continue;
            }
            flush_bytes(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = false;
            match kind {
                PieceType::Control => {}
                PieceType::Unknown => text.push_str(&inner.unk_surface),
                _ => {
                    let mut p = piece;
                    if is_bos_ws && strip_bos {
                        if let Some(rest) = p.strip_prefix(SPACE_SYMBOL) {
                            p = rest;
                            // With remove_extra_whitespaces every leading space is gone
                            // already, so later pieces keep theirs.
                            bos_ws_seen = !inner.remove_extra_whitespaces;
                        }
                    }
                    push_unescaped(&mut text, p);
                }
            }
        }
        flush_bytes(&mut bytes, &mut text);
        match &inner.denormalizer {
            Some(d) => d.normalize(text.as_bytes()),
            None => text,
        }
    }
}

fn push_unescaped(text: &mut String, piece: &str) {
    if piece.contains(SPACE_SYMBOL) {
        text.push_str(&piece.replace(SPACE_SYMBOL, " "));
    } else {
        text.push_str(piece);
    }
}

/// A run of byte pieces becomes the UTF-8 it spells; each byte that does not start a valid
/// character becomes U+FFFD on its own (sentencepiece consumes one byte per invalid
/// position, and the bytes after an invalid lead are continuation bytes, which never start a
/// character, so Rust's chunking into valid/invalid runs gives the same text).
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut String) {
    if bytes.is_empty() {
        return;
    }
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for _ in chunk.invalid() {
            text.push('\u{FFFD}');
        }
    }
    bytes.clear();
}
