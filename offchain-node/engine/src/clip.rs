//! The CLIP text tower (`CLIPTextModel`, `text_encoder/`): SD 1.x's ViT-L/14
//! text encoder and, with SD 2.x's 23-layer config (OpenCLIP ViT-H already
//! cut at its penultimate layer by the diffusers conversion), the same code.
//!
//! Two additions to the plain forward pass serve prompt features: token
//! embedding rows past the vocabulary (a textual inversion's,
//! [`AddedEmbeddings`]) and an attention mask over the keys (compel's
//! downweighting, [`crate::prompt`]). Without them the pass is unchanged.

use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::nn::{attention, cast_to, LayerNorm, Linear, MergedLinear};
use crate::profile;
use crate::weights::Weights;
use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

struct EncoderLayer {
    qkv: MergedLinear,
    out: Linear,
    ln1: LayerNorm,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Token embedding rows past the vocabulary: id `first_id + i` embeds as row
/// `i` (in the token embedding's dtype), as `transformers` gives a resized
/// embedding's new rows the ids of the tokens added last.
#[derive(Clone)]
pub struct AddedEmbeddings {
    first_id: u32,
    rows: Tensor<2>,
}

pub struct ClipTextModel {
    config: ClipConfig,
    token_embedding: Tensor<2>,
    position_embedding: Tensor<2>,
    layers: Vec<EncoderLayer>,
    final_ln: LayerNorm,
}

impl ClipTextModel {
    pub fn load(config: &ClipConfig, w: &mut Weights) -> Result<Self> {
        let c = config;
        if !matches!(c.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(Error::Request(format!(
                "text encoder activation {} is not supported",
                c.hidden_act
            )));
        }
        let h = c.hidden_size;
        // transformers 4 saves `text_model.`-prefixed keys (every released SD checkpoint);
        // transformers 5 drops the prefix.
        let p = if w.contains("text_model.embeddings.token_embedding.weight") {
            "text_model."
        } else {
            ""
        };
        let token_embedding = w.get(
            &format!("{p}embeddings.token_embedding.weight"),
            [c.vocab_size, h],
        )?;
        let position_embedding = w.get(
            &format!("{p}embeddings.position_embedding.weight"),
            [c.max_position_embeddings, h],
        )?;
        // A buffer older transformers versions saved next to the weights: arange(77).
        w.skip(&format!("{p}embeddings.position_ids"));
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let l = format!("{p}encoder.layers.{i}");
            layers.push(EncoderLayer {
                qkv: MergedLinear::load(
                    w,
                    &["q_proj", "k_proj", "v_proj"].map(|n| format!("{l}.self_attn.{n}")),
                    h,
                    h,
                    true,
                )?,
                out: Linear::load(w, &format!("{l}.self_attn.out_proj"), h, h, true)?,
                ln1: LayerNorm::load(w, &format!("{l}.layer_norm1"), h, c.layer_norm_eps)?,
                ln2: LayerNorm::load(w, &format!("{l}.layer_norm2"), h, c.layer_norm_eps)?,
                fc1: Linear::load(w, &format!("{l}.mlp.fc1"), h, c.intermediate_size, true)?,
                fc2: Linear::load(w, &format!("{l}.mlp.fc2"), c.intermediate_size, h, true)?,
            });
        }
        let final_ln = LayerNorm::load(w, &format!("{p}final_layer_norm"), h, c.layer_norm_eps)?;
        Ok(Self {
            config: config.clone(),
            token_embedding,
            position_embedding,
            layers,
            final_ln,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Rows for ids `first_id..` from `values` (`[rows, hidden]`, row-major), in
    /// the token embedding's dtype and on its device.
    pub fn added_embeddings(&self, first_id: u32, values: Vec<f32>) -> Result<AddedEmbeddings> {
        let h = self.config.hidden_size;
        if values.is_empty() || !values.len().is_multiple_of(h) {
            return Err(Error::Request(format!(
                "{} values are not whole token embeddings of {h} dims",
                values.len()
            )));
        }
        let n = values.len() / h;
        let rows = Tensor::<2>::from_data(
            TensorData::new(values, [n, h]),
            (&self.token_embedding.device(), DType::F32),
        );
        Ok(AddedEmbeddings {
            first_id,
            rows: cast_to(rows, self.token_embedding.dtype()),
        })
    }

    /// `last_hidden_state` for `[batch][seq]` token ids (after the final layer norm,
    /// which is what diffusers' pipelines condition the UNet on).
    pub fn forward(&self, ids: &[Vec<u32>]) -> Tensor<3> {
        self.forward_with(ids, None, None)
    }

    /// [`Self::forward`] with ids from `added.first_id()` on looked up in
    /// `added`, and with `key_mask` (per row, per position) hiding the
    /// positions marked `false` from every query, as `transformers` applies an
    /// `attention_mask` on top of CLIP's causal mask.
    pub fn forward_with(
        &self,
        ids: &[Vec<u32>],
        added: Option<&AddedEmbeddings>,
        key_mask: Option<&[Vec<bool>]>,
    ) -> Tensor<3> {
        let b = ids.len();
        let s = ids[0].len();
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let h = self.config.hidden_size;
        let tokens = self.embed_tokens(&flat, added).reshape([b, s, h]);
        // A mask hiding nothing is no mask: the fused attention kernels stay in use.
        let bias = key_mask
            .filter(|m| m.iter().flatten().any(|&keep| !keep))
            .map(|m| self.attention_bias(m, s));
        let positions = self
            .position_embedding
            .clone()
            .narrow(0, 0, s)
            .reshape([1, s, h]);
        let mut x = tokens + positions;

        let heads = self.config.num_attention_heads;
        let quick = self.config.hidden_act == "quick_gelu";
        for (i, l) in self.layers.iter().enumerate() {
            x = profile::span(&format!("layer.{i}"), || {
                let r = x.clone();
                let [q, k, v] = <[Tensor<3>; 3]>::try_from(l.qkv.forward(l.ln1.forward(x)))
                    .expect("q, k and v");
                // Causal: position i attends to positions <= i.
                let attended = match &bias {
                    None => attention(q, k, v, heads, true),
                    Some(bias) => masked_attention(q, k, v, heads, bias.clone()),
                };
                let x = r + l.out.forward(attended);
                let r = x.clone();
                let y = l.fc1.forward(l.ln2.forward(x));
                let y = if quick {
                    y.clone() * sigmoid(y.mul_scalar(1.702))
                } else {
                    gelu(y)
                };
                r + l.fc2.forward(y)
            });
        }
        self.final_ln.forward(x)
    }

    /// Token embeddings `[n, hidden]` of `ids`.
    fn embed_tokens(&self, ids: &[u32], added: Option<&AddedEmbeddings>) -> Tensor<2> {
        let device = self.token_embedding.device();
        let index = |ids: Vec<i64>| {
            let n = ids.len();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &device)
        };
        let is_added = |t: u32| added.is_some_and(|a| t >= a.first_id);
        let Some(added) = added.filter(|_| ids.iter().any(|&t| is_added(t))) else {
            return self
                .token_embedding
                .clone()
                .select(0, index(ids.iter().map(|&t| t as i64).collect()));
        };
        let first = added.first_id;
        // Each position takes its vocabulary row or its added row; the other
        // lookup of the position reads row 0, which is then discarded.
        let base = self.token_embedding.clone().select(
            0,
            index(
                ids.iter()
                    .map(|&t| if is_added(t) { 0 } else { t as i64 })
                    .collect(),
            ),
        );
        let extra = added.rows.clone().select(
            0,
            index(
                ids.iter()
                    .map(|&t| if is_added(t) { (t - first) as i64 } else { 0 })
                    .collect(),
            ),
        );
        let h = self.config.hidden_size;
        let take_extra: Vec<bool> = ids
            .iter()
            .flat_map(|&t| std::iter::repeat_n(is_added(t), h))
            .collect();
        let mask =
            Tensor::<2, Bool>::from_data(TensorData::new(take_extra, [ids.len(), h]), &device);
        base.mask_where(mask, extra)
    }

    /// The additive f32 attention bias `[rows, 1, s, s]`: 0 where query i may
    /// see key j (j <= i, key kept), -inf elsewhere.
    fn attention_bias(&self, key_mask: &[Vec<bool>], s: usize) -> Tensor<4> {
        let b = key_mask.len();
        let mut bias = Vec::with_capacity(b * s * s);
        for keep in key_mask {
            for i in 0..s {
                bias.extend((0..s).map(|j| {
                    if j <= i && keep[j] {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                }));
            }
        }
        Tensor::<4>::from_data(
            TensorData::new(bias, [b, 1, s, s]),
            (&self.token_embedding.device(), DType::F32),
        )
    }
}

/// softmax(q·kᵀ/√d + bias)·v with the scores in memory and the softmax in f32,
/// for the rare masked pass (the fused kernels take no mask). Every query
/// keeps at least its BOS key, so no row of the softmax is all -inf.
fn masked_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Tensor<4>,
) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    let d = inner / heads;
    let split = |x: Tensor<3>| x.reshape([b, s, heads, d]).swap_dims(1, 2);
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    let dtype = scores.dtype();
    let weights = softmax(cast_to(scores, DType::F32) + bias, 3);
    cast_to(weights, dtype)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, s, inner])
}
