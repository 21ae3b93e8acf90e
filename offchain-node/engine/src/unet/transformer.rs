//! `Transformer2DModel` with `BasicTransformerBlock`s: self-attention,
//! cross-attention on the text embedding, GEGLU feed-forward.

use crate::error::Result;
use crate::nn::{attention, gelu, GroupNorm, LayerNorm, Linear, MergedLinear};
use crate::profile::span;
use crate::weights::Weights;
use burn::tensor::Tensor;

/// Self-attention: q, k and v from the same input, one merged projection.
struct SelfAttention {
    qkv: MergedLinear,
    to_out: Linear,
    heads: usize,
}

impl SelfAttention {
    fn load(w: &mut Weights, prefix: &str, dim: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            qkv: MergedLinear::load(
                w,
                &["to_q", "to_k", "to_v"].map(|n| format!("{prefix}.{n}")),
                dim,
                dim,
                false,
            )?,
            to_out: Linear::load(w, &format!("{prefix}.to_out.0"), dim, dim, true)?,
            heads,
        })
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = <[Tensor<3>; 3]>::try_from(self.qkv.forward(x)).expect("q, k and v");
        self.to_out.forward(attention(q, k, v, self.heads, false))
    }
}

/// Keys and values of a cross-attention over the text embedding: the text
/// does not change between denoising steps, so they are computed once per
/// image ([`Transformer2D::cross_kv`]) instead of once per step.
#[derive(Clone)]
pub struct CrossKv {
    k: Tensor<3>,
    v: Tensor<3>,
}

/// Cross-attention: q from the image, k and v from the text embedding.
struct CrossAttention {
    to_q: Linear,
    kv: MergedLinear,
    to_out: Linear,
    heads: usize,
}

impl CrossAttention {
    fn load(
        w: &mut Weights,
        prefix: &str,
        dim: usize,
        context_dim: usize,
        heads: usize,
    ) -> Result<Self> {
        Ok(Self {
            to_q: Linear::load(w, &format!("{prefix}.to_q"), dim, dim, false)?,
            kv: MergedLinear::load(
                w,
                &["to_k", "to_v"].map(|n| format!("{prefix}.{n}")),
                context_dim,
                dim,
                false,
            )?,
            to_out: Linear::load(w, &format!("{prefix}.to_out.0"), dim, dim, true)?,
            heads,
        })
    }

    fn kv(&self, context: &Tensor<3>) -> CrossKv {
        let [k, v] = <[Tensor<3>; 2]>::try_from(self.kv.forward(context.clone())).expect("k and v");
        CrossKv { k, v }
    }

    fn forward(&self, x: Tensor<3>, kv: &CrossKv) -> Tensor<3> {
        let q = self.to_q.forward(x);
        self.to_out
            .forward(attention(q, kv.k.clone(), kv.v.clone(), self.heads, false))
    }
}

struct Block {
    norm1: LayerNorm,
    attn1: SelfAttention,
    norm2: LayerNorm,
    attn2: CrossAttention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    inner: usize,
}

impl Block {
    fn load(
        w: &mut Weights,
        prefix: &str,
        dim: usize,
        context_dim: usize,
        heads: usize,
    ) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            norm1: LayerNorm::load(w, &format!("{prefix}.norm1"), dim, 1e-5)?,
            attn1: SelfAttention::load(w, &format!("{prefix}.attn1"), dim, heads)?,
            norm2: LayerNorm::load(w, &format!("{prefix}.norm2"), dim, 1e-5)?,
            attn2: CrossAttention::load(w, &format!("{prefix}.attn2"), dim, context_dim, heads)?,
            norm3: LayerNorm::load(w, &format!("{prefix}.norm3"), dim, 1e-5)?,
            ff_in: Linear::load(w, &format!("{prefix}.ff.net.0.proj"), dim, 2 * inner, true)?,
            ff_out: Linear::load(w, &format!("{prefix}.ff.net.2"), inner, dim, true)?,
            inner,
        })
    }

    fn forward(&self, x: Tensor<3>, kv: &CrossKv) -> Tensor<3> {
        let x = span("self_attn", || {
            x.clone() + self.attn1.forward(self.norm1.forward(x))
        });
        let x = span("cross_attn", || {
            x.clone() + self.attn2.forward(self.norm2.forward(x), kv)
        });
        span("feed_forward", || {
            let h = self.ff_in.forward(self.norm3.forward(x.clone()));
            let [b, s, _] = h.dims();
            let value = h.clone().slice([0..b, 0..s, 0..self.inner]);
            let gate = h.slice([0..b, 0..s, self.inner..2 * self.inner]);
            x + self.ff_out.forward(value * gelu(gate))
        })
    }
}

pub struct Transformer2D {
    norm: GroupNorm,
    /// `proj_in`/`proj_out` are 1x1 convs (SD 1.x) or linear layers (SD 2.x):
    /// both load as linear layers over the `[b, h·w, c]` sequence.
    proj_in: Linear,
    blocks: Vec<Block>,
    proj_out: Linear,
}

pub struct TransformerShape {
    pub channels: usize,
    pub heads: usize,
    pub layers: usize,
    pub context_dim: usize,
    pub groups: usize,
    pub linear_projection: bool,
}

impl Transformer2D {
    pub fn load(w: &mut Weights, prefix: &str, s: &TransformerShape) -> Result<Self> {
        let c = s.channels;
        let proj = |w: &mut Weights, name: &str| -> Result<Linear> {
            let p = format!("{prefix}.{name}");
            if s.linear_projection {
                Linear::load(w, &p, c, c, true)
            } else {
                Linear::load_pointwise_conv(w, &p, c, c)
            }
        };
        let norm = GroupNorm::load(w, &format!("{prefix}.norm"), s.groups, c, 1e-6)?;
        let proj_in = proj(w, "proj_in")?;
        let blocks = (0..s.layers)
            .map(|i| {
                Block::load(
                    w,
                    &format!("{prefix}.transformer_blocks.{i}"),
                    c,
                    s.context_dim,
                    s.heads,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let proj_out = proj(w, "proj_out")?;
        Ok(Self {
            norm,
            proj_in,
            blocks,
            proj_out,
        })
    }

    /// The cross-attention keys and values of every block for `context`.
    pub fn cross_kv(&self, context: &Tensor<3>) -> Vec<CrossKv> {
        self.blocks.iter().map(|b| b.attn2.kv(context)).collect()
    }

    /// `kv` from [`Self::cross_kv`] on this transformer.
    pub fn forward(&self, x: Tensor<4>, kv: &[CrossKv]) -> Tensor<4> {
        let [b, c, h, wd] = x.dims();
        let residual = x.clone();
        let to_seq = |x: Tensor<4>| x.reshape([b, c, h * wd]).swap_dims(1, 2);
        let mut seq = span("proj_in", || {
            self.proj_in.forward(to_seq(self.norm.forward(x)))
        });
        for (block, kv) in self.blocks.iter().zip(kv) {
            seq = block.forward(seq, kv);
        }
        let from_seq = |s: Tensor<3>| s.swap_dims(1, 2).reshape([b, c, h, wd]);
        span("proj_out", || {
            from_seq(self.proj_out.forward(seq)) + residual
        })
    }
}
