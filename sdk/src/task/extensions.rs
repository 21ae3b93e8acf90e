//! The reference network's pipeline extensions: `lora`, which the engine
//! runs, and `controlnet` and `refiner`, parsed and bounds-checked so
//! reference tasks are understood, then refused by validation until it runs
//! them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{check_non_empty, check_percent, check_range, TaskArgsError};

/// A LoRA merged into the base model's UNet and text encoder.
///
/// Its update is `W += s · (alpha / rank) · up · down` with `s` the
/// [`Lora::weight`] as a fraction. The reference network hands its weight
/// to a diffusers argument that ignores it, so there every LoRA runs at full
/// strength; Hydrogen applies the weight, as the field promises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lora {
    /// A Hugging Face model id, or an `http(s)` URL of a `.safetensors` file
    /// (Civitai's `https://civitai.com/api/download/models/<id>`).
    #[schemars(length(min = 1))]
    pub model: String,
    /// The weights file inside a Hugging Face repository; empty means
    /// diffusers' `pytorch_lora_weights.safetensors`.
    #[serde(default)]
    pub weight_file_name: String,
    /// Strength, above 0 and at most 100: a percent above 1 (`80` is 0.8),
    /// a fraction at or below 1 (`0.8`).
    #[serde(default = "default_lora_weight")]
    pub weight: Strength,
}

