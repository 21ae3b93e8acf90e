//! compel's conditioning arithmetic (`Compel.build_conditioning_tensor` and
//! `EmbeddingsProvider.get_embeddings_for_weighted_prompt_fragments`), with
//! long prompts cut every 75 tokens as compel 2.0.2 does.
//!
//! Per prompt, the fragments' tokens are joined and cut into 75-token chunks,
//! each `BOS … EOS pad…`, and encoded chunk by chunk. Then:
//!
//! - a token of weight `w ≠ 1` becomes `empty + (z - empty) · w`, `empty`
//!   being the encoded empty prompt at the same position;
//! - for each fragment of weight `w < 1`, the prompt is encoded again with
//!   that fragment's tokens hidden from attention, and the result is the mean
//!   of the first encoding (weight 1) and these (weight `tan((1 - w)·π/2)`
//!   each), so at `w = 0.5` a fragment is half gone;
//! - a blend is the weighted sum of its prompts' conditionings (weights
//!   normalised unless `no_normalize`); a conjunction puts its prompts'
//!   conditionings one after the other, each `empty + (c - empty) · weight`.
//!
//! A prompt with no weighting in it is encoded as the plain pipeline encodes
//! it, in one batch of its chunks padded with empty ones, so its embeddings
//! are the same bits as before prompt weighting existed. The weighted
//! arithmetic runs on the host in f32, in compel's order of operations.

use super::{parse, Conjunction, Fragment, Part, Piece, PromptError};
use crate::clip::{AddedEmbeddings, ClipTextModel};
use crate::error::{Error, Result};
use crate::nn::cast_to;
use crate::tokenizer::ClipTokenizer;
use burn::tensor::{DType, Device, Tensor, TensorData};
use std::cell::OnceCell;

/// A prompt's conditioning before it is padded to the other prompt's length.
pub enum Encoded {
    /// No weighting: the token ids, encoded when the length is known.
    Plain(Vec<u32>),
    /// compel's conditioning on the host, `[chunks * (window + 2) * hidden]`.
    Weighted(Vec<f32>),
}

/// The empty prompt's encoding, and where and in what the encoder computes.
struct Empty {
    values: Vec<f32>,
    device: Device,
    dtype: DType,
}

/// Encodes prompts in compel's syntax with a model's tokenizer and text encoder.
pub struct PromptEncoder<'a> {
    tokenizer: &'a ClipTokenizer,
    text_encoder: &'a ClipTextModel,
    added: Option<&'a AddedEmbeddings>,
    empty: OnceCell<Empty>,
}

impl<'a> PromptEncoder<'a> {
    /// `added`: the token rows of the textual inversion the tokenizer holds, if any.
    pub fn new(
        tokenizer: &'a ClipTokenizer,
        text_encoder: &'a ClipTextModel,
        added: Option<&'a AddedEmbeddings>,
    ) -> Self {
        Self {
            tokenizer,
            text_encoder,
            added,
            empty: OnceCell::new(),
        }
    }

    /// Tokens per chunk between BOS and EOS.
    fn window(&self) -> usize {
        self.text_encoder.max_positions() - 2
    }

    /// Values per encoded chunk.
    fn chunk_len(&self) -> usize {
        self.text_encoder.max_positions() * self.text_encoder.hidden_size()
    }

