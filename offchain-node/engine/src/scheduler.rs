//! Samplers, configured from `scheduler/scheduler_config.json` (plus a task's
//! overrides, [`SchedulerConfig::with_overrides`]) the way diffusers'
//! `Scheduler.from_config` does: DDIM (eta 0), Euler, Euler ancestral,
//! DPM-Solver multistep (the reference network's default: DPM-Solver++ 2M)
//! and LCM. Each follows its diffusers 0.42.1 class, options included (Karras
//! sigmas, zero terminal SNR, solver order and type, final sigma); an option
//! that is not implemented is an [`Error::Request`] naming it.
//!
//! Coefficients are computed on the host in f64; latents stay on the device.

use crate::config::SchedulerConfig;
use crate::error::{Error, Result};
use burn::tensor::Tensor;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    Ddim,
    Euler,
    EulerAncestral,
    /// The reference network's default.
    #[default]
    DpmSolverMultistep,
    Lcm,
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
            "lcm" | "LCMScheduler" => Method::Lcm,
            other => return Err(Error::Request(format!("unknown scheduler {other}"))),
        })
    }
}

impl Method {
    /// The diffusers class, for error messages.
    fn class(self) -> &'static str {
        match self {
            Method::Ddim => "DDIMScheduler",
            Method::Euler => "EulerDiscreteScheduler",
            Method::EulerAncestral => "EulerAncestralDiscreteScheduler",
            Method::DpmSolverMultistep => "DPMSolverMultistepScheduler",
            Method::Lcm => "LCMScheduler",
        }
    }

    /// The Karras-sigma samplers, which index a sigma schedule rather than `alphas_cumprod`.
    fn uses_sigmas(self) -> bool {
        matches!(
            self,
            Method::Euler | Method::EulerAncestral | Method::DpmSolverMultistep
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prediction {
    Epsilon,
    V,
    Sample,
}

/// DPM-Solver's `algorithm_type`: whether the solver integrates the data
/// prediction (`++`) or the noise prediction, and whether it is the SDE
/// variant (fresh noise every step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    DpmSolverPP,
    DpmSolver,
    SdeDpmSolverPP,
    SdeDpmSolver,
}

impl Algorithm {
    fn data_prediction(self) -> bool {
        matches!(self, Algorithm::DpmSolverPP | Algorithm::SdeDpmSolverPP)
    }
    fn sde(self) -> bool {
        matches!(self, Algorithm::SdeDpmSolverPP | Algorithm::SdeDpmSolver)
    }
}

fn unsupported(arg: &str, value: impl std::fmt::Display, method: Method) -> Error {
    Error::Request(format!(
        "scheduler arg {arg} = {value} is not supported with {}",
        method.class()
    ))
}

/// `alphas_cumprod` of the training noise schedule as `method`'s diffusers class computes it.
pub fn alphas_cumprod(cfg: &SchedulerConfig, method: Method) -> Result<Vec<f64>> {
    if cfg.trained_betas.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::Request("trained_betas is not supported".into()));
    }
    let n = cfg.num_train_timesteps;
    // LCMScheduler's defaults are SD's schedule; the other classes default to DDPM's.
    let lcm = method == Method::Lcm;
    let beta_start = cfg.beta_start.unwrap_or(if lcm { 0.00085 } else { 0.0001 });
    let beta_end = cfg.beta_end.unwrap_or(if lcm { 0.012 } else { 0.02 });
    let schedule =
        cfg.beta_schedule
            .as_deref()
            .unwrap_or(if lcm { "scaled_linear" } else { "linear" });
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
    let mut betas: Vec<f64> = match schedule {
        "linear" => linspace(beta_start, beta_end),
        "scaled_linear" => linspace(beta_start.sqrt(), beta_end.sqrt())
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
        other => return Err(unsupported("beta_schedule", other, method)),
    };
    if cfg.rescale_betas_zero_snr {
        betas = rescale_zero_terminal_snr(&betas);
    }
    let mut prod = 1.0;
    let mut ac: Vec<f64> = betas
        .iter()
        .map(|b| {
            prod *= 1.0 - b;
            prod
        })
        .collect();
    // The sigma-based classes cannot take an infinite sigma at the last timestep:
    // diffusers gives it the smallest positive f32 with 24 bits of precision instead.
    if cfg.rescale_betas_zero_snr && method.uses_sigmas() {
        if let Some(last) = ac.last_mut() {
            *last = 2f64.powi(-24);
        }
    }
    Ok(ac)
}

