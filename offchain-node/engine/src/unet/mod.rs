//! `UNet2DConditionModel` (SD 1.x/2.x): down blocks, a cross-attention mid
//! block and up blocks with skip connections, conditioned on the timestep and
//! the text embedding. Module names follow diffusers' weight keys.

mod transformer;

use crate::config::UNetConfig;
use crate::error::Result;
use crate::nn::{cast_to, Conv2d, GroupNorm, Linear};
use crate::profile::span;
use crate::resnet::ResnetBlock;
use crate::weights::Weights;
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{DType, Tensor, TensorData};
use transformer::{CrossKv, Transformer2D, TransformerShape};

/// The text conditioning prepared for the UNet: every cross-attention's keys
/// and values, computed once per image ([`UNet::condition`]) and reused by
/// every denoising step.
pub struct Conditioning {
    /// One entry per transformer, in the order [`UNet::forward_conditioned`] runs them.
    per_transformer: Vec<Vec<CrossKv>>,
}

struct Layer {
    resnet: ResnetBlock,
    attention: Option<Transformer2D>,
}

impl Layer {
    fn forward<'a>(
        &self,
        j: usize,
        x: Tensor<4>,
        temb: &Tensor<2>,
        kv: &mut impl Iterator<Item = &'a Vec<CrossKv>>,
    ) -> Tensor<4> {
        let x = span(&format!("resnet.{j}"), || {
            self.resnet.forward(x, Some(temb))
        });
        match &self.attention {
            Some(t) => {
                let kv = kv.next().expect("conditioning for every transformer");
                span(&format!("attn.{j}"), || t.forward(x, kv))
            }
            None => x,
        }
    }
}

struct DownBlock {
    layers: Vec<Layer>,
    downsample: Option<Conv2d>,
}

struct UpBlock {
    layers: Vec<Layer>,
    upsample: Option<Conv2d>,
}

