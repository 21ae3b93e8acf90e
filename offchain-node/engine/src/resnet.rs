//! `ResnetBlock2D`, shared by the UNet (with a time embedding) and the VAE (without).

use crate::error::Result;
use crate::nn::{Conv2d, GroupNorm, Linear};
use crate::weights::Weights;
use burn::tensor::Tensor;

pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    /// `temb` is the time-embedding width, `None` for VAE blocks.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        temb: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::load(w, &format!("{prefix}.norm1"), groups, c_in, eps)?,
            conv1: Conv2d::load(w, &format!("{prefix}.conv1"), c_in, c_out, 3, 1)?,
            time_emb_proj: match temb {
                Some(t) => Some(Linear::load(
                    w,
                    &format!("{prefix}.time_emb_proj"),
                    t,
                    c_out,
                    true,
                )?),
                None => None,
            },
            norm2: GroupNorm::load(w, &format!("{prefix}.norm2"), groups, c_out, eps)?,
            conv2: Conv2d::load(w, &format!("{prefix}.conv2"), c_out, c_out, 3, 1)?,
            conv_shortcut: if c_in != c_out {
                Some(Conv2d::load(
                    w,
                    &format!("{prefix}.conv_shortcut"),
                    c_in,
                    c_out,
                    1,
                    1,
                )?)
            } else {
                None
            },
        })
    }

    /// `temb` is the already-activated time embedding `silu(emb)`, `[b, temb]`.
    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let h = self.conv1.forward(self.norm1.forward_silu(x.clone()));
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => {
                let t = proj.forward(t.clone());
                let [b, c] = t.dims();
                h + t.reshape([b, c, 1, 1])
            }
            _ => h,
        };
        let h = self.conv2.forward(self.norm2.forward_silu(h));
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }
}
