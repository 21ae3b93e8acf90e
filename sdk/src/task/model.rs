//! Which model runs: the format `version`, `base_model` in its two forms,
//! `dtype`, and the model family that sets the VRAM a node needs.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{check_non_empty, TaskArgsError};

/// The reference format's version string. Absent means the 1.x form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Version {
    /// The first format: `base_model` a model id, no `scheduler`.
    #[serde(rename = "1.0.0")]
    V1_0_0,
    /// Adds `base_model {name, variant}` and `scheduler`.
    #[serde(rename = "2.0.0")]
    V2_0_0,
    /// Adds `lora.weight_file_name`.
    #[serde(rename = "2.1.0")]
    V2_1_0,
    /// Adds `dtype`, `unet`, `refiner.variant`.
    #[serde(rename = "2.5.0")]
    V2_5_0,
    /// The latest reference release.
    #[serde(rename = "3.0.0")]
    V3_0_0,
}

/// The base model: a Hugging Face model id (`"runwayml/stable-diffusion-v1-5"`,
/// the 1.x form) or `{name, variant}` (the later form).
///
/// Both forms are kept as written, so canonical JSON round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BaseModel {
    /// A Hugging Face model id.
    Id(#[schemars(length(min = 1))] String),
    /// A model id and a weights variant.
    Spec(BaseModelSpec),
}

/// `base_model` in the later form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseModelSpec {
    /// A Hugging Face model id.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The weights variant (`"fp16"`), if not the repository's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

// By hand rather than `#[serde(untagged)]`, whose one error ("did not match
// any variant") would hide which field of `{name, variant}` was wrong.
impl<'de> Deserialize<'de> for BaseModel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BaseModelVisitor;

        impl<'de> Visitor<'de> for BaseModelVisitor {
            type Value = BaseModel;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a model id or {\"name\", \"variant\"}")
            }

            fn visit_str<E: de::Error>(self, id: &str) -> Result<BaseModel, E> {
                Ok(BaseModel::Id(id.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BaseModel, A::Error> {
                BaseModelSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(BaseModel::Spec)
            }
        }

        deserializer.deserialize_any(BaseModelVisitor)
    }
}

impl BaseModel {
    /// The model id, whichever the form.
    pub fn name(&self) -> &str {
        match self {
            Self::Id(name) => name,
            Self::Spec(spec) => &spec.name,
        }
    }

    /// The weights variant, if any.
    pub fn variant(&self) -> Option<&str> {
        match self {
            Self::Id(_) => None,
            Self::Spec(spec) => spec.variant.as_deref(),
        }
    }

    /// The family the model id suggests; see [`ModelFamily::guess`].
    pub fn family(&self) -> ModelFamily {
        ModelFamily::guess(self.name())
    }

    pub(crate) fn validate(&self) -> Result<(), TaskArgsError> {
        match self {
            Self::Id(name) => check_non_empty("base_model", name),
            Self::Spec(spec) => check_non_empty("base_model.name", &spec.name),
        }
    }
}

impl From<&str> for BaseModel {
    fn from(id: &str) -> Self {
        Self::Id(id.to_owned())
    }
}

/// Stable Diffusion generations, which differ in the VRAM a node needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// SD 1.x (512 × 512 native) and its fine-tunes.
    Sd1,
    /// SD 2.x (768 × 768 native).
    Sd2,
    /// SDXL (1024 × 1024 native, two text encoders).
    Sdxl,
}

impl ModelFamily {
    /// A heuristic on the model id, case-insensitive: `xl` anywhere is SDXL
    /// (`stabilityai/stable-diffusion-xl-base-1.0`, `stabilityai/sdxl-turbo`);
    /// `stable-diffusion-2` or `sd2` is SD 2.x; anything else SD 1.x. The id
    /// says nothing certain about the architecture: a node still checks the
    /// weights it loads.
    pub fn guess(model_id: &str) -> Self {
        let id = model_id.to_ascii_lowercase();
        if id.contains("xl") {
            Self::Sdxl
        } else if id.contains("stable-diffusion-2") || id.contains("sd2") || id.contains("sd-2") {
            Self::Sd2
        } else {
            Self::Sd1
        }
    }

    /// GPU memory a node needs for this family, in GB: 8 for SD 1.x and 2.x,
    /// 10 for SDXL, the reference bridge's defaults.
    pub fn min_vram_gb(self) -> u32 {
        match self {
            Self::Sd1 | Self::Sd2 => 8,
            Self::Sdxl => 10,
        }
    }
}

/// The weights' precision the reference lets a task pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Half precision.
    Float16,
    /// Brain float.
    Bfloat16,
    /// Single precision.
    Float32,
    /// The node's choice (the only value Hydrogen runs yet).
    #[default]
    Auto,
}
