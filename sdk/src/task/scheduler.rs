//! `scheduler {method, args}`: which sampler runs the denoising steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::TaskArgsError;

/// The sampler. Absent means DPM-Solver++ multistep, the reference default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scheduler {
    /// The diffusers class name of the sampler.
    #[serde(default)]
    pub method: SchedulerMethod,
    /// Overrides of the sampler's configuration (not supported yet: each
    /// sampler runs with the base model's configuration).
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
    /// Latent consistency (not supported yet).
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
/// DPM-Solver's and LCM's. Parsed so that reference tasks are understood;
/// refused by validation when any is set.
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

impl Scheduler {
    /// Refuses what the engine does not run: `LCMScheduler`, any override.
    pub(crate) fn check_supported(&self) -> Result<(), TaskArgsError> {
        if self.method == SchedulerMethod::Lcm {
            return Err(TaskArgsError::Unsupported {
                path: "scheduler.method".into(),
                message: format!("{} is not supported yet", self.method.as_str()),
            });
        }
        match &self.args {
            Some(args) if *args != SchedulerArgs::default() => {
                Err(TaskArgsError::unsupported("scheduler.args"))
            }
            _ => Ok(()),
        }
    }
}
