//! The CLIP text tower (`CLIPTextModel`, `text_encoder/`): SD 1.x's ViT-L/14
//! text encoder and, with SD 2.x's 23-layer config (OpenCLIP ViT-H already
//! cut at its penultimate layer by the diffusers conversion), the same code.

use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::nn::{attention, LayerNorm, Linear, MergedLinear};
use crate::profile;
use crate::weights::Weights;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Int, Tensor, TensorData};

struct EncoderLayer {
    qkv: MergedLinear,
    out: Linear,
    ln1: LayerNorm,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
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

    /// `last_hidden_state` for `[batch][seq]` token ids (after the final layer norm,
    /// which is what diffusers' pipelines condition the UNet on).
    pub fn forward(&self, ids: &[Vec<u32>]) -> Tensor<3> {
        let b = ids.len();
        let s = ids[0].len();
        let device = self.token_embedding.device();
        let flat: Vec<i64> = ids
            .iter()
            .flat_map(|r| r.iter().map(|&t| t as i64))
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * s]), &device);
        let h = self.config.hidden_size;
        let tokens = self
            .token_embedding
            .clone()
            .select(0, idx)
            .reshape([b, s, h]);
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
                let x = r + l.out.forward(attention(q, k, v, heads, true));
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
}
