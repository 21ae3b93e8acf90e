//! `scheduler {method, args}`: which sampler runs the denoising steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{check_range, TaskArgsError};

/// The sampler. Absent means DPM-Solver++ multistep, the reference default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scheduler {
    /// The diffusers class name of the sampler.
    #[serde(default)]
    pub method: SchedulerMethod,
    /// Overrides of the sampler's configuration, applied to the base model's
    /// as diffusers' `Scheduler.from_config(config, **args)` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<SchedulerArgs>,
}

/// Sampler names, as diffusers spells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchedulerMethod {
    /// DPM-Solver++ multistep (the default).
    #[default]
    #[serde(rename = "DPMSolverMultistepScheduler")]
    DpmSolverMultistep,
    /// Euler ancestral.
    #[serde(rename = "EulerAncestralDiscreteScheduler")]
    EulerAncestralDiscrete,
    /// DDIM (Hydrogen's engine; not in the reference).
    #[serde(rename = "DDIMScheduler")]
    Ddim,
    /// Euler (Hydrogen's engine; not in the reference).
    #[serde(rename = "EulerDiscreteScheduler")]
    EulerDiscrete,
    /// Latent consistency (LCM-distilled models and LCM-LoRA).
    #[serde(rename = "LCMScheduler")]
    Lcm,
}

impl SchedulerMethod {
    /// The name as written in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DpmSolverMultistep => "DPMSolverMultistepScheduler",
            Self::EulerAncestralDiscrete => "EulerAncestralDiscreteScheduler",
            Self::Ddim => "DDIMScheduler",
            Self::EulerDiscrete => "EulerDiscreteScheduler",
            Self::Lcm => "LCMScheduler",
        }
    }
}

/// The reference's sampler overrides, every one optional: the common ones,
/// DPM-Solver's and LCM's. A sampler ignores those its diffusers class does
/// not take. Refused by validation: `thresholding`, a learned
/// `variance_type`, third-order `sde-dpmsolver`, sample prediction with Euler
/// ancestral. `clip_samples` and `clip_samples_range` have no effect (no
/// diffusers scheduler takes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SchedulerArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_train_timesteps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_end: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestep_spacing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescale_betas_zero_snr: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver_order: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholding: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_thresholding_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_max_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_order_final: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euler_at_final: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_karras_sigmas: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_lu_lambdas: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_sigmas_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_min_clipped: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_inference_steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_samples: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_samples_range: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_alpha_to_one: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestep_scaling: Option<f64>,
}

/// Most training timesteps a task may set (SD's are 1000): bounds the
/// schedule a node computes.
const MAX_TRAIN_TIMESTEPS: u32 = 10_000;

