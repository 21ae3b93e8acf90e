//! Textual inversion embeddings: new tokens whose input embeddings were
//! learned, read from the safetensors layouts found in the wild. Each holds
//! exactly one tensor, `[dim]` or `[vectors, dim]`:
//!
//! - A1111 / kohya: `emb_params`, or `string_to_param.*` (A1111's pickled
//!   `{"string_to_param": {"*": …}}` saved as safetensors);
//! - diffusers (`learned_embeds.safetensors`): `{token: …}`.
//!
//! The token is the tensor's name, as diffusers' `load_textual_inversion`
//! picks it when the caller names none: so `emb_params` and
//! `string_to_param.*` are the words a prompt uses for those files. A token of
//! n vectors is n tokens, `t`, `t_1`, … `t_{n-1}`, and `t` in a prompt stands
//! for all of them in order (diffusers' `maybe_convert_prompt`), except that
//! diffusers looks the token up lower-cased, so a token with capitals in it
//! brings its first vector only.
//!
//! Pickles (`.pt`, `.bin`, …) are refused: loading one runs code.

use crate::device::Backend;
use crate::error::{Error, Result};
use crate::tokenizer::AddedToken;
use crate::weights::{Precision, Weights};
use std::path::{Path, PathBuf};

/// The file diffusers looks for in a textual inversion folder.
const DIFFUSERS_FILE: &str = "learned_embeds.safetensors";

/// A textual inversion file, read.
#[derive(Debug, Clone)]
pub struct TextualInversion {
    path: PathBuf,
    token: String,
    /// `[vectors, dim]`, row-major.
    values: Vec<f32>,
    dim: usize,
}

fn ti_error(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_owned(),
        message: format!("textual inversion: {message}"),
    }
}

impl TextualInversion {
    /// Reads `path`: a safetensors file, or a folder holding
    /// `learned_embeds.safetensors`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = match path.is_dir() {
            // diffusers falls back to the pickled `learned_embeds.bin`, which is refused below.
            true if !path.join(DIFFUSERS_FILE).is_file()
                && path.join("learned_embeds.bin").is_file() =>
            {
                path.join("learned_embeds.bin")
            }
            true => path.join(DIFFUSERS_FILE),
            false => path.to_owned(),
        };
        refuse_pickle(&file)?;
        if !file.is_file() {
            return Err(ti_error(
                &file,
                "no such file (a folder must hold learned_embeds.safetensors)".into(),
            ));
        }
        let mut w = Weights::open(
            "textual inversion",
            std::slice::from_ref(&file),
            &Backend::Cpu.device(),
            Precision::F32,
        )?;
        let mut names: Vec<String> = w.names().map(str::to_owned).collect();
        names.sort();
        let [token] = names.as_slice() else {
            return Err(ti_error(
                &file,
                format!(
                    "expected one tensor (`emb_params`, `string_to_param.*` or diffusers' \
                     `{{token: [dim]}}`), found {}{}",
                    names.len(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            ));
        };
        let shape = w.shape_of(token).expect("listed").to_vec();
        let dim = match shape.as_slice() {
            [dim] | [_, dim] if shape.iter().all(|&d| d > 0) => *dim,
            _ => {
                return Err(ti_error(
                    &file,
                    format!("`{token}` has shape {shape:?}; expected [dim] or [vectors, dim]"),
                ))
            }
        };
        let values = w.read(token, &shape)?;
        Ok(Self {
            path: file,
            token: token.clone(),
            values,
            dim,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token a prompt uses.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The width of each vector (the text encoder's hidden size it was trained for).
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn vectors(&self) -> usize {
        self.values.len() / self.dim
    }

    /// The vectors, `[vectors, dim]` row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The tokens diffusers adds: `t`, `t_1`, … `t_{n-1}`.
    pub fn tokens(&self) -> Vec<String> {
        (0..self.vectors())
            .map(|i| match i {
                0 => self.token.clone(),
                i => format!("{}_{i}", self.token),
            })
            .collect()
    }

    /// The tokenizer entries for the tokens, given ids from `first_id` on:
    /// each token encodes to its own id, and the first (when diffusers would
    /// expand it) to all of them.
    pub fn added_tokens(&self, first_id: u32) -> Vec<AddedToken> {
        let tokens = self.tokens();
        let ids: Vec<u32> = (first_id..).take(tokens.len()).collect();
        // diffusers finds a multi-vector token by the tokenizer's lower-cased
        // rendering of it: a token with capitals is never found, so never expanded.
        let expands = self.token.to_lowercase() == self.token;
        tokens
            .into_iter()
            .zip(&ids)
            .enumerate()
            .map(|(i, (content, &id))| AddedToken {
                content,
                ids: if i == 0 && expands {
                    ids.clone()
                } else {
                    vec![id]
                },
            })
            .collect()
    }
}

/// Refuses a pickle by its extension or its first bytes (a pickle's protocol
/// marker, or the zip archive `torch.save` writes).
fn refuse_pickle(file: &Path) -> Result<()> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut head = [0u8; 4];
    let read = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let pickled_bytes =
        read >= 2 && (head[0] == 0x80 && (2..=5).contains(&head[1]) || head == *b"PK\x03\x04");
    if matches!(
        ext.as_str(),
        "pt" | "pth" | "bin" | "ckpt" | "pkl" | "pickle"
    ) || pickled_bytes
    {
        return Err(ti_error(
            file,
            "a pickle (.pt/.bin) is refused, as loading one runs code; use a .safetensors file"
                .into(),
        ));
    }
    Ok(())
}
