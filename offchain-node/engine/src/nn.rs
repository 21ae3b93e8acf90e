//! Layers shared by the text encoder, UNet and VAE, loaded by diffusers key.
//!
//! Normalisation statistics and attention softmax run in f32 even when the
//! model computes in f16: f16 sums over a 64x64x320 activation overflow.

use crate::cpu_kernels;
use crate::error::Result;
use crate::profile;
use crate::weights::Weights;
use burn::tensor::activation::softmax;
use burn::tensor::module::{self, conv2d, layer_norm, linear};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{DType, FloatDType, Tensor};

fn to_f32<const D: usize>(x: Tensor<D>) -> (Tensor<D>, DType) {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        (x, dtype)
    } else {
        (x.cast(FloatDType::F32), dtype)
    }
}

/// `x` in `dtype`; no work when it already is.
pub fn cast_to<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype {
        x
    } else {
        x.cast(float_dtype(dtype))
    }
}

/// `torch.nn.functional.silu`, with the vectorized kernel on the CPU backend.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernels::applies(&x) {
        cpu_kernels::silu(x)
    } else {
        burn::tensor::activation::silu(x)
    }
}

/// `torch.nn.functional.gelu` (erf form), with the vectorized kernel on the CPU backend.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernels::applies(&x) {
        cpu_kernels::gelu(x)
    } else {
        burn::tensor::activation::gelu(x)
    }
}

fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernels::applies(&x) {
        cpu_kernels::softmax_last(x)
    } else {
        softmax(x, D - 1)
    }
}

fn float_dtype(dtype: DType) -> FloatDType {
    match dtype {
        DType::F16 => FloatDType::F16,
        DType::BF16 => FloatDType::BF16,
        DType::F64 => FloatDType::F64,
        _ => FloatDType::F32,
    }
}

/// `torch.nn.Linear`, weight kept as `[in, out]`.
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

/// Several `torch.nn.Linear`s on the same input as one matmul: their weights
/// side by side (`[in, n·out]`), split after. q/k/v projections use it, so an
/// attention reads its input once and launches one matmul instead of three.
pub struct MergedLinear {
    inner: Linear,
    d_out: usize,
    parts: usize,
}

impl MergedLinear {
    /// The layers `prefixes` (each `d_in`→`d_out`) merged.
    pub fn load(
        w: &mut Weights,
        prefixes: &[String],
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let layers = prefixes
            .iter()
            .map(|p| Linear::load(w, p, d_in, d_out, bias))
            .collect::<Result<Vec<_>>>()?;
        let parts = layers.len();
        let weight = Tensor::cat(layers.iter().map(|l| l.weight.clone()).collect(), 1);
        let bias = bias.then(|| {
            Tensor::cat(
                layers
                    .iter()
                    .map(|l| l.bias.clone().expect("loaded with bias"))
                    .collect(),
                0,
            )
        });
        Ok(Self {
            inner: Linear { weight, bias },
            d_out,
            parts,
        })
    }

    /// One output per merged layer, in the order of `prefixes`.
    pub fn forward(&self, x: Tensor<3>) -> Vec<Tensor<3>> {
        let y = self.inner.forward(x);
        let [b, s, _] = y.dims();
        (0..self.parts)
            .map(|i| {
                y.clone()
                    .slice([0..b, 0..s, i * self.d_out..(i + 1) * self.d_out])
            })
            .collect()
    }
}

impl Linear {
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = w
            .get(&format!("{prefix}.weight"), [d_out, d_in])?
            .transpose();
        let bias = if bias {
            Some(w.get(&format!("{prefix}.bias"), [d_out])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// A 1x1 `torch.nn.Conv2d` (weight `[out, in, 1, 1]`) as the linear layer
    /// it is over the channels: applied to a `[b, h·w, c]` sequence, the
    /// matmul's output is contiguous, where the conv's `[b, c, h, w]` output
    /// would need a transpose that leaves every later op a strided view.
    pub fn load_pointwise_conv(
        w: &mut Weights,
        prefix: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Self> {
        let weight = w
            .get(&format!("{prefix}.weight"), [d_out, d_in, 1, 1])?
            .reshape([d_out, d_in])
            .transpose();
        let bias = Some(w.get(&format!("{prefix}.bias"), [d_out])?);
        Ok(Self { weight, bias })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if profile::active() {
            let [d_in, d_out] = self.weight.dims();
            profile::count(profile::linear_flops(
                x.shape().num_elements() / d_in,
                d_in,
                d_out,
            ));
        }
        linear(x, self.weight.clone(), self.bias.clone())
    }
}

/// `torch.nn.Conv2d` with square kernels.
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Tensor<1>,
    options: ConvOptions<2>,
}

impl Conv2d {
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self> {
        let pad = kernel / 2;
        Self::load_padded(
            w,
            prefix,
            c_in,
            c_out,
            kernel,
            stride,
            [(pad, pad), (pad, pad)],
        )
    }

    pub fn load_padded(
        w: &mut Weights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: [(usize, usize); 2],
    ) -> Result<Self> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), [c_out, c_in, kernel, kernel])?,
            bias: w.get(&format!("{prefix}.bias"), [c_out])?,
            options: ConvOptions::new_with_padding([stride, stride], padding, [1, 1], 1),
        })
    }

    pub fn device(&self) -> burn::tensor::Device {
        self.weight.device()
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            self.options.clone(),
        );
        if profile::active() {
            let [c_out, c_in, k, _] = self.weight.dims();
            let [b, _, h, w] = y.dims();
            profile::count(profile::conv_flops(b, c_in, c_out, k, h, w));
        }
        y
    }
}