impl Scheduler {
    /// Checks `args`' values, then refuses those the engine does not run.
    /// `steps` is `task_config.steps`, bounded by LCM's `original_inference_steps`.
    pub(crate) fn check_supported(&self, steps: u32) -> Result<(), TaskArgsError> {
        if let Some(args) = &self.args {
            args.validate()?;
        }
        if self.method == SchedulerMethod::Lcm {
            // diffusers' LCM picks its steps among the `original_inference_steps`
            // it was distilled on (50 unless set).
            let original = self
                .args
                .as_ref()
                .and_then(|a| a.original_inference_steps)
                .unwrap_or(50);
            if steps > original {
                return Err(TaskArgsError::invalid(
                    "task_config.steps",
                    format!(
                        "must be at most original_inference_steps ({original}) with \
                         LCMScheduler, got {steps}"
                    ),
                ));
            }
        }
        let Some(args) = &self.args else {
            return Ok(());
        };
        let path = |name: &str| format!("scheduler.args.{name}");
        let method = self.method;
        let takes_thresholding = matches!(
            method,
            SchedulerMethod::Ddim | SchedulerMethod::DpmSolverMultistep | SchedulerMethod::Lcm
        );
        if takes_thresholding && args.thresholding == Some(true) {
            return Err(TaskArgsError::Unsupported {
                path: path("thresholding"),
                message: "true is not supported yet: dynamic thresholding is not \
                          implemented (false is)"
                    .into(),
            });
        }
        if method == SchedulerMethod::EulerAncestralDiscrete
            && args.prediction_type.as_deref() == Some("sample")
        {
            return Err(TaskArgsError::Unsupported {
                path: path("prediction_type"),
                message: "sample is not supported by EulerAncestralDiscreteScheduler \
                          (epsilon and v_prediction are)"
                    .into(),
            });
        }
        if method == SchedulerMethod::DpmSolverMultistep {
            let algorithm = args.algorithm_type.as_deref().unwrap_or("dpmsolver++");
            if algorithm == "sde-dpmsolver" && args.solver_order == Some(3) {
                return Err(TaskArgsError::Unsupported {
                    path: path("solver_order"),
                    message: "3 is not supported with algorithm_type sde-dpmsolver \
                              (1 and 2 are; diffusers has no third order for it)"
                        .into(),
                });
            }
            // diffusers refuses to end the other solvers on sigma 0.
            let zero_ok = matches!(algorithm, "dpmsolver++" | "sde-dpmsolver++");
            if !zero_ok && args.final_sigmas_type.as_deref() != Some("sigma_min") {
                return Err(TaskArgsError::invalid(
                    path("final_sigmas_type"),
                    format!("must be sigma_min with algorithm_type {algorithm}"),
                ));
            }
            let learned = matches!(
                args.variance_type.as_deref(),
                Some("learned" | "learned_range")
            );
            let epsilon = args.prediction_type.as_deref().unwrap_or("epsilon") == "epsilon";
            if learned && epsilon {
                return Err(TaskArgsError::Unsupported {
                    path: path("variance_type"),
                    message: "a learned variance is not supported (SD's UNets do not \
                              predict one; leave it unset)"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

impl SchedulerArgs {
    /// The set overrides, as `Scheduler.from_config(config, **args)` takes
    /// them: what a node applies to the base model's scheduler config.
    /// `clip_samples` and `clip_samples_range` are left out: no diffusers
    /// scheduler takes them, so they change nothing in the reference either.
    pub fn to_json_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(mut map) =
            serde_json::to_value(self).expect("scheduler args serialize to JSON")
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        map.remove("clip_samples");
        map.remove("clip_samples_range");
        map
    }

    /// Bounds of each set value, as diffusers' schedulers accept them.
    fn validate(&self) -> Result<(), TaskArgsError> {
        let path = |name: &str| format!("scheduler.args.{name}");
        let one_of = |name: &str, value: &Option<String>, allowed: &[&str]| match value {
            Some(v) if !allowed.contains(&v.as_str()) => Err(TaskArgsError::invalid(
                path(name),
                format!("must be one of {}, got {v:?}", allowed.join(", ")),
            )),
            _ => Ok(()),
        };
        let finite = |name: &str, value: Option<f64>| match value {
            Some(v) if !v.is_finite() => Err(TaskArgsError::invalid(
                path(name),
                format!("must be a finite number, got {v}"),
            )),
            _ => Ok(()),
        };
        let train = self.num_train_timesteps.unwrap_or(1000);
        if let Some(t) = self.num_train_timesteps {
            check_range(&path("num_train_timesteps"), t, 2, MAX_TRAIN_TIMESTEPS)?;
        }
        for (name, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if let Some(b) = beta {
                if !(0.0..1.0).contains(&b) {
                    return Err(TaskArgsError::invalid(
                        path(name),
                        format!("must be at least 0 and below 1, got {b}"),
                    ));
                }
            }
        }
        one_of(
            "beta_schedule",
            &self.beta_schedule,
            &["linear", "scaled_linear", "squaredcos_cap_v2"],
        )?;
        one_of(
            "prediction_type",
            &self.prediction_type,
            &["epsilon", "v_prediction", "sample"],
        )?;
        one_of(
            "timestep_spacing",
            &self.timestep_spacing,
            &["linspace", "leading", "trailing"],
        )?;
        if let Some(offset) = self.steps_offset {
            check_range(&path("steps_offset"), offset, 0, train - 1)?;
        }
        if let Some(order) = self.solver_order {
            check_range(&path("solver_order"), order, 1, 3)?;
        }
        one_of(
            "algorithm_type",
            &self.algorithm_type,
            &[
                "dpmsolver++",
                "sde-dpmsolver++",
                "dpmsolver",
                "sde-dpmsolver",
                "deis",
            ],
        )?;
        // diffusers runs the UniPC and DEIS names as midpoint.
        one_of(
            "solver_type",
            &self.solver_type,
            &["midpoint", "heun", "logrho", "bh1", "bh2"],
        )?;
        one_of(
            "final_sigmas_type",
            &self.final_sigmas_type,
            &["zero", "sigma_min"],
        )?;
        if let Some(steps) = self.original_inference_steps {
            check_range(&path("original_inference_steps"), steps, 1, train)?;
        }
        finite(
            "dynamic_thresholding_ratio",
            self.dynamic_thresholding_ratio,
        )?;
        finite("sample_max_value", self.sample_max_value)?;
        finite("lambda_min_clipped", self.lambda_min_clipped)?;
        finite("clip_samples_range", self.clip_samples_range)?;
        if let Some(scaling) = self.timestep_scaling {
            if !(scaling.is_finite() && scaling >= 0.0) {
                return Err(TaskArgsError::invalid(
                    path("timestep_scaling"),
                    format!("must be a finite number at least 0, got {scaling}"),
                ));
            }
        }
        Ok(())
    }
}
