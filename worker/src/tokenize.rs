//! The text tokeniser of `textLstm` models, built from the training texts and saved in the model
//! card so that serving encodes text exactly as training did.
//!
//! UTF-8 text is lowercased and cut into tokens: runs of letters and digits form words in
//! scripts that separate words (Latin, Cyrillic, Greek, Hangul…), and every Chinese or Japanese
//! character (Han, Hiragana, Katakana) is a token of its own, since those scripts do not
//! separate words. Everything else (spaces, punctuation, symbols) only separates tokens.

use modelops_api::card;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

/// The padding id (also the LSTM's "no token here").
pub const PAD: i64 = 0;
/// The id of any token outside the vocabulary.
pub const OOV: i64 = 1;
/// The names of the reserved ids, in id order.
const RESERVED: [&str; 2] = ["<pad>", "<oov>"];

/// True for characters of scripts that do not separate words: each is a token.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Unified Ideographs Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x3134F  // Extensions B to G
    )
}

/// Splits a text into lowercase tokens.
pub fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            tokens.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// A fitted vocabulary and sequence length, with the index that encodes tokens. It is stored in
/// the model card as [`modelops_api::card::Tokenizer`], the vocabulary in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "card::Tokenizer", into = "card::Tokenizer")]
pub struct Tokenizer {
    /// Tokens by id: `<pad>` (0), `<oov>` (1), then the most frequent training tokens.
    pub vocabulary: Vec<String>,
    /// Longer texts keep their first `max_length` tokens.
    pub max_length: usize,
    index: HashMap<String, i64>,
}

impl From<card::Tokenizer> for Tokenizer {
    fn from(stored: card::Tokenizer) -> Self {
        Self::with_vocabulary(stored.vocabulary, stored.max_length)
    }
}

impl From<Tokenizer> for card::Tokenizer {
    fn from(tokenizer: Tokenizer) -> Self {
        Self {
            scheme: card::TOKENIZER_SCHEME.to_owned(),
            max_length: tokenizer.max_length,
            vocabulary: tokenizer.vocabulary,
        }
    }
}

impl Tokenizer {
    fn with_vocabulary(vocabulary: Vec<String>, max_length: usize) -> Self {
        let index = vocabulary
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as i64))
            .collect();
        Self {
            vocabulary,
            max_length: max_length.max(1),
            index,
        }
    }

    /// Builds the vocabulary from training texts: the `max_vocabulary - 2` most frequent tokens
    /// (ties broken by the token itself, so the vocabulary is the same on every run).
    pub fn fit<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        max_vocabulary: usize,
        max_length: usize,
    ) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for text in texts {
            for token in tokens(text) {
                *counts.entry(token).or_default() += 1;
            }
        }
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let keep = max_vocabulary.saturating_sub(RESERVED.len());
        let vocabulary = RESERVED
            .iter()
            .map(|r| (*r).to_owned())
            .chain(ranked.into_iter().take(keep).map(|(token, _)| token))
            .collect();
        Self::with_vocabulary(vocabulary, max_length)
    }

    /// Ids of the vocabulary, including the reserved ones.
    pub fn len(&self) -> usize {
        self.vocabulary.len()
    }

    /// True when the vocabulary holds only the reserved ids.
    pub fn is_empty(&self) -> bool {
        self.vocabulary.len() <= RESERVED.len()
    }

    /// The ids of a text, at least one (a text without tokens is one `<oov>`), at most
    /// `max_length`, without padding.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = tokens(text)
            .iter()
            .take(self.max_length)
            .map(|token| self.index.get(token).copied().unwrap_or(OOV))
            .collect();
        if ids.is_empty() {
            ids.push(OOV);
        }
        ids
    }

    /// Encodes texts into `[n, longest]` ids, padded on the right with [`PAD`].
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Tensor {
        let encoded: Vec<Vec<i64>> = texts.iter().map(|t| self.encode(t.as_ref())).collect();
        let longest = encoded.iter().map(Vec::len).max().unwrap_or(1);
        let mut flat = vec![PAD; encoded.len() * longest];
        for (row, ids) in encoded.iter().enumerate() {
            flat[row * longest..row * longest + ids.len()].copy_from_slice(ids);
        }
        Tensor::from_slice(&flat).view([encoded.len() as i64, longest as i64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_cut_into_lowercase_words() {
        assert_eq!(
            tokens("Hello, World! It's 2024-05."),
            ["hello", "world", "it", "s", "2024", "05"]
        );
        assert_eq!(tokens("Ünïcode CAFÉ"), ["ünïcode", "café"]);
    }

    #[test]
    fn chinese_is_cut_into_characters() {
        assert_eq!(
            tokens("今天天气很好。"),
            ["今", "天", "天", "气", "很", "好"]
        );
        assert_eq!(tokens("GPU集群"), ["gpu", "集", "群"]);
    }

    #[test]
    fn the_vocabulary_keeps_the_most_frequent_tokens() {
        let tokenizer = Tokenizer::fit(["b a a", "c b a", "新 新"], 5, 8);
        assert_eq!(tokenizer.vocabulary, ["<pad>", "<oov>", "a", "b", "新"]);
        assert_eq!(tokenizer.encode("A c 新 zzz"), [2, OOV, 4, OOV]);
        assert_eq!(
            tokenizer.encode("..."),
            [OOV],
            "a text without tokens still has one id"
        );
    }

    #[test]
    fn long_texts_are_cut_and_batches_padded() {
        let tokenizer = Tokenizer::fit(["a b c d"], 10, 3);
        assert_eq!(tokenizer.encode("a b c d").len(), 3);
        let batch = tokenizer.encode_batch(&["a", "a b c d"]);
        assert_eq!(batch.size(), [2, 3]);
        assert_eq!(
            Vec::<i64>::try_from(batch.view([-1])).unwrap(),
            [2, PAD, PAD, 2, 3, 4]
        );
    }

    #[test]
    fn the_card_form_round_trips() {
        let tokenizer = Tokenizer::fit(["x y"], 10, 4);
        let json = serde_json::to_value(&tokenizer).unwrap();
        assert_eq!(json["maxLength"], 4);
        let back: Tokenizer = serde_json::from_value(json).unwrap();
        assert_eq!(back, tokenizer);
        assert_eq!(back.encode("y"), tokenizer.encode("y"));
    }
}