/// A strength in the reference format (its `FloatFractionAsInt`): a number
/// above 0 and at most 100; above 1 it is a percent (`70` and `70.0` are
/// 0.7), at or below 1 a fraction (`0.7`; `1` is full strength, as in the
/// reference). Kept as written, integer or not, so the canonical JSON of a
/// task does not change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Strength {
    /// Written as an integer.
    Integer(#[schemars(range(min = 1, max = 100))] u32),
    /// Written with a decimal point or an exponent.
    Decimal(#[schemars(range(min = 0.0, max = 100.0))] f64),
}

impl Strength {
    /// The strength as a fraction, by the reference's rule.
    pub fn fraction(self) -> f64 {
        let value = match self {
            Self::Integer(v) => f64::from(v),
            Self::Decimal(v) => v,
        };
        if value > 1.0 {
            value / 100.0
        } else {
            value
        }
    }

    fn validate(self, path: &str) -> Result<(), TaskArgsError> {
        match self {
            Self::Integer(v) => check_range(path, v, 1, 100),
            Self::Decimal(v) if v > 0.0 && v <= 100.0 => Ok(()),
            Self::Decimal(v) => Err(TaskArgsError::invalid(
                path,
                format!("must be above 0 and at most 100, got {v}"),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Strength {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(deserializer)?;
        if let Some(v) = n.as_u64() {
            Ok(Self::Integer(u32::try_from(v).unwrap_or(u32::MAX)))
        } else if n.is_i64() {
            Err(serde::de::Error::custom(format!(
                "must be above 0 and at most 100, got {n}"
            )))
        } else {
            Ok(Self::Decimal(n.as_f64().expect("a JSON number is an f64")))
        }
    }
}

impl From<u32> for Strength {
    fn from(value: u32) -> Self {
        Self::Integer(value)
    }
}

/// A ControlNet conditioned on an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlNet {
    /// A Hugging Face model id.
    #[schemars(length(min = 1))]
    pub model: String,
    /// The conditioning image, `data:image/...;base64,...`.
    #[schemars(length(min = 1))]
    pub image_dataurl: String,
    /// Strength in percent, 1 to 100.
    #[serde(default = "default_controlnet_weight")]
    #[schemars(range(min = 1, max = 100))]
    pub weight: u32,
    /// How to turn the image into the control signal; absent means the
    /// image is the control signal already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
}

/// A ControlNet preprocessor and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The preprocessor.
    pub method: PreprocessMethod,
    /// Its arguments (`canny`: `low_threshold`, `high_threshold`; ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The reference's ControlNet preprocessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub enum PreprocessMethod {
    #[serde(rename = "canny")]
    Canny,
    #[serde(rename = "scribble_hed")]
    ScribbleHed,
    #[serde(rename = "softedge_hed")]
    SoftedgeHed,
    #[serde(rename = "scribble_hedsafe")]
    ScribbleHedSafe,
    #[serde(rename = "softedge_hedsafe")]
    SoftedgeHedSafe,
    #[serde(rename = "depth_midas")]
    DepthMidas,
    #[serde(rename = "mlsd")]
    Mlsd,
    #[serde(rename = "openpose")]
    Openpose,
    #[serde(rename = "openpose_face")]
    OpenposeFace,
    #[serde(rename = "openpose_faceonly")]
    OpenposeFaceOnly,
    #[serde(rename = "openpose_full")]
    OpenposeFull,
    #[serde(rename = "openpose_hand")]
    OpenposeHand,
    #[serde(rename = "dwpose")]
    Dwpose,
    #[serde(rename = "scribble_pidinet")]
    ScribblePidinet,
    #[serde(rename = "softedge_pidinet")]
    SoftedgePidinet,
    #[serde(rename = "scribble_pidisafe")]
    ScribblePidiSafe,
    #[serde(rename = "softedge_pidisafe")]
    SoftedgePidiSafe,
    #[serde(rename = "normal_bae")]
    NormalBae,
    #[serde(rename = "lineart_coarse")]
    LineartCoarse,
    #[serde(rename = "lineart_realistic")]
    LineartRealistic,
    #[serde(rename = "lineart_anime")]
    LineartAnime,
    #[serde(rename = "depth_zoe")]
    DepthZoe,
    #[serde(rename = "depth_leres")]
    DepthLeres,
    #[serde(rename = "depth_leres++")]
    DepthLeresPlusPlus,
    #[serde(rename = "shuffle")]
    Shuffle,
    #[serde(rename = "mediapipe_face")]
    MediapipeFace,
}

/// An SDXL refiner that finishes the base model's latents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refiner {
    /// A Hugging Face model id.
    #[schemars(length(min = 1))]
    pub model: String,
    /// The weights variant, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Percent of the denoising the base model does before the refiner
    /// takes over, 1 to 100.
    #[serde(default = "default_denoising_cutoff")]
    #[schemars(range(min = 1, max = 100))]
    pub denoising_cutoff: u32,
    /// The refiner's steps, 1 to 100.
    #[serde(default = "default_refiner_steps")]
    #[schemars(range(min = 1, max = 100))]
    pub steps: u32,
}

fn default_lora_weight() -> Strength {
    Strength::Integer(100)
}
fn default_controlnet_weight() -> u32 {
    70
}
fn default_denoising_cutoff() -> u32 {
    80
}
fn default_refiner_steps() -> u32 {
    20
}

impl Lora {
    pub(crate) fn validate(&self) -> Result<(), TaskArgsError> {
        check_non_empty("lora.model", &self.model)?;
        self.weight.validate("lora.weight")
    }
}

impl ControlNet {
    pub(crate) fn validate(&self) -> Result<(), TaskArgsError> {
        check_non_empty("controlnet.model", &self.model)?;
        let url = &self.image_dataurl;
        if !(url.starts_with("data:image/") && url.contains(";base64,")) {
            return Err(TaskArgsError::invalid(
                "controlnet.image_dataurl",
                "must be a data URL, data:image/<type>;base64,<data>",
            ));
        }
        check_percent("controlnet.weight", self.weight)
    }
}

impl Refiner {
    pub(crate) fn validate(&self) -> Result<(), TaskArgsError> {
        check_non_empty("refiner.model", &self.model)?;
        check_percent("refiner.denoising_cutoff", self.denoising_cutoff)?;
        check_range("refiner.steps", self.steps, 1, 100)
    }
}
