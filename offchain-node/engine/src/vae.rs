//! `AutoencoderKL`: the decoder turns latents into pixels; the encoder (for
//! img2img) turns pixels into the latent distribution's mean and log-variance.

use crate::config::VaeConfig;
use crate::error::{Error, Result};
use crate::nn::{attention, Conv2d, GroupNorm, Linear, MergedLinear};
use crate::profile::span;
use crate::resnet::ResnetBlock;
use crate::unet::upsample_nearest_2x;
use crate::weights::Weights;
use burn::tensor::Tensor;

const EPS: f64 = 1e-6;

/// The mid-block's single-head self-attention. Checkpoints name it in one of
/// two ways (`to_q/to_k/to_v/to_out.0`, or the older `query/key/value/proj_attn`,
/// sometimes stored as 1x1 convs); both load.
struct VaeAttention {
    norm: GroupNorm,
    qkv: MergedLinear,
    out: Linear,
}

impl VaeAttention {
    fn load(w: &mut Weights, prefix: &str, c: usize, groups: usize) -> Result<Self> {
        let names = if w.contains(&format!("{prefix}.to_q.weight")) {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else if w.contains(&format!("{prefix}.query.weight")) {
            ["query", "key", "value", "proj_attn"]
        } else {
            return Err(Error::MissingTensor {
                component: w.component().to_owned(),
                name: format!("{prefix}.to_q.weight (or {prefix}.query.weight)"),
            });
        };
        Ok(Self {
            norm: GroupNorm::load(w, &format!("{prefix}.group_norm"), groups, c, EPS)?,
            qkv: MergedLinear::load(
                w,
                &names[..3]
                    .iter()
                    .map(|n| format!("{prefix}.{n}"))
                    .collect::<Vec<_>>(),
                c,
                c,
                true,
            )?,
            out: Linear::load(w, &format!("{prefix}.{}", names[3]), c, c, true)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, wd] = x.dims();
        let seq = self
            .norm
            .forward(x.clone())
            .reshape([b, c, h * wd])
            .swap_dims(1, 2);
        let [q, k, v] = <[Tensor<3>; 3]>::try_from(self.qkv.forward(seq)).expect("q, k and v");
        let a = attention(q, k, v, 1, false);
        let y = self.out.forward(a).swap_dims(1, 2).reshape([b, c, h, wd]);
        x + y
    }
}

struct Mid {
    resnet_0: ResnetBlock,
    attention: Option<VaeAttention>,
    resnet_1: ResnetBlock,
}

impl Mid {
    fn load(w: &mut Weights, prefix: &str, c: usize, cfg: &VaeConfig) -> Result<Self> {
        let g = cfg.norm_num_groups;
        Ok(Self {
            resnet_0: ResnetBlock::load(w, &format!("{prefix}.resnets.0"), c, c, None, g, EPS)?,
            attention: if cfg.mid_block_add_attention {
                Some(VaeAttention::load(
                    w,
                    &format!("{prefix}.attentions.0"),
                    c,
                    g,
                )?)
            } else {
                None
            },
            resnet_1: ResnetBlock::load(w, &format!("{prefix}.resnets.1"), c, c, None, g, EPS)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = span("resnet.0", || self.resnet_0.forward(x, None));
        let x = match &self.attention {
            Some(a) => span("attn.0", || a.forward(x)),
            None => x,
        };
        span("resnet.1", || self.resnet_1.forward(x, None))
    }
}

pub struct Decoder {
    post_quant_conv: Option<Conv2d>,
    conv_in: Conv2d,
    mid: Mid,
    up: Vec<(Vec<ResnetBlock>, Option<Conv2d>)>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    scaling_factor: f64,
    shift_factor: f64,
}

impl Decoder {
    pub fn load(cfg: &VaeConfig, w: &mut Weights) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let g = cfg.norm_num_groups;
        let l = cfg.latent_channels;
        let post_quant_conv = if cfg.use_post_quant_conv {
            Some(Conv2d::load(w, "post_quant_conv", l, l, 1, 1)?)
        } else {
            None
        };
        let conv_in = Conv2d::load(w, "decoder.conv_in", l, ch[n - 1], 3, 1)?;
        let mid = Mid::load(w, "decoder.mid_block", ch[n - 1], cfg)?;
        let mut up = Vec::new();
        let mut c_prev = ch[n - 1];
        for i in 0..n {
            let c_out = ch[n - 1 - i];
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { c_out };
                    ResnetBlock::load(
                        w,
                        &format!("decoder.up_blocks.{i}.resnets.{j}"),
                        c_in,
                        c_out,
                        None,
                        g,
                        EPS,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let upsample = if i + 1 < n {
                Some(Conv2d::load(
                    w,
                    &format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                    c_out,
                    c_out,
                    3,
                    1,
                )?)
            } else {
                None
            };
            up.push((resnets, upsample));
            c_prev = c_out;
        }
        Ok(Self {
            post_quant_conv,
            conv_in,
            mid,
            up,
            norm_out: GroupNorm::load(w, "decoder.conv_norm_out", g, ch[0], EPS)?,
            conv_out: Conv2d::load(w, "decoder.conv_out", ch[0], cfg.out_channels, 3, 1)?,
            scaling_factor: cfg.scaling_factor,
            shift_factor: cfg.shift_factor.unwrap_or(0.0),
        })
    }

    pub fn scale_factor(&self) -> usize {
        1 << self.up.iter().filter(|(_, up)| up.is_some()).count()
    }

    /// Pixels in `[-1, 1]` (unclamped) from diffusion latents (still multiplied by the scaling factor).
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        let mut x = latents
            .div_scalar(self.scaling_factor)
            .add_scalar(self.shift_factor);
        x = span("conv_in", || {
            if let Some(conv) = &self.post_quant_conv {
                x = conv.forward(x);
            }
            self.conv_in.forward(x)
        });
        let mut x = span("mid", || self.mid.forward(x));
        for (i, (resnets, upsample)) in self.up.iter().enumerate() {
            x = span(&format!("up.{i}"), || {
                let mut x = x;
                for (j, r) in resnets.iter().enumerate() {
                    x = span(&format!("resnet.{j}"), || r.forward(x, None));
                }
                if let Some(conv) = upsample {
                    x = span("upsample", || conv.forward(upsample_nearest_2x(x)));
                }
                x
            });
        }
        span("conv_out", || {
            self.conv_out.forward(self.norm_out.forward_silu(x))
        })
    }
}

pub struct Encoder {
    conv_in: Conv2d,
    down: Vec<(Vec<ResnetBlock>, Option<Conv2d>)>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    quant_conv: Option<Conv2d>,
    latent_channels: usize,
    scaling_factor: f64,
    shift_factor: f64,
}

impl Encoder {
    pub fn load(cfg: &VaeConfig, w: &mut Weights) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let g = cfg.norm_num_groups;
        let l = cfg.latent_channels;
        let conv_in = Conv2d::load(w, "encoder.conv_in", cfg.in_channels, ch[0], 3, 1)?;
        let mut down = Vec::new();
        let mut c_prev = ch[0];
        for (i, &c_out) in ch.iter().enumerate() {
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { c_out };
                    ResnetBlock::load(
                        w,
                        &format!("encoder.down_blocks.{i}.resnets.{j}"),
                        c_in,
                        c_out,
                        None,
                        g,
                        EPS,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            // diffusers pads the stride-2 conv on the right and bottom only.
            let downsample = if i + 1 < n {
                let p = format!("encoder.down_blocks.{i}.downsamplers.0.conv");
                Some(Conv2d::load_padded(
                    w,
                    &p,
                    c_out,
                    c_out,
                    3,
                    2,
                    [(0, 1), (0, 1)],
                )?)
            } else {
                None
            };
            down.push((resnets, downsample));
            c_prev = c_out;
        }
        Ok(Self {
            conv_in,
            down,
            mid: Mid::load(w, "encoder.mid_block", ch[n - 1], cfg)?,
            norm_out: GroupNorm::load(w, "encoder.conv_norm_out", g, ch[n - 1], EPS)?,
            conv_out: Conv2d::load(w, "encoder.conv_out", ch[n - 1], 2 * l, 3, 1)?,
            quant_conv: if cfg.use_quant_conv {
                Some(Conv2d::load(w, "quant_conv", 2 * l, 2 * l, 1, 1)?)
            } else {
                None
            },
            latent_channels: l,
            scaling_factor: cfg.scaling_factor,
            shift_factor: cfg.shift_factor.unwrap_or(0.0),
        })
    }

    /// `(mean, logvar)` of the latent distribution of pixels in `[-1, 1]`, unscaled.
    pub fn encode(&self, pixels: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = self.conv_in.forward(pixels);
        for (resnets, downsample) in &self.down {
            for r in resnets {
                x = r.forward(x, None);
            }
            if let Some(conv) = downsample {
                x = conv.forward(x);
            }
        }
        let mut x = self
            .conv_out
            .forward(self.norm_out.forward_silu(self.mid.forward(x)));
        if let Some(conv) = &self.quant_conv {
            x = conv.forward(x);
        }
        let [b, _, h, w] = x.dims();
        let l = self.latent_channels;
        let mean = x.clone().slice([0..b, 0..l, 0..h, 0..w]);
        let logvar = x.slice([0..b, l..2 * l, 0..h, 0..w]).clamp(-30.0, 20.0);
        (mean, logvar)
    }

    /// Diffusion latents from the distribution's mean (deterministic, for img2img).
    pub fn latents_from_mean(&self, mean: Tensor<4>) -> Tensor<4> {
        mean.sub_scalar(self.shift_factor)
            .mul_scalar(self.scaling_factor)
    }
}