    /// The conditioning of `text`, unpadded. A prompt compel refuses is an
    /// [`Error::Request`] that names it.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let refused = |e: PromptError| Error::Request(format!("prompt `{text}`: {e}"));
        let conjunction = parse(text).map_err(refused)?;
        if let Some(texts) = conjunction.unweighted_texts() {
            return Ok(Encoded::Plain(
                texts
                    .iter()
                    .flat_map(|t| self.tokenizer.encode(t))
                    .collect(),
            ));
        }
        self.conditioning(&conjunction)
            .map(Encoded::Weighted)
            .map_err(|e| match e {
                Refusal::Prompt(e) => refused(e),
                Refusal::Engine(e) => e,
            })
    }

    /// Both conditionings `[1, chunks * (window + 2), hidden]`, the shorter
    /// padded with empty-prompt chunks to the longer one's length.
    pub fn pad_pair(&self, a: Encoded, b: Encoded) -> Result<(Tensor<3>, Tensor<3>)> {
        let chunks = |e: &Encoded| match e {
            Encoded::Plain(ids) => ids.len().div_ceil(self.window()).max(1),
            Encoded::Weighted(values) => values.len() / self.chunk_len(),
        };
        let n = chunks(&a).max(chunks(&b));
        Ok((self.finish(a, n)?, self.finish(b, n)?))
    }

    fn finish(&self, encoded: Encoded, chunks: usize) -> Result<Tensor<3>> {
        let rows = chunks * self.text_encoder.max_positions();
        let h = self.text_encoder.hidden_size();
        match encoded {
            Encoded::Plain(ids) => {
                // As the plain pipeline has always encoded a prompt: one batch, padding included.
                let e = self.forward(&self.tokenizer.chunk_ids(&ids, self.window(), chunks), None);
                Ok(e.reshape([1, rows, h]))
            }
            Encoded::Weighted(values) => {
                let values = self.pad(values, chunks)?;
                let empty = self.empty()?;
                let t = Tensor::<3>::from_data(
                    TensorData::new(values, [1, rows, h]),
                    (&empty.device, DType::F32),
                );
                Ok(cast_to(t, empty.dtype))
            }
        }
    }

    fn forward(&self, chunks: &[Vec<u32>], mask: Option<&[Vec<bool>]>) -> Tensor<3> {
        crate::profile::span("text_encoder", || {
            self.text_encoder.forward_with(chunks, self.added, mask)
        })
    }

    /// [`Self::forward`], read back as f32.
    fn forward_host(&self, chunks: &[Vec<u32>], mask: Option<&[Vec<bool>]>) -> Result<Vec<f32>> {
        cast_to(self.forward(chunks, mask), DType::F32)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Device(format!("reading the text encoder's output back: {e:?}")))
    }

    /// compel's `empty_z`: the encoded `BOS EOS pad…`.
    fn empty(&self) -> Result<&Empty> {
        if let Some(empty) = self.empty.get() {
            return Ok(empty);
        }
        let chunk = self.tokenizer.chunk_ids(&[], self.window(), 1);
        let e = self.forward(&chunk, None);
        let (device, dtype) = (e.device(), e.dtype());
        let values = cast_to(e, DType::F32)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Device(format!("reading the text encoder's output back: {e:?}")))?;
        Ok(self.empty.get_or_init(|| Empty {
            values,
            device,
            dtype,
        }))
    }

    /// `values` followed by empty-prompt chunks up to `chunks` (compel's
    /// `pad_conditioning_tensors_to_same_length`).
    fn pad(&self, mut values: Vec<f32>, chunks: usize) -> Result<Vec<f32>> {
        let missing = chunks.saturating_sub(values.len() / self.chunk_len());
        if missing > 0 {
            let empty = &self.empty()?.values;
            for _ in 0..missing {
                values.extend_from_slice(empty);
            }
        }
        Ok(values)
    }

    /// `build_conditioning_tensor_for_conjunction`.
    fn conditioning(&self, conjunction: &Conjunction) -> Result<Vec<f32>, Refusal> {
        if conjunction.parts.is_empty() {
            return Err(PromptError::new(
                "nothing to condition on: it holds only empty groups or LoRA terms".into(),
            )
            .into());
        }
        let mut out = Vec::new();
        for (part, weight) in &conjunction.parts {
            let c = match part {
                Part::Prompt(pieces) => self.prompt(pieces)?,
                Part::Blend {
                    prompts,
                    weights,
                    normalize,
                } => self.blend(prompts, weights, *normalize)?,
            };
            let c = if *weight != 1.0 {
                let empty = &self.empty()?.values;
                let w = *weight as f32;
                c.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let e = empty[i % empty.len()];
                        e + (v - e) * w
                    })
                    .collect()
            } else {
                c
            };
            out.extend(c);
        }
        Ok(out)
    }

    /// A flattened prompt's conditioning. With a `.swap()`, that of the
    /// original side, padded to the edited side's length (compel returns the
    /// original conditioning of its prompt-to-prompt pair).
    fn prompt(&self, pieces: &[Piece]) -> Result<Vec<f32>, Refusal> {
        if !pieces.iter().any(|p| matches!(p, Piece::Swap { .. })) {
            return self.weighted(&fragments(pieces)?);
        }
        let side = |original: bool| -> Result<Vec<Fragment>, Refusal> {
            let mut out = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Fragment(f) => out.push(f.clone()),
                    Piece::Swap {
                        original: o,
                        edited: e,
                    } => out.extend(fragments(if original { o } else { e })?),
                }
            }
            Ok(out)
        };
        let conditioning = self.weighted(&side(true)?)?;
        let edited: usize = side(false)?
            .iter()
            .map(|f| self.tokenizer.encode(&f.text).len())
            .sum();
        Ok(self.pad(conditioning, edited.div_ceil(self.window()).max(1))?)
    }

    /// `_get_conditioning_for_blend`: the prompts' conditionings padded to
    /// one length, summed with the (normalised) weights.
    fn blend(
        &self,
        prompts: &[Vec<Piece>],
        weights: &[f64],
        normalize: bool,
    ) -> Result<Vec<f32>, Refusal> {
        let mut conditionings = prompts
            .iter()
            .map(|p| self.weighted(&fragments(p)?))
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = conditionings
            .iter()
            .map(|c| c.len() / self.chunk_len())
            .max()
            .unwrap_or(1);
        for c in &mut conditionings {
            *c = self.pad(std::mem::take(c), chunks)?;
        }
        Ok(weighted_sum(&conditionings, weights, normalize))
    }

    /// `get_embeddings_for_weighted_prompt_fragments` for one prompt.
    fn weighted(&self, fragments: &[Fragment]) -> Result<Vec<f32>, Refusal> {
        let empty_prompt = [Fragment {
            text: String::new(),
            weight: 1.0,
        }];
        let fragments = if fragments.is_empty() {
            &empty_prompt[..]
        } else {
            fragments
        };
        let window = self.window();
        let per_fragment: Vec<Vec<u32>> = fragments
            .iter()
            .map(|f| self.tokenizer.encode(&f.text))
            .collect();
        let ids: Vec<u32> = per_fragment.iter().flatten().copied().collect();
        let chunks = self.tokenizer.chunk_ids(&ids, window, 1);
        // Weights by position in the chunks: BOS, EOS and padding keep weight 1.
        let mut weights = vec![vec![1.0f32; window + 2]; chunks.len()];
        let token_weights = fragments
            .iter()
            .zip(&per_fragment)
            .flat_map(|(f, t)| std::iter::repeat_n(f.weight as f32, t.len()));
        for (j, w) in token_weights.enumerate() {
            weights[j / window][1 + j % window] = w;
        }

        let base = self.build(&chunks, &weights, None)?;
        let mut stack = vec![(base, 1.0f64)];
        let mut start = 0;
        for (fragment, tokens) in fragments.iter().zip(&per_fragment) {
            let range = start..start + tokens.len();
            start = range.end;
            if fragment.weight >= 1.0 {
                continue;
            }
            if range.is_empty() {
                return Err(PromptError::new(format!(
                    "`{}` is weighted below 1 but has no tokens",
                    fragment.text
                ))
                .into());
            }
            // The prompt without this fragment: its tokens hidden from every query.
            let mut mask = vec![vec![true; window + 2]; chunks.len()];
            for j in range {
                mask[j / window][1 + j % window] = false;
            }
            let without = self.build(&chunks, &weights, Some(&mask))?;
            let lerp = ((1.0 - fragment.weight.max(1e-5)) * std::f64::consts::PI / 2.0).tan();
            stack.push((without, lerp));
        }
        if stack.len() == 1 {
            return Ok(stack.pop().expect("the base encoding").0);
        }
        let (encodings, lerps): (Vec<Vec<f32>>, Vec<f64>) = stack.into_iter().unzip();
        Ok(weighted_sum(&encodings, &lerps, true))
    }

    /// `build_weighted_embedding_tensor`: the chunks encoded (under `mask`),
    /// each token of weight `w ≠ 1` taken to `empty + (z - empty) · w`.
    fn build(
        &self,
        chunks: &[Vec<u32>],
        weights: &[Vec<f32>],
        mask: Option<&[Vec<bool>]>,
    ) -> Result<Vec<f32>> {
        let mut z = self.forward_host(chunks, mask)?;
        if weights.iter().flatten().all(|&w| w == 1.0) {
            return Ok(z);
        }
        let empty = &self.empty()?.values;
        let h = self.text_encoder.hidden_size();
        for (token, &w) in weights.iter().flatten().enumerate() {
            if w == 1.0 {
                continue;
            }
            let at = token * h;
            let e = &empty[at % empty.len()..][..h];
            for (v, &e) in z[at..at + h].iter_mut().zip(e) {
                *v = e + (*v - e) * w;
            }
        }
        Ok(z)
    }
}

/// Σ conditioning_k · weight_k in f32, the weights first divided by their
/// sum when `normalize` (compel's `apply_embedding_weights`).
fn weighted_sum(conditionings: &[Vec<f32>], weights: &[f64], normalize: bool) -> Vec<f32> {
    let mut w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    if normalize {
        let sum: f32 = w.iter().sum();
        for w in &mut w {
            *w /= sum;
        }
    }
    (0..conditionings[0].len())
        .map(|i| {
            conditionings
                .iter()
                .zip(&w)
                .map(|(c, &w)| c[i] * w)
                .sum::<f32>()
        })
        .collect()
}

/// The fragments of pieces with no `.swap()` in them.
fn fragments(pieces: &[Piece]) -> Result<Vec<Fragment>, Refusal> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Fragment(f) => Ok(f.clone()),
            Piece::Swap { .. } => {
                Err(PromptError::new("a .swap() inside a .swap() or a blend".into()).into())
            }
        })
        .collect()
}

/// Why a weighted conditioning was not made: the prompt, or the engine.
enum Refusal {
    Prompt(PromptError),
    Engine(Error),
}

impl From<PromptError> for Refusal {
    fn from(e: PromptError) -> Self {
        Refusal::Prompt(e)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Engine(e)
    }
}