/// Lin et al., "Common Diffusion Noise Schedules and Sample Steps Are Flawed"
/// (Algorithm 1): shifts and scales `sqrt(alphas_cumprod)` so that the last
/// timestep is pure noise while the first keeps its value, then recovers the betas.
fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut prod = 1.0;
    let sqrt_ac: Vec<f64> = betas
        .iter()
        .map(|b| {
            prod *= 1.0 - b;
            prod.sqrt()
        })
        .collect();
    let (first, last) = (sqrt_ac[0], sqrt_ac[sqrt_ac.len() - 1]);
    let ac: Vec<f64> = sqrt_ac
        .iter()
        .map(|s| ((s - last) * first / (first - last)).powi(2))
        .collect();
    (0..ac.len())
        .map(|i| {
            let alpha = if i == 0 { ac[0] } else { ac[i] / ac[i - 1] };
            1.0 - alpha
        })
        .collect()
}

/// numpy's `linspace(start, stop, n)` (with the endpoint), computed as numpy does.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

/// numpy's `arange(start, 0, -step)`: `ceil(start / step)` points, so a step
/// that does not divide `start` exactly can add one (diffusers' trailing
/// spacing then ends at timestep -1 for some step counts, e.g. 61 of 1000).
fn arange_down(start: f64, step: f64) -> Vec<f64> {
    let n = ((0.0 - start) / -step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * -step).collect()
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

/// The timesteps (descending) of `set_timesteps` for `spacing`, before any
/// sigma-based respacing. DPM-Solver spaces `steps + 1` points up to
/// `last_timestep` and drops the final one (it ends at sigma 0); DDIM and
/// DPM-Solver round to integers, Euler keeps f32 values.
fn spaced_timesteps(
    cfg: &SchedulerConfig,
    method: Method,
    spacing: &str,
    steps: usize,
    last_timestep: usize,
) -> Result<Vec<f64>> {
    let t = cfg.num_train_timesteps;
    let offset = cfg.steps_offset as f64;
    let dpm = method == Method::DpmSolverMultistep;
    let points = if dpm { steps + 1 } else { steps };
    let f32_values = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| x as f32 as f64).collect() };
    let mut ts: Vec<f64> = match spacing {
        "linspace" => {
            let end = if dpm { last_timestep } else { t } as f64 - 1.0;
            let v = linspace(0.0, end, points);
            if method == Method::Ddim || dpm {
                v.into_iter().map(round_half_even).rev().collect()
            } else {
                f32_values(v.into_iter().rev().collect())
            }
        }
        "leading" => {
            let ratio = if dpm { last_timestep } else { t } / points;
            (0..points)
                .rev()
                .map(|i| (i * ratio) as f64 + offset)
                .collect()
        }
        "trailing" => {
            let start = if dpm { last_timestep } else { t } as f64;
            arange_down(start, t as f64 / steps as f64)
                .into_iter()
                .map(|x| round_half_even(x) - 1.0)
                .collect()
        }
        other => return Err(unsupported("timestep_spacing", other, method)),
    };
    // DPM-Solver's leading and linspace point lists end at its final sigma 0.
    if dpm && spacing != "trailing" {
        ts.pop();
    }
    Ok(ts)
}

