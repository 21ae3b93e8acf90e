//! Layers shared by the text encoder, UNet and VAE, loaded by diffusers key.
//!
//! Normalisation statistics and attention softmax run in f32 even when the
//! model computes in f16: f16 sums over a 64x64x320 activation overflow.

use crate::error::Result;
use crate::weights::Weights;
use burn::tensor::activation::softmax;
use burn::tensor::module::{conv2d, layer_norm, linear};
use burn::tensor::ops::ConvOptions;
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

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
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
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            self.options.clone(),
        )
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
        let [b, c, h, wd] = x.dims();
        let (x, dtype) = to_f32(x);
        let grouped = x.reshape([b, self.groups, (c / self.groups) * h * wd]);
        let (var, mean) = grouped.clone().var_mean_bias(2);
        let normed = (grouped - mean).div((var + self.eps).sqrt());
        let y = normed.reshape([b, c, h, wd]) * self.gamma.clone() + self.beta.clone();
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

/// Multi-head scaled dot-product attention on `[b, s, heads*d]` inputs.
/// `bias`, if given, is added to the f32 scores (the causal mask of CLIP).
pub fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    bias: Option<Tensor<4>>,
) -> Tensor<3> {
    let [b, s, inner] = q.dims();
    let t = k.dims()[1];
    let d = inner / heads;
    let split = |x: Tensor<3>, n: usize| x.reshape([b, n, heads, d]).swap_dims(1, 2);
    let (q, k, v) = (split(q, s), split(k, t), split(v, t));
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    let (mut scores, dtype) = to_f32(scores);
    if let Some(bias) = bias {
        scores = scores + bias;
    }
    let probs = cast_to(softmax(scores, 3), dtype);
    probs.matmul(v).swap_dims(1, 2).reshape([b, s, inner])
}
