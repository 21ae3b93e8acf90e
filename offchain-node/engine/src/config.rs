//! The diffusers `config.json` files this engine reads, with diffusers' own
//! defaults, so a tiny test model and SD 1.5/2.1 go through one code path.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Reads and parses one JSON config file, naming it on failure.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // Python's json module writes `-Infinity` and `NaN` (diffusers' DPM-Solver config
    // has `"lambda_min_clipped": -Infinity`); read them as null, i.e. "not set".
    let non_finite = regex::Regex::new(r"([:\[,]\s*)-?(Infinity|NaN)\b").expect("valid regex");
    let text = non_finite.replace_all(&text, "${1}null");
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// An integer that diffusers lets be one value or one per block.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    pub fn expand(&self, blocks: usize) -> Vec<usize> {
        match self {
            PerBlock::One(v) => vec![*v; blocks],
            PerBlock::Each(v) => v.clone(),
        }
    }
}

/// `unet/config.json` (`UNet2DConditionModel`).
#[derive(Debug, Clone, Deserialize)]
pub struct UNetConfig {
    #[serde(default = "four")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "mid_block")]
    pub mid_block_type: Option<String>,
    pub cross_attention_dim: usize,
    /// diffusers passes this as the number of heads when `num_attention_heads`
    /// is absent (a naming slip kept for checkpoint compatibility).
    #[serde(default = "eight_heads")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "eps_1e5")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "one_per_block")]
    pub transformer_layers_per_block: PerBlock,
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default)]
    pub only_cross_attention: serde_json::Value,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default = "silu")]
    pub act_fn: String,
    #[serde(default = "default_shift")]
    pub resnet_time_scale_shift: String,
    #[serde(default)]
    pub sample_size: Option<usize>,
}

impl UNetConfig {
    /// Refuses the `UNet2DConditionModel` options this engine does not implement,
    /// so an SDXL or inpainting UNet fails at load time rather than computing nonsense.
    pub fn check_supported(&self, path: &Path) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::Config {
                path: path.to_owned(),
                message: format!("unsupported: {what}"),
            })
        };
        if self.class_embed_type.is_some() || self.addition_embed_type.is_some() {
            return bad("class or addition embeddings (SDXL-style conditioning)");
        }
        if matches!(&self.only_cross_attention, serde_json::Value::Bool(true))
            || matches!(&self.only_cross_attention, serde_json::Value::Array(a) if a.iter().any(|v| v == &serde_json::Value::Bool(true)))
        {
            return bad("only_cross_attention");
        }
        if self.act_fn != "silu"
            || self.resnet_time_scale_shift != "default"
            || self.center_input_sample
        {
            return bad(
                "act_fn other than silu, scale-shift time embedding or center_input_sample",
            );
        }
        if self.mid_block_type.as_deref() != Some("UNetMidBlock2DCrossAttn") {
            return bad("mid block other than UNetMidBlock2DCrossAttn");
        }
        let n = self.block_out_channels.len();
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return bad("block type lists of a different length than block_out_channels");
        }
        for t in self.down_block_types.iter().chain(&self.up_block_types) {
            if !matches!(
                t.as_str(),
                "DownBlock2D" | "CrossAttnDownBlock2D" | "UpBlock2D" | "CrossAttnUpBlock2D"
            ) {
                return bad(&format!("block type {t}"));
            }
        }
        Ok(())
    }

    pub fn heads(&self) -> Vec<usize> {
        let n = self.block_out_channels.len();
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .expand(n)
    }
}

/// `vae/config.json` (`AutoencoderKL`).
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
}

/// `text_encoder/config.json` (`CLIPTextModel`).
#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    #[serde(default = "seventy_seven")]
    pub max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "eps_1e5")]
    pub layer_norm_eps: f64,
}

