//! CLIP's byte-level BPE, read from the model's own `tokenizer/vocab.json`
//! and `tokenizer/merges.txt`, and the long-prompt chunking of the common
//! long-prompt pipelines (75 tokens per chunk, each wrapped in BOS/EOS).
//!
//! Tokens added on top of the vocabulary (a textual inversion's, see
//! [`crate::textual_inversion`]) are found in the text before BPE, as
//! `transformers` finds added tokens: anywhere, even inside a word, case
//! folded like the rest of the text, the longest one first where several start
//! at the same place.

use crate::error::{Error, Result};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;

pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    bos: u32,
    eos: u32,
    pad: u32,
    cache: std::sync::Mutex<HashMap<String, Vec<u32>>>,
    /// Tokens added on top of the vocabulary; empty for the model's own tokenizer.
    added: Vec<AddedToken>,
}

/// A token added on top of the vocabulary and the ids it encodes to (more
/// than one for a multi-vector textual inversion's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub ids: Vec<u32>,
}

/// GPT-2/CLIP's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        map[b as usize] = if printable.contains(&b) {
            char::from_u32(b).expect("latin-1")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("BMP")
        };
    }
    map
}

impl ClipTokenizer {
    /// Loads `vocab.json`, `merges.txt` and (if present) the pad token from
    /// `special_tokens_map.json` or `tokenizer_config.json` in `dir`. SD 1.x pads with `<|endoftext|>`,
    /// SD 2.x with `!`.
    /// Newer `transformers` save only `tokenizer.json`, which holds the same vocabulary and merges; it is used
    /// when `vocab.json` is absent.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let vocab_path = dir.join("vocab.json");
        let (encoder, merges) = if vocab_path.is_file() {
            let encoder: HashMap<String, u32> = crate::config::read_json(&vocab_path)?;
            let merges_path = dir.join("merges.txt");
            let merges =
                std::fs::read_to_string(&merges_path).map_err(|e| Error::io(&merges_path, e))?;
            (encoder, merges)
        } else {
            let path = dir.join("tokenizer.json");
            let v: serde_json::Value = crate::config::read_json(&path)?;
            let bad = |m: &str| Error::Config {
                path: path.clone(),
                message: m.to_owned(),
            };
            let encoder: HashMap<String, u32> = serde_json::from_value(v["model"]["vocab"].clone())
                .map_err(|e| bad(&format!("model.vocab: {e}")))?;
            let merges = v["model"]["merges"]
                .as_array()
                .ok_or_else(|| bad("model.merges is not a list"))?;
            let lines: Vec<String> = merges
                .iter()
                .map(|m| match m {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Array(p) if p.len() == 2 => Ok(format!(
                        "{} {}",
                        p[0].as_str().unwrap_or(""),
                        p[1].as_str().unwrap_or("")
                    )),
                    _ => Err(bad("a merge is neither \"a b\" nor [a, b]")),
                })
                .collect::<Result<_>>()?;
            (encoder, lines.join("\n"))
        };
        let mut pad_token = "<|endoftext|>".to_owned();
        let special = ["special_tokens_map.json", "tokenizer_config.json"]
            .map(|f| dir.join(f))
            .into_iter()
            .find(|p| p.is_file());
        if let Some(special) = special {
            let v: serde_json::Value = crate::config::read_json(&special)?;
            let pad = &v["pad_token"];
            if let Some(s) = pad.as_str().or_else(|| pad["content"].as_str()) {
                pad_token = s.to_owned();
            }
        }
        Self::new(encoder, &merges, &pad_token).map_err(|message| Error::Config {
            path: dir.to_owned(),
            message,
        })
    }

    /// From OpenAI's original `bpe_simple_vocab_16e6.txt` (the CLIP vocabulary
    /// as the `clip` and `open_clip` packages ship it), which `vocab.json` and
    /// `merges.txt` are derived from.
    pub fn from_openai_bpe(text: &str, pad_token: &str) -> std::result::Result<Self, String> {
        let merges: Vec<&str> = text.lines().skip(1).take(49152 - 256 - 2).collect();
        // Byte symbols in the order of `bytes_to_unicode().values()`: printable bytes first.
        let chars = bytes_to_unicode();
        let printable = |b: usize| chars[b] as u32 == b as u32;
        let order: Vec<char> = (0..256)
            .filter(|&b| printable(b))
            .chain((0..256).filter(|&b| !printable(b)))
            .map(|b| chars[b])
            .collect();
        let mut tokens: Vec<String> = order.iter().map(|c| c.to_string()).collect();
        tokens.extend(order.iter().map(|c| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
        tokens.push("<|startoftext|>".into());
        tokens.push("<|endoftext|>".into());
        let encoder = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect();
        Self::new(encoder, &merges.join("\n"), pad_token)
    }

    /// From a vocabulary and the text of a merges file (first line a `#version` header, if any).
    pub fn new(
        encoder: HashMap<String, u32>,
        merges: &str,
        pad_token: &str,
    ) -> std::result::Result<Self, String> {
        let mut ranks = HashMap::new();
        for line in merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next()) {
                (Some(a), Some(b)) => {
                    let rank = ranks.len();
                    ranks.entry((a.to_owned(), b.to_owned())).or_insert(rank);
                }
                _ => return Err(format!("malformed merge line `{line}`")),
            }
        }
        let id = |t: &str| {
            encoder
                .get(t)
                .copied()
                .ok_or_else(|| format!("token {t} is not in the vocabulary"))
        };
        let (bos, eos, pad) = (id("<|startoftext|>")?, id("<|endoftext|>")?, id(pad_token)?);
        let pattern = Regex::new(
            r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .expect("valid regex");
        Ok(Self {
            encoder,
            ranks,
            byte_chars: bytes_to_unicode(),
            pattern,
            bos,
            eos,
            pad,
            cache: Default::default(),
            added: Vec::new(),
        })
    }

    pub fn bos(&self) -> u32 {
        self.bos
    }
    pub fn eos(&self) -> u32 {
        self.eos
    }
    pub fn pad(&self) -> u32 {
        self.pad
    }

    /// One past the largest id of the vocabulary (`len(tokenizer)` in
    /// `transformers` before any token is added): the first added token's id.
    pub fn vocab_len(&self) -> usize {
        self.encoder.values().max().map_or(0, |&m| m as usize + 1)
    }

    /// Whether `token` is an entry of the vocabulary itself (added tokens aside).
    pub fn in_vocab(&self, token: &str) -> bool {
        self.encoder.contains_key(token)
    }

    /// Replaces the added tokens (none restores the model's own tokenizer).
    pub fn set_added_tokens(&mut self, added: Vec<AddedToken>) {
        self.added = added
            .into_iter()
            .map(|t| AddedToken {
                content: t.content.to_lowercase(),
                ids: t.ids,
            })
            .collect();
    }

    /// Token ids of `text` without BOS/EOS. Text is whitespace-collapsed and
    /// lower-cased, as CLIP's tokenizer does (without ftfy's mojibake repair).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = Vec::new();
        let mut rest = cleaned.as_str();
        while let Some((at, token)) = self.next_added(rest) {
            self.encode_cleaned(&rest[..at], &mut ids);
            ids.extend_from_slice(&token.ids);
            rest = &rest[at + token.content.len()..];
        }
        self.encode_cleaned(rest, &mut ids);
        ids
    }

    /// The first added token in `text` (the longest of those starting there) and its byte offset.
    fn next_added(&self, text: &str) -> Option<(usize, &AddedToken)> {
        if self.added.is_empty() {
            return None;
        }
        text.char_indices().find_map(|(at, _)| {
            self.added
                .iter()
                .filter(|t| !t.content.is_empty() && text[at..].starts_with(&t.content))
                .max_by_key(|t| t.content.len())
                .map(|t| (at, t))
        })
    }

    /// BPE ids of cleaned (collapsed, lower-cased) text with no added token in it.
    fn encode_cleaned(&self, cleaned: &str, ids: &mut Vec<u32>) {
        for m in self.pattern.find_iter(cleaned) {
            let word: String = m
                .as_str()
                .bytes()
                .map(|b| self.byte_chars[b as usize])
                .collect();
            ids.extend(self.bpe(&word));
        }
    }

    fn bpe(&self, word: &str) -> Vec<u32> {
        if let Some(hit) = self.cache.lock().expect("tokenizer cache").get(word) {
            return hit.clone();
        }
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|&r| (r, i))
                })
                .min();
            let Some((_, at)) = best else { break };
            let pair = (parts[at].clone(), parts[at + 1].clone());
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && parts[i] == pair.0 && parts[i + 1] == pair.1 {
                    merged.push(format!("{}{}", pair.0, pair.1));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        // Byte-level symbols always exist in CLIP's vocabulary; an unknown one maps to EOS rather than panicking.
        let ids: Vec<u32> = parts
            .iter()
            .map(|p| self.encoder.get(p).copied().unwrap_or(self.eos))
            .collect();
        self.cache
            .lock()
            .expect("tokenizer cache")
            .insert(word.to_owned(), ids.clone());
        ids
    }

    /// Splits a prompt into `window`-token chunks (at least `min_chunks`), each
    /// `BOS chunk EOS pad…` of length `window + 2`. Long prompts are not cut:
    /// the text encoder embeds every chunk and the embeddings are concatenated.
    pub fn chunks(&self, text: &str, window: usize, min_chunks: usize) -> Vec<Vec<u32>> {
        self.chunk_ids(&self.encode(text), window, min_chunks)
    }

    /// [`Self::chunks`] of token ids already encoded.
    pub fn chunk_ids(&self, ids: &[u32], window: usize, min_chunks: usize) -> Vec<Vec<u32>> {
        let n = ids.len().div_ceil(window).max(min_chunks).max(1);
        (0..n)
            .map(|c| {
                let body = ids
                    .get(c * window..((c + 1) * window).min(ids.len()))
                    .unwrap_or(&[]);
                let mut row = Vec::with_capacity(window + 2);
                row.push(self.bos);
                row.extend_from_slice(body);
                row.push(self.eos);
                row.resize(window + 2, self.pad);
                row
            })
            .collect()
    }
}