/// `torch.nn.GroupNorm` over `[b, c, h, w]`, statistics in f32.
pub struct GroupNorm {
    groups: usize,
    eps: f64,
    gamma: Tensor<4>,
    beta: Tensor<4>,
}

impl GroupNorm {
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        groups: usize,
        channels: usize,
        eps: f64,
    ) -> Result<Self> {
        let gamma = w
            .get_f32(&format!("{prefix}.weight"), [channels])?
            .reshape([1, channels, 1, 1]);
        let beta = w
            .get_f32(&format!("{prefix}.bias"), [channels])?
            .reshape([1, channels, 1, 1]);
        Ok(Self {
            groups,
            eps,
            gamma,
            beta,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.normalize(x, false)
    }

    /// `silu(group_norm(x))`, the pair every resnet and output head runs.
    pub fn forward_silu(&self, x: Tensor<4>) -> Tensor<4> {
        self.normalize(x, true)
    }

    /// The statistics (in f32) and the affine parameters fold into one
    /// per-(image, channel) scale and shift, so the full-size tensor is read
    /// for the statistics and once more for `x·scale + shift` (and the SiLU),
    /// not once per operation of the textbook formula.
    fn normalize(&self, x: Tensor<4>, then_silu: bool) -> Tensor<4> {
        let [b, c, h, wd] = x.dims();
        let g = self.groups;
        let (x, dtype) = to_f32(x);
        let (var, mean) = x.clone().reshape([b, g, (c / g) * h * wd]).var_mean_bias(2);
        // [b, g, 1] -> [b, g, c/g] -> [b, c]
        let rstd = (var + self.eps).sqrt().recip();
        let per_channel = |t: Tensor<3>| t.expand([b, g, c / g]).reshape([b, c]);
        let scale = per_channel(rstd) * self.gamma.clone().reshape([1, c]);
        let shift = self.beta.clone().reshape([1, c]) - per_channel(mean) * scale.clone();
        let y = if cpu_kernels::applies(&x) {
            cpu_kernels::scale_shift(x, scale, shift, then_silu)
        } else {
            let y = x * scale.reshape([b, c, 1, 1]) + shift.reshape([b, c, 1, 1]);
            if then_silu {
                silu(y)
            } else {
                y
            }
        };
        cast_to(y, dtype)
    }
}

/// `torch.nn.LayerNorm` over the last dimension, in f32.
pub struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &mut Weights, prefix: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: w.get_f32(&format!("{prefix}.weight"), [dim])?,
            beta: w.get_f32(&format!("{prefix}.bias"), [dim])?,
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let (x, dtype) = to_f32(x);
        cast_to(
            layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps),
            dtype,
        )
    }
}

/// How [`attention`] computes: fused (no full score matrix in memory: on the
/// CPU backend [`cpu_kernels::attention`], blocks of query rows; on wgpu/CUDA
/// Burn's `module::attention`, CubeCL's flash kernels picked by autotune) or
/// the materialised `[b, heads, s, t]` scores with an f32 softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPath {
    Fused,
    Materialized,
}

/// The attention path in force: [`AttentionPath::Fused`] unless
/// `HYDROGEN_ATTENTION=materialized` (read once). Tests compare the two
/// through [`attention_with`].
pub fn attention_path() -> AttentionPath {
    static PATH: std::sync::OnceLock<AttentionPath> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| match std::env::var("HYDROGEN_ATTENTION").as_deref() {
        Ok("materialized") => AttentionPath::Materialized,
        _ => AttentionPath::Fused,
    })
}

/// Multi-head scaled dot-product attention on `[b, s, heads*d]` inputs;
/// `causal` masks each position from the ones after it (CLIP's text tower).
pub fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    causal: bool,
) -> Tensor<3> {
    attention_with(attention_path(), q, k, v, heads, causal)
}

/// [`attention`] on an explicit path.
pub fn attention_with(
    path: AttentionPath,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    causal: bool,
) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    let t = k.dims()[1];
    let d = inner / heads;
    if profile::active() {
        profile::count(profile::attention_flops(b * heads, s, t, d));
    }
    let split = |x: Tensor<3>, n: usize| x.reshape([b, n, heads, d]).swap_dims(1, 2);
    let (q, k, v) = (split(q, s), split(k, t), split(v, t));
    let out = match path {
        AttentionPath::Fused if cpu_kernels::applies(&q) => cpu_kernels::attention(q, k, v, causal),
        AttentionPath::Fused => module::attention(
            q,
            k,
            v,
            None,
            None,
            AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            },
        ),
        AttentionPath::Materialized => materialized(q, k, v, causal),
    };
    out.swap_dims(1, 2).reshape([b, s, inner])
}

/// softmax(q·kᵀ/√d)·v with the `[b, heads, s, t]` scores in memory and the softmax in f32.
fn materialized(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
    let [_, _, s, d] = q.dims();
    let t = k.dims()[2];
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    let (mut scores, dtype) = to_f32(scores);
    if causal {
        let mask: Vec<f32> = (0..s * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let device = scores.device();
        scores = scores
            + Tensor::<4>::from_data(
                burn::tensor::TensorData::new(mask, [1, 1, s, t]),
                (&device, DType::F32),
            );
    }
    cast_to(softmax_last(scores), dtype).matmul(v)
}