/// `scheduler/scheduler_config.json`: the fields of the diffusers schedulers
/// this engine runs (DDIM, Euler, Euler ancestral, DPM-Solver multistep, LCM).
///
/// A field absent from the file takes the default of the class that runs the
/// sampler, as `Scheduler.from_config` does. Where those classes' defaults
/// differ the field is an `Option`, resolved by the sampler: the beta schedule
/// (LCM's default is SD's `scaled_linear` 0.00085..0.012, the others' `linear`
/// 0.0001..0.02), `clip_sample` (on for DDIM, off for LCM) and `timestep_spacing`
/// (`leading` for DDIM and LCM, `linspace` for the others). A field a class
/// does not take is ignored by that sampler, as diffusers ignores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    #[serde(default = "thousand")]
    pub num_train_timesteps: usize,
    #[serde(default)]
    pub beta_start: Option<f64>,
    #[serde(default)]
    pub beta_end: Option<f64>,
    #[serde(default)]
    pub beta_schedule: Option<String>,
    #[serde(default)]
    pub trained_betas: Option<serde_json::Value>,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    #[serde(default = "epsilon")]
    pub prediction_type: String,
    #[serde(default)]
    pub timestep_spacing: Option<String>,
    #[serde(default)]
    pub steps_offset: usize,
    /// DDIM, LCM.
    #[serde(default = "yes")]
    pub set_alpha_to_one: bool,
    /// DDIM, LCM.
    #[serde(default)]
    pub clip_sample: Option<bool>,
    #[serde(default = "one_f64")]
    pub clip_sample_range: f64,
    /// DDIM, DPM-Solver, LCM (dynamic thresholding is not implemented).
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default = "thresholding_ratio")]
    pub dynamic_thresholding_ratio: f64,
    #[serde(default = "one_f64")]
    pub sample_max_value: f64,
    /// Euler, DPM-Solver.
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Euler, DPM-Solver: the Karras range, when set (else the schedule's own).
    #[serde(default)]
    pub sigma_min: Option<f64>,
    #[serde(default)]
    pub sigma_max: Option<f64>,
    /// Euler, DPM-Solver: `zero` or `sigma_min`.
    #[serde(default = "zero")]
    pub final_sigmas_type: String,
    /// Euler.
    #[serde(default = "linear")]
    pub interpolation_type: String,
    #[serde(default = "discrete")]
    pub timestep_type: String,
    /// DPM-Solver.
    #[serde(default = "two")]
    pub solver_order: usize,
    #[serde(default = "dpmsolver_pp")]
    pub algorithm_type: String,
    #[serde(default = "midpoint")]
    pub solver_type: String,
    #[serde(default = "yes")]
    pub lower_order_final: bool,
    #[serde(default)]
    pub euler_at_final: bool,
    #[serde(default)]
    pub use_lu_lambdas: bool,
    #[serde(default)]
    pub use_flow_sigmas: bool,
    /// `None` is diffusers' `-inf` (Python writes `-Infinity`, read as null).
    #[serde(default)]
    pub lambda_min_clipped: Option<f64>,
    #[serde(default)]
    pub variance_type: Option<String>,
    /// LCM.
    #[serde(default = "fifty")]
    pub original_inference_steps: usize,
    #[serde(default = "ten")]
    pub timestep_scaling: f64,
}

