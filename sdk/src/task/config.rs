//! `task_config`: image size, steps, seed, image count, guidance; the
//! reference network's defaults and bounds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{check_range, TaskArgsError};

/// Largest seed: the reference network seeds torch with a 31-bit integer.
pub const MAX_SEED: u64 = (1 << 31) - 1;
/// Most images one task may ask for.
pub const MAX_NUM_IMAGES: u32 = 10;
/// Most denoising steps.
pub const MAX_STEPS: u32 = 100;
/// Image sides are multiples of this (the VAE downsamples by 8).
pub const SIDE_MULTIPLE: u32 = 8;
/// Bounds of the classifier-free guidance scale, the later reference
/// format's. At or below 1 the unconditional pass is skipped (SD-Turbo runs
/// at 0, LCM-LoRA near 1).
pub const CFG_RANGE: (f64, f64) = (0.0, 20.0);

/// How to sample: image size, steps, seed, number of images, guidance.
///
/// Every field has the reference network's default, so `{}` is a valid
/// `task_config` (512 × 512, 25 steps, seed 0, 6 images, cfg 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Image width in pixels, a positive multiple of 8.
    #[serde(default = "default_side")]
    #[schemars(range(min = 8), extend("multipleOf" = 8))]
    pub image_width: u32,
    /// Image height in pixels, a positive multiple of 8.
    #[serde(default = "default_side")]
    #[schemars(range(min = 8), extend("multipleOf" = 8))]
    pub image_height: u32,
    /// Denoising steps, 1 to 100.
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1, max = 100))]
    pub steps: u32,
    /// Seed of the initial noise, 0 to 2^31 − 1.
    #[serde(default)]
    #[schemars(range(min = 0, max = 2_147_483_647))]
    pub seed: u64,
    /// Images per task, 1 to 10. Each is hashed and compared separately.
    #[serde(default = "default_num_images")]
    #[schemars(range(min = 1, max = 10))]
    pub num_images: u32,
    /// Run the NSFW safety checker on the images.
    #[serde(default = "default_true")]
    pub safety_checker: bool,
    /// Classifier-free guidance scale, 1 to 20.
    #[serde(default = "default_cfg")]
    #[schemars(range(min = 1, max = 20))]
    pub cfg: f64,
}

fn default_side() -> u32 {
    512
}
fn default_steps() -> u32 {
    25
}
fn default_num_images() -> u32 {
    6
}
fn default_true() -> bool {
    true
}
fn default_cfg() -> f64 {
    5.0
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            image_width: default_side(),
            image_height: default_side(),
            steps: default_steps(),
            seed: 0,
            num_images: default_num_images(),
            safety_checker: true,
            cfg: default_cfg(),
        }
    }
}

impl TaskConfig {
    /// Checks every bound; the error names the first field out of bounds.
    pub fn validate(&self) -> Result<(), TaskArgsError> {
        check_side("task_config.image_width", self.image_width)?;
        check_side("task_config.image_height", self.image_height)?;
        check_range("task_config.steps", self.steps, 1, MAX_STEPS)?;
        check_range("task_config.seed", self.seed, 0, MAX_SEED)?;
        check_range("task_config.num_images", self.num_images, 1, MAX_NUM_IMAGES)?;
        check_range("task_config.cfg", self.cfg, CFG_RANGE.0, CFG_RANGE.1)
    }
}

fn check_side(path: &str, side: u32) -> Result<(), TaskArgsError> {
    if side == 0 || !side.is_multiple_of(SIDE_MULTIPLE) {
        Err(TaskArgsError::invalid(
            path,
            format!("must be a positive multiple of {SIDE_MULTIPLE}, got {side}"),
        ))
    } else {
        Ok(())
    }
}
