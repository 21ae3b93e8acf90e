//! Samplers, configured from `scheduler/scheduler_config.json` the way
//! diffusers' `Scheduler.from_config` does: DDIM (eta 0), Euler, Euler
//! ancestral and DPM-Solver++ 2M (the reference network's default).
//!
//! Coefficients are computed on the host in f64; latents stay on the device.

use crate::config::SchedulerConfig;
use crate::error::{Error, Result};
use burn::tensor::Tensor;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Ddim,
    Euler,
    EulerAncestral,
    DpmSolverMultistep,
}

impl FromStr for Method {
    type Err = Error;
    /// Accepts diffusers' class names as well as short names.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ddim" | "DDIMScheduler" => Method::Ddim,
            "euler" | "EulerDiscreteScheduler" => Method::Euler,
            "euler_a" | "euler-ancestral" | "EulerAncestralDiscreteScheduler" => {
                Method::EulerAncestral
            }
            "dpm++2m" | "dpmpp_2m" | "DPMSolverMultistepScheduler" => Method::DpmSolverMultistep,
            other => return Err(Error::Request(format!("unknown scheduler {other}"))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prediction {
    Epsilon,
    V,
    Sample,
}

/// `alphas_cumprod` of the training noise schedule.
pub fn alphas_cumprod(cfg: &SchedulerConfig) -> Result<Vec<f64>> {
    let n = cfg.num_train_timesteps;
    let linspace = |a: f64, b: f64| -> Vec<f64> {
        (0..n)
            .map(|i| {
                if n == 1 {
                    a
                } else {
                    a + (b - a) * i as f64 / (n - 1) as f64
                }
            })
            .collect()
    };
    let betas: Vec<f64> = match cfg.beta_schedule.as_str() {
        "linear" => linspace(cfg.beta_start, cfg.beta_end),
        "scaled_linear" => linspace(cfg.beta_start.sqrt(), cfg.beta_end.sqrt())
            .into_iter()
            .map(|b| b * b)
            .collect(),
        "squaredcos_cap_v2" => {
            let alpha_bar = |t: f64| {
                ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .powi(2)
            };
            (0..n)
                .map(|i| {
                    let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
                })
                .collect()
        }
        other => {
            return Err(Error::Request(format!(
                "beta_schedule {other} is not supported"
            )))
        }
    };
    if cfg.trained_betas.as_ref().is_some_and(|v| !v.is_null()) || cfg.rescale_betas_zero_snr {
        return Err(Error::Request(
            "trained_betas and rescale_betas_zero_snr are not supported".into(),
        ));
    }
    let mut prod = 1.0;
    Ok(betas
        .iter()
        .map(|b| {
            prod *= 1.0 - b;
            prod
        })
        .collect())
}

/// The inference timesteps (descending) for `method` and `steps`, as diffusers' `set_timesteps`.
pub fn timesteps(cfg: &SchedulerConfig, method: Method, steps: usize) -> Result<Vec<f64>> {
    let t = cfg.num_train_timesteps;
    let default_spacing = match method {
        Method::Ddim => "leading",
        _ => "linspace",
    };
    let spacing = cfg.timestep_spacing.as_deref().unwrap_or(default_spacing);
    if steps == 0 || steps > t {
        return Err(Error::Request(format!(
            "steps must be in 1..={t}, got {steps}"
        )));
    }
    let offset = cfg.steps_offset as f64;
    // DPM-Solver spaces steps+1 points and drops the last (it ends at sigma 0).
    let dpm = method == Method::DpmSolverMultistep;
    let ts: Vec<f64> = match spacing {
        "linspace" => {
            let points = if dpm { steps + 1 } else { steps };
            let lin = |i: usize| {
                if points == 1 {
                    0.0
                } else {
                    (t - 1) as f64 * i as f64 / (points - 1) as f64
                }
            };
            let round = method != Method::Euler && method != Method::EulerAncestral;
            let mut v: Vec<f64> = (0..points)
                .map(|i| {
                    if round {
                        round_half_even(lin(i))
                    } else {
                        lin(i)
                    }
                })
                .collect();
            v.reverse();
            if dpm {
                v.pop();
            }
            v
        }
        "leading" => {
            let points = if dpm { steps + 1 } else { steps };
            let ratio = t / points;
            let mut v: Vec<f64> = (0..points).map(|i| (i * ratio) as f64 + offset).collect();
            v.reverse();
            if dpm {
                v.pop();
            }
            v
        }
        "trailing" => {
            let ratio = t as f64 / steps as f64;
            (0..steps)
                .map(|i| round_half_even(t as f64 - i as f64 * ratio) - 1.0)
                .collect()
        }
        other => {
            return Err(Error::Request(format!(
                "timestep_spacing {other} is not supported"
            )))
        }
    };
    Ok(ts)
}

/// numpy's `round` (half to even), which diffusers uses for timesteps.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// Karras-style sigmas `sqrt((1 - a) / a)` at (possibly fractional) timesteps, by linear interpolation.
fn sigmas_at(alphas_cumprod: &[f64], ts: &[f64]) -> Vec<f64> {
    let s: Vec<f64> = alphas_cumprod
        .iter()
        .map(|a| ((1.0 - a) / a).sqrt())
        .collect();
    ts.iter()
        .map(|&t| {
            let t = t.clamp(0.0, (s.len() - 1) as f64);
            let lo = t.floor() as usize;
            let hi = (lo + 1).min(s.len() - 1);
            let f = t - lo as f64;
            s[lo] * (1.0 - f) + s[hi] * f
        })
        .collect()
}

/// One sampling run: the timesteps to evaluate the model at and the update rule.
pub struct Scheduler {
    method: Method,
    prediction: Prediction,
    timesteps: Vec<f64>,
    /// Euler/DPM: one sigma per timestep plus a final 0.
    sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    ddim_stride: usize,
    clip_sample: bool,
    init_noise_sigma: f64,
    /// DPM-Solver++: the previous step's predicted x0.
    previous_x0: Option<Tensor<4>>,
}

impl Scheduler {
    pub fn new(cfg: &SchedulerConfig, method: Method, steps: usize) -> Result<Self> {
        if cfg.use_karras_sigmas {
            return Err(Error::Request("use_karras_sigmas is not supported".into()));
        }
        let prediction = match cfg.prediction_type.as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            "sample" => Prediction::Sample,
            other => {
                return Err(Error::Request(format!(
                    "prediction_type {other} is not supported"
                )))
            }
        };
        let ac = alphas_cumprod(cfg)?;
        let ts = timesteps(cfg, method, steps)?;
        let mut sigmas = sigmas_at(&ac, &ts);
        sigmas.push(0.0);
        let max_sigma = sigmas.iter().copied().fold(0.0, f64::max);
        let spacing = cfg
            .timestep_spacing
            .as_deref()
            .unwrap_or(if method == Method::Ddim {
                "leading"
            } else {
                "linspace"
            });
        let init_noise_sigma = match method {
            Method::Euler | Method::EulerAncestral if spacing == "leading" => {
                (max_sigma * max_sigma + 1.0).sqrt()
            }
            Method::Euler | Method::EulerAncestral => max_sigma,
            _ => 1.0,
        };
        Ok(Self {
            method,
            prediction,
            timesteps: ts,
            sigmas,
            final_alpha_cumprod: if cfg.set_alpha_to_one { 1.0 } else { ac[0] },
            alphas_cumprod: ac,
            ddim_stride: cfg.num_train_timesteps / steps,
            clip_sample: cfg.clip_sample,
            init_noise_sigma,
            previous_x0: None,
        })
    }

    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Sigmas per timestep plus the final 0 (as diffusers' `scheduler.sigmas`).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// What initial unit-variance noise is multiplied by.
    pub fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// Whether `step` consumes fresh noise (ancestral samplers).
    pub fn needs_noise(&self) -> bool {
        self.method == Method::EulerAncestral
    }

    /// The factor the UNet input is scaled by at step `i`.
    pub fn input_scale(&self, i: usize) -> f64 {
        match self.method {
            Method::Euler | Method::EulerAncestral => 1.0 / (self.sigmas[i].powi(2) + 1.0).sqrt(),
            _ => 1.0,
        }
    }

    /// Advances `sample` from step `i` to `i + 1` given the model output there.
    /// `noise` (unit normal, the sample's shape) is required when [`Self::needs_noise`].
    pub fn step(
        &mut self,
        i: usize,
        sample: Tensor<4>,
        output: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        match self.method {
            Method::Ddim => self.ddim(i, sample, output),
            Method::Euler | Method::EulerAncestral => self.euler(i, sample, output, noise),
            Method::DpmSolverMultistep => self.dpm(i, sample, output),
        }
    }

    fn ddim(&self, i: usize, x: Tensor<4>, out: Tensor<4>) -> Tensor<4> {
        let t = self.timesteps[i] as usize;
        let a = self.alphas_cumprod[t];
        let prev = t as i64 - self.ddim_stride as i64;
        let a_prev = if prev >= 0 {
            self.alphas_cumprod[prev as usize]
        } else {
            self.final_alpha_cumprod
        };
        let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
        let (x0, eps) = match self.prediction {
            Prediction::Epsilon => ((x.clone() - out.clone().mul_scalar(sb)).div_scalar(sa), out),
            Prediction::V => (
                x.clone().mul_scalar(sa) - out.clone().mul_scalar(sb),
                out.mul_scalar(sa) + x.mul_scalar(sb),
            ),
            Prediction::Sample => (out.clone(), (x - out.mul_scalar(sa)).div_scalar(sb)),
        };
        let x0 = if self.clip_sample {
            x0.clamp(-1.0, 1.0)
        } else {
            x0
        };
        x0.mul_scalar(a_prev.sqrt()) + eps.mul_scalar((1.0 - a_prev).sqrt())
    }

    fn euler(&self, i: usize, x: Tensor<4>, out: Tensor<4>, noise: Option<Tensor<4>>) -> Tensor<4> {
        let (s, s_next) = (self.sigmas[i], self.sigmas[i + 1]);
        let x0 = match self.prediction {
            Prediction::Epsilon => x.clone() - out.mul_scalar(s),
            Prediction::V => {
                out.mul_scalar(-s / (s * s + 1.0).sqrt()) + x.clone().div_scalar(s * s + 1.0)
            }
            Prediction::Sample => out,
        };
        let d = (x.clone() - x0).div_scalar(s);
        if self.method == Method::Euler {
            return x + d.mul_scalar(s_next - s);
        }
        let up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
        let down = (s_next * s_next - up * up).sqrt();
        let x = x + d.mul_scalar(down - s);
        match noise {
            Some(n) => x + n.mul_scalar(up),
            None => panic!("Euler ancestral step without noise"),
        }
    }

    fn dpm(&mut self, i: usize, x: Tensor<4>, out: Tensor<4>) -> Tensor<4> {
        // (alpha_t, sigma_t, lambda_t) of the VP process at Karras sigma `s`.
        let vp = |s: f64| {
            let alpha = 1.0 / (s * s + 1.0).sqrt();
            let sigma = s * alpha;
            (alpha, sigma, alpha.ln() - sigma.ln())
        };
        let (alpha_s, sigma_s, lambda_s) = vp(self.sigmas[i]);
        let (alpha_t, sigma_t, lambda_t) = vp(self.sigmas[i + 1]);
        let x0 = match self.prediction {
            Prediction::Epsilon => (x.clone() - out.mul_scalar(sigma_s)).div_scalar(alpha_s),
            Prediction::V => x.clone().mul_scalar(alpha_s) - out.mul_scalar(sigma_s),
            Prediction::Sample => out,
        };
        let h = lambda_t - lambda_s;
        let phi = (-h).exp() - 1.0;
        let last = i + 1 == self.timesteps.len();
        let next = match (&self.previous_x0, last) {
            (Some(prev), false) => {
                let (_, _, lambda_prev) = vp(self.sigmas[i - 1]);
                let r0 = (lambda_s - lambda_prev) / h;
                let d1 = (x0.clone() - prev.clone()).div_scalar(r0);
                x.mul_scalar(sigma_t / sigma_s)
                    - x0.clone().mul_scalar(alpha_t * phi)
                    - d1.mul_scalar(0.5 * alpha_t * phi)
            }
            // First order: the first step (no history) and the last (it lands on sigma 0).
            _ => x.mul_scalar(sigma_t / sigma_s) - x0.clone().mul_scalar(alpha_t * phi),
        };
        self.previous_x0 = Some(x0);
        next
    }
}