impl SchedulerConfig {
    /// Reads `scheduler_config.json` as `from_config` does: keys that diffusers
    /// recorded under `_use_default_values` were defaults of the class that saved
    /// them, so the chosen sampler's own defaults apply instead (a DDIM config's
    /// `"leading"` spacing does not carry over to DPM-Solver, whose default is `"linspace"`).
    pub fn read(path: &Path) -> Result<Self> {
        let mut value: serde_json::Value = read_json(path)?;
        if let Some(obj) = value.as_object_mut() {
            let defaults: Vec<String> = obj
                .get("_use_default_values")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for key in defaults {
                obj.remove(&key);
            }
        }
        serde_json::from_value(value).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// This configuration with a task's `scheduler.args` applied, as
    /// `Scheduler.from_config(config, **args)` applies keyword arguments. A key
    /// that is not a field here, or whose value has the wrong type, is an
    /// [`Error::Request`] naming it.
    pub fn with_overrides(
        &self,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self> {
        let serde_json::Value::Object(base) =
            serde_json::to_value(self).expect("a scheduler config serializes to JSON")
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        let mut merged = base.clone();
        for (key, value) in args {
            if key.starts_with('_') || !base.contains_key(key) {
                return Err(Error::Request(format!(
                    "scheduler arg `{key}` is not supported"
                )));
            }
            // Each key parsed on its own, so that a wrong type is reported with its name.
            let mut alone = base.clone();
            alone.insert(key.clone(), value.clone());
            serde_json::from_value::<Self>(alone.into())
                .map_err(|e| Error::Request(format!("scheduler arg `{key}`: {e}")))?;
            merged.insert(key.clone(), value.clone());
        }
        serde_json::from_value(merged.into())
            .map_err(|e| Error::Request(format!("scheduler args: {e}")))
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn seventy_seven() -> usize {
    77
}
fn thousand() -> usize {
    1000
}
fn eight_heads() -> PerBlock {
    PerBlock::One(8)
}
fn one_per_block() -> PerBlock {
    PerBlock::One(1)
}
fn eps_1e5() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn sd_scaling() -> f64 {
    0.18215
}
fn linear() -> String {
    "linear".into()
}
fn zero() -> String {
    "zero".into()
}
fn discrete() -> String {
    "discrete".into()
}
fn dpmsolver_pp() -> String {
    "dpmsolver++".into()
}
fn midpoint() -> String {
    "midpoint".into()
}
fn one_f64() -> f64 {
    1.0
}
fn thresholding_ratio() -> f64 {
    0.995
}
fn fifty() -> usize {
    50
}
fn ten() -> f64 {
    10.0
}
fn epsilon() -> String {
    "epsilon".into()
}
fn silu() -> String {
    "silu".into()
}
fn default_shift() -> String {
    "default".into()
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn mid_block() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_non_finite_numbers_and_use_default_values_are_understood() {
        let path = std::env::temp_dir().join(format!("hydrogen-sched-{}.json", std::process::id()));
        let text = r#"{"_class_name": "DDIMScheduler", "lambda_min_clipped": -Infinity, "x": [NaN, 1],
            "timestep_spacing": "leading", "steps_offset": 1, "_use_default_values": ["timestep_spacing"]}"#;
        std::fs::write(&path, text).expect("write");
        let cfg = SchedulerConfig::read(&path).expect("parse");
        std::fs::remove_file(&path).ok();
        assert_eq!(cfg.timestep_spacing, None);
        assert_eq!(cfg.steps_offset, 1);
    }

    #[test]
    fn overrides_apply_and_name_the_key_at_fault() {
        let cfg: SchedulerConfig =
            serde_json::from_str(r#"{"beta_schedule": "scaled_linear", "steps_offset": 1}"#)
                .expect("parse");
        let args = |v: serde_json::Value| v.as_object().expect("object").clone();
        let over = cfg
            .with_overrides(&args(serde_json::json!({
                "timestep_spacing": "trailing", "use_karras_sigmas": true, "solver_order": 3
            })))
            .expect("overrides");
        assert_eq!(over.timestep_spacing.as_deref(), Some("trailing"));
        assert!(over.use_karras_sigmas);
        assert_eq!(over.solver_order, 3);
        assert_eq!(over.steps_offset, 1, "fields not overridden are kept");
        assert_eq!(over.beta_schedule.as_deref(), Some("scaled_linear"));

        let err = cfg
            .with_overrides(&args(serde_json::json!({"eta": 0.5})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`eta`"), "{err}");
        let err = cfg
            .with_overrides(&args(
                serde_json::json!({"steps_offset": 0, "solver_order": "two"}),
            ))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`solver_order`"), "{err}");
        let err = cfg
            .with_overrides(&args(serde_json::json!({"_class_name": "LCMScheduler"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`_class_name`"), "{err}");
    }
}