/// LCMScheduler's `set_timesteps`: `steps` of the `original_inference_steps`
/// evenly spaced training timesteps the model was distilled on, evenly spaced by index.
fn lcm_timesteps(cfg: &SchedulerConfig, steps: usize) -> Result<Vec<f64>> {
    let t = cfg.num_train_timesteps;
    let original = cfg.original_inference_steps;
    if original == 0 || original > t {
        return Err(Error::Request(format!(
            "original_inference_steps must be in 1..={t}, got {original}"
        )));
    }
    if steps > original {
        return Err(Error::Request(format!(
            "LCMScheduler runs at most original_inference_steps ({original}) steps, got {steps}"
        )));
    }
    let k = t / original;
    // The distillation schedule, descending: original*k - 1, ..., k - 1.
    let schedule: Vec<usize> = (1..=original).rev().map(|j| j * k - 1).collect();
    let stride = original as f64 / steps as f64;
    Ok((0..steps)
        .map(|i| schedule[(i as f64 * stride).floor() as usize] as f64)
        .collect())
}

/// Sigmas `sqrt((1 - a) / a)` of the training schedule.
fn training_sigmas(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// `np.interp` of the training sigmas at (possibly fractional) timesteps, clamped at the ends.
fn sigmas_at(sigmas: &[f64], ts: &[f64]) -> Vec<f64> {
    ts.iter()
        .map(|&t| {
            let t = t.clamp(0.0, (sigmas.len() - 1) as f64);
            let lo = t.floor() as usize;
            let hi = (lo + 1).min(sigmas.len() - 1);
            let f = t - lo as f64;
            sigmas[lo] * (1.0 - f) + sigmas[hi] * f
        })
        .collect()
}

/// Karras et al.'s schedule: `steps` sigmas from `max` to `min`, evenly spaced in `sigma^(1/7)`.
fn karras(min: f64, max: f64, steps: usize) -> Vec<f64> {
    let rho = 7.0;
    let (lo, hi) = (min.powf(1.0 / rho), max.powf(1.0 / rho));
    linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|r| (hi + r * (lo - hi)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep of `sigma`,
/// interpolating linearly in log-sigma between the neighbouring timesteps.
fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // The last timestep whose log-sigma is at most `log_sigma` (0 when none is),
    // kept below the end so that it has an upper neighbour.
    let low = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - l >= 0.0)
        .unwrap_or(0)
        .min(log_sigmas.len() - 2);
    let (l0, l1) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((l0 - log_sigma) / (l0 - l1)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// The DPM-Solver options and its history of converted model outputs.
struct Dpm {
    order: usize,
    algorithm: Algorithm,
    heun: bool,
    lower_order_final: bool,
    euler_at_final: bool,
    final_sigma_zero: bool,
    /// The last `order` converted model outputs, oldest first.
    history: Vec<Tensor<4>>,
    /// How many steps have run, up to `order` (diffusers' `lower_order_nums`).
    warmed_up: usize,
}

/// `(alpha_t, sigma_t)` of the variance-preserving process at Karras sigma `s`.
fn alpha_sigma(s: f64) -> (f64, f64) {
    let alpha = 1.0 / (s * s + 1.0).sqrt();
    (alpha, s * alpha)
}

/// `log(alpha_t / sigma_t)`, DPM-Solver's time variable.
fn lambda(s: f64) -> f64 {
    let (alpha, sigma) = alpha_sigma(s);
    alpha.ln() - sigma.ln()
}

/// One sampling run: the timesteps to evaluate the model at and the update rule.
pub struct Scheduler {
    method: Method,
    prediction: Prediction,
    timesteps: Vec<f64>,
    /// One sigma per timestep plus the final one (0, or the schedule's smallest).
    sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    ddim_stride: usize,
    /// DDIM, LCM: the predicted x0 is clamped to ±this.
    clip_range: Option<f64>,
    init_noise_sigma: f64,
    lcm_timestep_scaling: f64,
    dpm: Dpm,
}

impl Scheduler {
    pub fn new(cfg: &SchedulerConfig, method: Method, steps: usize) -> Result<Self> {
        let t = cfg.num_train_timesteps;
        if t < 2 {
            return Err(Error::Request(format!(
                "num_train_timesteps must be at least 2, got {t}"
            )));
        }
        if steps == 0 || steps > t {
            return Err(Error::Request(format!(
                "steps must be in 1..={t}, got {steps}"
            )));
        }
        let prediction = match cfg.prediction_type.as_str() {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            // diffusers' Euler ancestral raises NotImplementedError for sample prediction.
            "sample" if method != Method::EulerAncestral => Prediction::Sample,
            other => return Err(unsupported("prediction_type", other, method)),
        };
        check_unimplemented(cfg, method)?;
        let dpm = dpm_options(cfg, method)?;
        let ac = alphas_cumprod(cfg, method)?;
        let train_sigmas = training_sigmas(&ac);
        let log_sigmas: Vec<f64> = train_sigmas.iter().map(|s| s.ln()).collect();

        let spacing = cfg.timestep_spacing.as_deref().unwrap_or(match method {
            Method::Ddim | Method::Lcm => "leading",
            _ => "linspace",
        });
        // DPM-Solver: `lambda_min_clipped` cuts the noisiest timesteps (those whose
        // log-SNR is below it) off the range the schedule spans.
        let last_timestep = match (method, cfg.lambda_min_clipped) {
            (Method::DpmSolverMultistep, Some(clip)) => {
                t - ac.iter().filter(|&&a| lambda_of_alpha(a) < clip).count()
            }
            _ => t,
        };
        if last_timestep == 0 {
            return Err(Error::Request(format!(
                "scheduler arg lambda_min_clipped = {} leaves no timestep",
                cfg.lambda_min_clipped.unwrap_or_default()
            )));
        }
        let mut ts = match method {
            Method::Lcm => lcm_timesteps(cfg, steps)?,
            _ => spaced_timesteps(cfg, method, spacing, steps, last_timestep)?,
        };
        let karras_range = |sigmas: &[f64]| {
            let min = cfg.sigma_min.unwrap_or(sigmas[sigmas.len() - 1]);
            let max = cfg.sigma_max.unwrap_or(sigmas[0]);
            (min, max)
        };
        // DPM-Solver rounds respaced timesteps to integers, except for the cosine
        // schedule, whose fractional ones the int64 cast truncates.
        let dpm_timestep = |x: f64| {
            if cfg.beta_schedule.as_deref() == Some("squaredcos_cap_v2") {
                x.trunc()
            } else {
                round_half_even(x)
            }
        };
        let mut sigmas = match method {
            Method::DpmSolverMultistep if cfg.use_karras_sigmas => {
                let descending: Vec<f64> = train_sigmas.iter().rev().copied().collect();
                let (min, max) = karras_range(&descending);
                let s = karras(min, max, steps);
                ts = s
                    .iter()
                    .map(|&s| dpm_timestep(sigma_to_t(s, &log_sigmas)))
                    .collect();
                s
            }
            Method::DpmSolverMultistep if cfg.use_lu_lambdas => {
                // Evenly spaced in log-sigma (Lu et al.'s uniform-lambda schedule).
                let (lo, hi) = (log_sigmas[0], log_sigmas[log_sigmas.len() - 1]);
                let s: Vec<f64> = linspace(0.0, 1.0, steps)
                    .into_iter()
                    .map(|r| (hi + r * (lo - hi)).exp())
                    .collect();
                ts = s
                    .iter()
                    .map(|&s| dpm_timestep(sigma_to_t(s, &log_sigmas)))
                    .collect();
                s
            }
            Method::Euler if cfg.use_karras_sigmas => {
                let (min, max) = karras_range(&sigmas_at(&train_sigmas, &ts));
                let s = karras(min, max, steps);
                ts = s
                    .iter()
                    .map(|&s| sigma_to_t(s, &log_sigmas) as f32 as f64)
                    .collect();
                s
            }
            _ => sigmas_at(&train_sigmas, &ts),
        };
        let sigma_min_final = matches!(method, Method::Euler | Method::DpmSolverMultistep)
            && cfg.final_sigmas_type == "sigma_min";
        sigmas.push(if sigma_min_final {
            train_sigmas[0]
        } else {
            0.0
        });

        if method == Method::Ddim {
            // diffusers indexes `alphas_cumprod` with the timestep (Python wraps -1 around).
            if let Some(bad) = ts.iter().find(|&&x| x >= t as f64 || x < -(t as f64)) {
                return Err(Error::Request(format!(
                    "timestep {bad} is outside the {t} training timesteps (steps_offset {})",
                    cfg.steps_offset
                )));
            }
        }
        let max_sigma = sigmas.iter().copied().fold(0.0, f64::max);
        let init_noise_sigma = match method {
            Method::Euler | Method::EulerAncestral if spacing == "leading" => {
                (max_sigma * max_sigma + 1.0).sqrt()
            }
            Method::Euler | Method::EulerAncestral => max_sigma,
            _ => 1.0,
        };
        let clip_sample = match method {
            Method::Ddim => cfg.clip_sample.unwrap_or(true),
            Method::Lcm => cfg.clip_sample.unwrap_or(false),
            _ => false,
        };
        Ok(Self {
            method,
            prediction,
            timesteps: ts,
            sigmas,
            final_alpha_cumprod: if cfg.set_alpha_to_one { 1.0 } else { ac[0] },
            alphas_cumprod: ac,
            ddim_stride: t / steps,
            clip_range: clip_sample.then_some(cfg.clip_sample_range),
            init_noise_sigma,
            lcm_timestep_scaling: cfg.timestep_scaling,
            dpm,
        })
    }

    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Sigmas per timestep plus the final one (as diffusers' `scheduler.sigmas`).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// What initial unit-variance noise is multiplied by.
    pub fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// Whether `step` consumes fresh noise: Euler ancestral, LCM (at every step
    /// but the last, which ignores it) and the SDE variants of DPM-Solver.
    pub fn needs_noise(&self) -> bool {
        match self.method {
            Method::EulerAncestral | Method::Lcm => true,
            Method::DpmSolverMultistep => self.dpm.algorithm.sde(),
            Method::Ddim | Method::Euler => false,
        }
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
            Method::DpmSolverMultistep => self.dpm(i, sample, output, noise),
            Method::Lcm => self.lcm(i, sample, output, noise),
        }
    }

    /// `alphas_cumprod` at a timestep, with Python's wrap-around for -1
    /// (diffusers' trailing spacing can produce it, see [`arange_down`]).
    fn alpha_cumprod_at(&self, t: f64) -> f64 {
        let n = self.alphas_cumprod.len() as i64;
        self.alphas_cumprod[(t as i64).rem_euclid(n) as usize]
    }

    /// `(x0, eps)` from the model output at `alphas_cumprod` value `a`.
    fn x0_and_eps(&self, a: f64, x: Tensor<4>, out: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
        let (x0, eps) = match self.prediction {
            Prediction::Epsilon => ((x.clone() - out.clone().mul_scalar(sb)).div_scalar(sa), out),
            Prediction::V => (
                x.clone().mul_scalar(sa) - out.clone().mul_scalar(sb),
                out.mul_scalar(sa) + x.mul_scalar(sb),
            ),
            Prediction::Sample => (out.clone(), (x - out.mul_scalar(sa)).div_scalar(sb)),
        };
        let x0 = match self.clip_range {
            Some(r) => x0.clamp(-r, r),
            None => x0,
        };
        (x0, eps)
    }

    fn ddim(&self, i: usize, x: Tensor<4>, out: Tensor<4>) -> Tensor<4> {
        let t = self.timesteps[i];
        let a = self.alpha_cumprod_at(t);
        let prev = t - self.ddim_stride as f64;
        let a_prev = if prev >= 0.0 {
            self.alpha_cumprod_at(prev)
        } else {
            self.final_alpha_cumprod
        };
        let (x0, eps) = self.x0_and_eps(a, x, out);
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

    /// LCM's consistency step: the boundary-condition mix of the sample and the
    /// predicted x0, re-noised to the next timestep (except at the last).
    fn lcm(&self, i: usize, x: Tensor<4>, out: Tensor<4>, noise: Option<Tensor<4>>) -> Tensor<4> {
        let t = self.timesteps[i];
        let a = self.alpha_cumprod_at(t);
        let last = i + 1 == self.timesteps.len();
        // Consistency-model scalings with sigma_data 0.5 at the scaled timestep.
        let sigma_data2 = 0.25;
        let scaled = t * self.lcm_timestep_scaling;
        let c_skip = sigma_data2 / (scaled * scaled + sigma_data2);
        let c_out = scaled / (scaled * scaled + sigma_data2).sqrt();
        let (x0, _) = self.x0_and_eps(a, x.clone(), out);
        let denoised = x0.mul_scalar(c_out) + x.mul_scalar(c_skip);
        if last {
            return denoised;
        }
        let a_prev = self.alpha_cumprod_at(self.timesteps[i + 1]);
        let noise = noise.expect("LCM step without noise");
        denoised.mul_scalar(a_prev.sqrt()) + noise.mul_scalar((1.0 - a_prev).sqrt())
    }

    fn dpm(
        &mut self,
        i: usize,
        x: Tensor<4>,
        out: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Tensor<4> {
        let n = self.timesteps.len();
        let d = &self.dpm;
        let last = i + 1 == n;
        // diffusers steps down the order near the end: first order at the last step
        // (always when it lands on sigma 0), second at the one before, for short runs.
        let lower_final =
            last && (d.euler_at_final || (d.lower_order_final && n < 15) || d.final_sigma_zero);
        let lower_second = i + 2 == n && d.lower_order_final && n < 15;
        let order = if d.order == 1 || d.warmed_up < 1 || lower_final {
            1
        } else if d.order == 2 || d.warmed_up < 2 || lower_second {
            2
        } else {
            3
        };

        // The model output as the solver's variable: x0 for the `++` algorithms, noise otherwise.
        let (alpha_s, sigma_s) = alpha_sigma(self.sigmas[i]);
        let m = match (d.algorithm.data_prediction(), self.prediction) {
            (true, Prediction::Epsilon) => {
                (x.clone() - out.mul_scalar(sigma_s)).div_scalar(alpha_s)
            }
            (true, Prediction::V) => x.clone().mul_scalar(alpha_s) - out.mul_scalar(sigma_s),
            (true, Prediction::Sample) | (false, Prediction::Epsilon) => out,
            (false, Prediction::V) => out.mul_scalar(alpha_s) + x.clone().mul_scalar(sigma_s),
            (false, Prediction::Sample) => {
                (x.clone() - out.mul_scalar(alpha_s)).div_scalar(sigma_s)
            }
        };
        let d = &mut self.dpm;
        d.history.push(m);
        if d.history.len() > d.order {
            d.history.remove(0);
        }

        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let lambda_s0 = lambda(self.sigmas[i]);
        let h = lambda(self.sigmas[i + 1]) - lambda_s0;
        let (em, ep) = ((-h).exp(), h.exp());
        // x_next = cx * x + c0 * D0 + c1 * D1 + c2 * D2 + cn * noise, per algorithm.
        let (cx, c0, cn) = match d.algorithm {
            Algorithm::DpmSolverPP => (sigma_t / sigma_s, -alpha_t * (em - 1.0), 0.0),
            Algorithm::DpmSolver => (alpha_t / alpha_s, -sigma_t * (ep - 1.0), 0.0),
            Algorithm::SdeDpmSolverPP => (
                sigma_t / sigma_s * em,
                alpha_t * (1.0 - em * em),
                sigma_t * (1.0 - em * em).sqrt(),
            ),
            Algorithm::SdeDpmSolver => (
                alpha_t / alpha_s,
                -2.0 * sigma_t * (ep - 1.0),
                sigma_t * (ep * ep - 1.0).sqrt(),
            ),
        };
        // D1's coefficient: the midpoint rule (second order only) or the Heun-type one.
        let c1 = match (d.algorithm, d.heun || order == 3) {
            (Algorithm::DpmSolverPP, false) => -0.5 * alpha_t * (em - 1.0),
            (Algorithm::DpmSolverPP, true) => alpha_t * ((em - 1.0) / h + 1.0),
            (Algorithm::DpmSolver, false) => -0.5 * sigma_t * (ep - 1.0),
            (Algorithm::DpmSolver, true) => -sigma_t * ((ep - 1.0) / h - 1.0),
            (Algorithm::SdeDpmSolverPP, false) => 0.5 * alpha_t * (1.0 - em * em),
            (Algorithm::SdeDpmSolverPP, true) => alpha_t * ((1.0 - em * em) / (-2.0 * h) + 1.0),
            (Algorithm::SdeDpmSolver, false) => -sigma_t * (ep - 1.0),
            (Algorithm::SdeDpmSolver, true) => -2.0 * sigma_t * ((ep - 1.0) / h - 1.0),
        };
        let c2 = match d.algorithm {
            Algorithm::DpmSolverPP => -alpha_t * ((em - 1.0 + h) / (h * h) - 0.5),
            Algorithm::DpmSolver => -sigma_t * ((ep - 1.0 - h) / (h * h) - 0.5),
            Algorithm::SdeDpmSolverPP => {
                alpha_t * ((1.0 - em * em - 2.0 * h) / (4.0 * h * h) - 0.5)
            }
            // Refused at construction (diffusers has no third-order SDE-DPM-Solver).
            Algorithm::SdeDpmSolver => 0.0,
        };

        let k = d.history.len();
        let m0 = d.history[k - 1].clone();
        let mut next = x.mul_scalar(cx) + m0.clone().mul_scalar(c0);
        if order >= 2 {
            let m1 = d.history[k - 2].clone();
            let r0 = (lambda_s0 - lambda(self.sigmas[i - 1])) / h;
            let d1_0 = (m0 - m1.clone()).div_scalar(r0);
            if order == 2 {
                next = next + d1_0.mul_scalar(c1);
            } else {
                let m2 = d.history[k - 3].clone();
                let r1 = (lambda(self.sigmas[i - 1]) - lambda(self.sigmas[i - 2])) / h;
                let d1_1 = (m1 - m2).div_scalar(r1);
                let diff = d1_0.clone() - d1_1;
                let d1 = d1_0 + diff.clone().mul_scalar(r0 / (r0 + r1));
                let d2 = diff.div_scalar(r0 + r1);
                next = next + d1.mul_scalar(c1) + d2.mul_scalar(c2);
            }
        }
        if d.algorithm.sde() {
            let noise = noise.expect("SDE-DPM-Solver step without noise");
            next = next + noise.mul_scalar(cn);
        }
        d.warmed_up = (d.warmed_up + 1).min(d.order);
        next
    }
}

/// `log(alpha / sigma)` at `alphas_cumprod` value `a`.
fn lambda_of_alpha(a: f64) -> f64 {
    a.sqrt().ln() - (1.0 - a).sqrt().ln()
}

/// Refuses the options of `method`'s class that are not implemented; options
/// the class does not take are ignored, as `from_config` ignores them.
fn check_unimplemented(cfg: &SchedulerConfig, method: Method) -> Result<()> {
    let bad = |arg: &str, value: &dyn std::fmt::Display| Err(unsupported(arg, value, method));
    let takes_thresholding = matches!(
        method,
        Method::Ddim | Method::DpmSolverMultistep | Method::Lcm
    );
    if takes_thresholding && cfg.thresholding {
        return bad("thresholding", &true);
    }
    if matches!(method, Method::Euler | Method::DpmSolverMultistep) {
        if cfg.use_exponential_sigmas {
            return bad("use_exponential_sigmas", &true);
        }
        if cfg.use_beta_sigmas {
            return bad("use_beta_sigmas", &true);
        }
        if !matches!(cfg.final_sigmas_type.as_str(), "zero" | "sigma_min") {
            return bad("final_sigmas_type", &cfg.final_sigmas_type);
        }
    }
    if method == Method::Euler {
        if cfg.interpolation_type != "linear" {
            return bad("interpolation_type", &cfg.interpolation_type);
        }
        if cfg.timestep_type != "discrete" && cfg.prediction_type == "v_prediction" {
            return bad("timestep_type", &cfg.timestep_type);
        }
    }
    if method == Method::DpmSolverMultistep {
        if cfg.use_flow_sigmas {
            return bad("use_flow_sigmas", &true);
        }
        // A learned variance makes diffusers keep 3 of the UNet's output channels
        // (epsilon prediction); other values are ignored.
        let learned = matches!(
            cfg.variance_type.as_deref(),
            Some("learned" | "learned_range")
        );
        if learned && cfg.prediction_type == "epsilon" {
            return bad("variance_type", &cfg.variance_type.as_deref().unwrap_or(""));
        }
    }
    Ok(())
}

/// DPM-Solver's options, checked (defaults for the other samplers, which ignore them).
fn dpm_options(cfg: &SchedulerConfig, method: Method) -> Result<Dpm> {
    let dpm = method == Method::DpmSolverMultistep;
    let bad = |arg: &str, value: &dyn std::fmt::Display| Err(unsupported(arg, value, method));
    // diffusers maps the DEIS and UniPC names it does not implement onto these.
    let algorithm = match cfg.algorithm_type.as_str() {
        "dpmsolver++" | "deis" => Algorithm::DpmSolverPP,
        "dpmsolver" => Algorithm::DpmSolver,
        "sde-dpmsolver++" => Algorithm::SdeDpmSolverPP,
        "sde-dpmsolver" => Algorithm::SdeDpmSolver,
        _ if !dpm => Algorithm::DpmSolverPP,
        other => return bad("algorithm_type", &other),
    };
    let heun = match cfg.solver_type.as_str() {
        "midpoint" | "logrho" | "bh1" | "bh2" => false,
        "heun" => true,
        _ if !dpm => false,
        other => return bad("solver_type", &other),
    };
    if dpm {
        if !(1..=3).contains(&cfg.solver_order) {
            return bad("solver_order", &cfg.solver_order);
        }
        if algorithm == Algorithm::SdeDpmSolver && cfg.solver_order == 3 {
            return Err(Error::Request(
                "scheduler arg solver_order = 3 is not supported with algorithm_type \
                 sde-dpmsolver (diffusers has no third-order SDE-DPM-Solver)"
                    .into(),
            ));
        }
        // diffusers refuses to end the noise-prediction solvers on sigma 0 (they
        // divide by it), and, checking the name it was given, DEIS too.
        let zero_ok = matches!(
            cfg.algorithm_type.as_str(),
            "dpmsolver++" | "sde-dpmsolver++"
        );
        if !zero_ok && cfg.final_sigmas_type == "zero" {
            return Err(Error::Request(format!(
                "scheduler arg final_sigmas_type = zero is not supported with algorithm_type \
                 {}; use sigma_min",
                cfg.algorithm_type
            )));
        }
    }
    Ok(Dpm {
        order: cfg.solver_order.clamp(1, 3),
        algorithm,
        heun,
        lower_order_final: cfg.lower_order_final,
        euler_at_final: cfg.euler_at_final,
        final_sigma_zero: cfg.final_sigmas_type == "zero",
        history: Vec::new(),
        warmed_up: 0,
    })
}