pub struct UNet {
    config: UNetConfig,
    time_linear_1: Linear,
    time_linear_2: Linear,
    conv_in: Conv2d,
    down: Vec<DownBlock>,
    mid_resnet_0: ResnetBlock,
    mid_attention: Transformer2D,
    mid_resnet_1: ResnetBlock,
    up: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl UNet {
    pub fn load(config: &UNetConfig, w: &mut Weights) -> Result<Self> {
        let c = config;
        let ch = &c.block_out_channels;
        let n = ch.len();
        let temb = 4 * ch[0];
        let heads = c.heads();
        let layers = c.transformer_layers_per_block.expand(n);
        let (groups, eps) = (c.norm_num_groups, c.norm_eps);
        let shape = |channels: usize, i: usize| TransformerShape {
            channels,
            heads: heads[i],
            layers: layers[i],
            context_dim: c.cross_attention_dim,
            groups,
            linear_projection: c.use_linear_projection,
        };

        let time_linear_1 = Linear::load(w, "time_embedding.linear_1", ch[0], temb, true)?;
        let time_linear_2 = Linear::load(w, "time_embedding.linear_2", temb, temb, true)?;
        let conv_in = Conv2d::load(w, "conv_in", c.in_channels, ch[0], 3, 1)?;

        let mut down = Vec::new();
        let mut c_prev = ch[0];
        for (i, kind) in c.down_block_types.iter().enumerate() {
            let p = format!("down_blocks.{i}");
            let cross = kind.starts_with("CrossAttn");
            let mut block_layers = Vec::new();
            for j in 0..c.layers_per_block {
                let c_in = if j == 0 { c_prev } else { ch[i] };
                let resnet = ResnetBlock::load(
                    w,
                    &format!("{p}.resnets.{j}"),
                    c_in,
                    ch[i],
                    Some(temb),
                    groups,
                    eps,
                )?;
                let attention = if cross {
                    Some(Transformer2D::load(
                        w,
                        &format!("{p}.attentions.{j}"),
                        &shape(ch[i], i),
                    )?)
                } else {
                    None
                };
                block_layers.push(Layer { resnet, attention });
            }
            let downsample = if i + 1 < n {
                Some(Conv2d::load(
                    w,
                    &format!("{p}.downsamplers.0.conv"),
                    ch[i],
                    ch[i],
                    3,
                    2,
                )?)
            } else {
                None
            };
            down.push(DownBlock {
                layers: block_layers,
                downsample,
            });
            c_prev = ch[i];
        }

        let last = ch[n - 1];
        let mid_resnet_0 = ResnetBlock::load(
            w,
            "mid_block.resnets.0",
            last,
            last,
            Some(temb),
            groups,
            eps,
        )?;
        let mid_attention = Transformer2D::load(w, "mid_block.attentions.0", &shape(last, n - 1))?;
        let mid_resnet_1 = ResnetBlock::load(
            w,
            "mid_block.resnets.1",
            last,
            last,
            Some(temb),
            groups,
            eps,
        )?;

        // Up block i runs at the channels of down block n-1-i and consumes its skips.
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let rev_heads: Vec<usize> = heads.iter().rev().copied().collect();
        let rev_layers: Vec<usize> = layers.iter().rev().copied().collect();
        let mut up = Vec::new();
        let mut c_prev = rev[0];
        for (i, kind) in c.up_block_types.iter().enumerate() {
            let p = format!("up_blocks.{i}");
            let cross = kind.starts_with("CrossAttn");
            let c_out = rev[i];
            let c_skip_last = rev[(i + 1).min(n - 1)];
            let mut block_layers = Vec::new();
            for j in 0..=c.layers_per_block {
                let skip = if j == c.layers_per_block {
                    c_skip_last
                } else {
                    c_out
                };
                let c_in = if j == 0 { c_prev } else { c_out };
                let resnet = ResnetBlock::load(
                    w,
                    &format!("{p}.resnets.{j}"),
                    c_in + skip,
                    c_out,
                    Some(temb),
                    groups,
                    eps,
                )?;
                let attention = if cross {
                    let s = TransformerShape {
                        heads: rev_heads[i],
                        layers: rev_layers[i],
                        ..shape(c_out, i)
                    };
                    Some(Transformer2D::load(w, &format!("{p}.attentions.{j}"), &s)?)
                } else {
                    None
                };
                block_layers.push(Layer { resnet, attention });
            }
            let upsample = if i + 1 < n {
                Some(Conv2d::load(
                    w,
                    &format!("{p}.upsamplers.0.conv"),
                    c_out,
                    c_out,
                    3,
                    1,
                )?)
            } else {
                None
            };
            up.push(UpBlock {
                layers: block_layers,
                upsample,
            });
            c_prev = c_out;
        }

        let conv_norm_out = GroupNorm::load(w, "conv_norm_out", groups, ch[0], eps)?;
        let conv_out = Conv2d::load(w, "conv_out", ch[0], c.out_channels, 3, 1)?;
        Ok(Self {
            config: config.clone(),
            time_linear_1,
            time_linear_2,
            conv_in,
            down,
            mid_resnet_0,
            mid_attention,
            mid_resnet_1,
            up,
            conv_norm_out,
            conv_out,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Sinusoidal timestep features (`Timesteps` with diffusers' flip/shift), computed on the host in f64.
    fn time_features(&self, t: f64, batch: usize, dtype: DType) -> Tensor<2> {
        let dim = self.config.block_out_channels[0];
        let half = dim / 2;
        let shift = self.config.freq_shift;
        let mut sin = Vec::with_capacity(half);
        let mut cos = Vec::with_capacity(half);
        for k in 0..half {
            let freq = (-(10000f64.ln()) * k as f64 / (half as f64 - shift)).exp();
            // diffusers computes the exponent in f32; rounding it the same way keeps features identical.
            let arg = (t as f32 * freq as f32) as f64;
            sin.push(arg.sin() as f32);
            cos.push(arg.cos() as f32);
        }
        let row: Vec<f32> = if self.config.flip_sin_to_cos {
            cos.into_iter().chain(sin).collect()
        } else {
            sin.into_iter().chain(cos).collect()
        };
        let data: Vec<f32> = (0..batch).flat_map(|_| row.iter().copied()).collect();
        let device = self.conv_in.device();
        cast_to(
            Tensor::<2>::from_data(TensorData::new(data, [batch, dim]), (&device, DType::F32)),
            dtype,
        )
    }

    /// Every transformer in the order the forward pass runs them.
    fn transformers(&self) -> impl Iterator<Item = &Transformer2D> {
        fn of<'a>(
            layers: impl Iterator<Item = &'a Layer>,
        ) -> impl Iterator<Item = &'a Transformer2D> {
            layers.filter_map(|l| l.attention.as_ref())
        }
        of(self.down.iter().flat_map(|b| &b.layers))
            .chain(std::iter::once(&self.mid_attention))
            .chain(of(self.up.iter().flat_map(|b| &b.layers)))
    }

    /// Prepares `context: [b, s, d]` (the text embedding) for [`Self::forward_conditioned`].
    pub fn condition(&self, context: &Tensor<3>) -> Conditioning {
        span("cross_kv", || Conditioning {
            per_transformer: self.transformers().map(|t| t.cross_kv(context)).collect(),
        })
    }

    /// Predicts noise (or `v`) for `x: [b, c, h, w]` at timestep `t`, conditioned on `context: [b, s, d]`.
    pub fn forward(&self, x: Tensor<4>, t: f64, context: &Tensor<3>) -> Tensor<4> {
        self.forward_conditioned(x, t, &self.condition(context))
    }

    /// [`Self::forward`] with the text conditioning prepared once by [`Self::condition`].
    pub fn forward_conditioned(&self, x: Tensor<4>, t: f64, cond: &Conditioning) -> Tensor<4> {
        let mut kv = cond.per_transformer.iter();
        let b = x.dims()[0];
        let temb = span("time_embedding", || {
            let emb = self.time_features(t, b, x.dtype());
            let emb = self
                .time_linear_2
                .forward(silu(self.time_linear_1.forward(emb)));
            // Every resnet takes silu(emb); apply it once here.
            silu(emb)
        });

        let mut x = span("conv_in", || self.conv_in.forward(x));
        let mut skips = vec![x.clone()];
        for (i, block) in self.down.iter().enumerate() {
            x = span(&format!("down.{i}"), || {
                let mut x = x;
                for (j, layer) in block.layers.iter().enumerate() {
                    x = layer.forward(j, x, &temb, &mut kv);
                    skips.push(x.clone());
                }
                if let Some(conv) = &block.downsample {
                    x = span("downsample", || conv.forward(x));
                    skips.push(x.clone());
                }
                x
            });
        }

        x = span("mid", || {
            let x = span("resnet.0", || self.mid_resnet_0.forward(x, Some(&temb)));
            let kv = kv.next().expect("conditioning for the mid transformer");
            let x = span("attn.0", || self.mid_attention.forward(x, kv));
            span("resnet.1", || self.mid_resnet_1.forward(x, Some(&temb)))
        });

        for (i, block) in self.up.iter().enumerate() {
            x = span(&format!("up.{i}"), || {
                let mut x = x;
                for (j, layer) in block.layers.iter().enumerate() {
                    let skip = skips.pop().expect("one skip per up-block layer");
                    x = layer.forward(j, Tensor::cat(vec![x, skip], 1), &temb, &mut kv);
                }
                if let Some(conv) = &block.upsample {
                    // Latent sides that are not multiples of 8 shrink to odd sizes on the way down
                    // (65 -> 33 -> 17); upsample to the next skip's size, as diffusers' `upsample_size` does.
                    let [_, _, h, w] = skips.last().expect("a skip below every upsampler").dims();
                    x = span("upsample", || conv.forward(upsample_nearest(x, [h, w])));
                }
                x
            });
        }

        span("conv_out", || {
            self.conv_out.forward(self.conv_norm_out.forward_silu(x))
        })
    }
}

/// Nearest-neighbour 2x upsampling, as `F.interpolate(scale_factor=2.0, mode="nearest")`.
pub fn upsample_nearest_2x(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    upsample_nearest(x, [2 * h, 2 * w])
}

/// `F.interpolate(size=..., mode="nearest")`: source index `floor(i * in / out)`.
pub fn upsample_nearest(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
    )
}
