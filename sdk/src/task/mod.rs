//! The Stable Diffusion task: the JSON an app uploads for nodes to run, its
//! validation, its canonical bytes and their hash, and its JSON Schema.
//!
//! The format is the reference network's (Crynux's `sd_task` inference
//! arguments), accepted as-is: the 1.x form with `base_model` a model id and
//! the later one with `version`, `base_model {name, variant}` and `scheduler`.
//! Defaults and bounds are the reference's, plus the engine's rule that image
//! sides are multiples of 8. Fields Hydrogen's engine does not run yet
//! (SDXL base models, `controlnet`, `refiner`, `unet`, a `dtype`
//! other than `auto`, the few `scheduler.args` values it does not implement) parse, then fail
//! validation with an error naming them. Fields the format does not have fail
//! parsing with an error naming them.
//!
//! # What is hashed
//!
//! The on-chain `args_hash` is Blake2b-256 of the exact bytes uploaded to the
//! relay, as the reference hashes the args string it uploads. An app built on
//! this SDK uploads [`TaskArgs::to_canonical_json`] and puts
//! [`TaskArgs::args_hash`] on chain; a node hashes the bytes it downloaded
//! with [`args_hash_of`] *before* parsing them and never re-serializes to
//! check, so a task written by other software verifies too.
//!
//! The JSON Schema generated from these types is published with the SDK at
//! `sdk/schema/stable-diffusion-task.schema.json` ([`json_schema`]).

pub mod acceptance;
mod config;
mod error;
mod extensions;
mod model;
mod requirements;
mod scheduler;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use config::{TaskConfig, CFG_RANGE, MAX_NUM_IMAGES, MAX_SEED, MAX_STEPS, SIDE_MULTIPLE};
pub use error::TaskArgsError;
pub use extensions::{ControlNet, Lora, Preprocess, PreprocessMethod, Refiner, Strength};
pub use model::{BaseModel, BaseModelSpec, Dtype, ModelFamily, Version};
pub use requirements::Requirements;
pub use scheduler::{Scheduler, SchedulerArgs, SchedulerMethod};

use crate::types::Hash;
use error::check_non_empty;

/// A Stable Diffusion text-to-image task, in the reference network's format.
///
/// Build one with [`TaskArgs::from_json`] (parse and validate) or
/// [`TaskArgs::new`]; upload [`TaskArgs::to_canonical_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Hydrogen Stable Diffusion task",
    description = "A Stable Diffusion text-to-image task in the reference network's \
                   format. Fields described as not supported yet parse, then are refused."
)]
pub struct TaskArgs {
    /// The format version; absent in the 1.x form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The base model: a Hugging Face id, or `{name, variant}`.
    pub base_model: BaseModel,
    /// Weights precision; only `auto` (the node's choice) is supported yet.
    #[serde(default)]
    pub dtype: Dtype,
    /// A replacement UNet's model id; not supported yet.
    #[serde(default)]
    pub unet: String,
    /// What to draw. Not empty.
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// What not to draw.
    #[serde(default)]
    pub negative_prompt: String,
    /// Image size, steps, seed, number of images, guidance.
    pub task_config: TaskConfig,
    /// A LoRA merged into the base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<Lora>,
    /// A ControlNet; not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlnet: Option<ControlNet>,
    /// The sampler; DPM-Solver++ multistep when absent.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// A replacement VAE (an AutoencoderKL in diffusers layout)'s model id;
    /// empty for the base model's own.
    #[serde(default)]
    pub vae: String,
    /// An SDXL refiner; not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refiner: Option<Refiner>,
    /// A textual-inversion embedding: a Hugging Face model id holding
    /// `learned_embeds.safetensors`, or an `http(s)` URL of a `.safetensors`
    /// file; its token is the one the file names.
    #[serde(default)]
    pub textual_inversion: String,
}

impl TaskArgs {
    /// A text-to-image task with every other field at its default.
    ///
    /// ```
    /// use hydrogen_sdk::task::TaskArgs;
    ///
    /// let args = TaskArgs::new("runwayml/stable-diffusion-v1-5", "a red fox in snow");
    /// assert_eq!(args.num_images(), 6);
    /// assert!(args.validate().is_ok());
    /// ```
    pub fn new(base_model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            version: None,
            base_model: BaseModel::Id(base_model.into()),
            dtype: Dtype::Auto,
            unet: String::new(),
            prompt: prompt.into(),
            negative_prompt: String::new(),
            task_config: TaskConfig::default(),
            lora: None,
            controlnet: None,
            scheduler: Scheduler::default(),
            vae: String::new(),
            refiner: None,
            textual_inversion: String::new(),
        }
    }

    /// Parses a task and validates it ([`TaskArgs::validate`]).
    ///
    /// Errors carry the JSON path of the value at fault.
    ///
    /// ```
    /// use hydrogen_sdk::task::TaskArgs;
    ///
    /// let args = TaskArgs::from_json(r#"{
    ///     "base_model": "runwayml/stable-diffusion-v1-5",
    ///     "prompt": "a red fox in snow",
    ///     "task_config": {"num_images": 2}
    /// }"#).unwrap();
    /// assert_eq!(args.task_config.steps, 25);
    ///
    /// let err = TaskArgs::from_json(r#"{"base_model": "x", "prompt": "y",
    ///     "task_config": {}, "controlnet": {"model": "z",
    ///     "image_dataurl": "data:image/png;base64,AAAA"}}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "`controlnet` is not supported yet");
    /// ```
    pub fn from_json(json: &str) -> Result<Self, TaskArgsError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let args: Self = serde_path_to_error::deserialize(&mut de).map_err(malformed)?;
        de.end().map_err(|e| TaskArgsError::Malformed {
            path: String::new(),
            message: e.to_string(),
        })?;
        args.validate()?;
        Ok(args)
    }

    /// Checks bounds, then refuses what the engine does not run yet. The
    /// error names the first field at fault.
    pub fn validate(&self) -> Result<(), TaskArgsError> {
        self.base_model.validate()?;
        check_non_empty("prompt", &self.prompt)?;
        self.task_config.validate()?;
        let needed = self.min_vram_gb();
        if needed > crate::types::MAX_TASK_VRAM_GB {
            let c = &self.task_config;
            return Err(TaskArgsError::invalid(
                "task_config",
                format!(
                    "a {}x{} image of this model needs about {needed} GB of GPU memory; \
                     no node class has more than {} GB",
                    c.image_width,
                    c.image_height,
                    crate::types::MAX_TASK_VRAM_GB
                ),
            ));
        }
        if let Some(lora) = &self.lora {
            lora.validate()?;
        }
        if let Some(controlnet) = &self.controlnet {
            controlnet.validate()?;
        }
        if let Some(refiner) = &self.refiner {
            refiner.validate()?;
        }
        self.check_supported()
    }

    fn check_supported(&self) -> Result<(), TaskArgsError> {
        if self.dtype != Dtype::Auto {
            return Err(TaskArgsError::unsupported("dtype"));
        }
        if self.base_model.family() == ModelFamily::Sdxl {
            let path = match self.base_model {
                BaseModel::Id(_) => "base_model",
                BaseModel::Spec(_) => "base_model.name",
            };
            return Err(TaskArgsError::Unsupported {
                path: path.into(),
                message: format!(
                    "{} looks like an SDXL model; SDXL is not supported yet",
                    self.base_model.name()
                ),
            });
        }
        let unsupported = [
            ("unet", !self.unet.is_empty()),
            ("controlnet", self.controlnet.is_some()),
            ("refiner", self.refiner.is_some()),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(TaskArgsError::unsupported(*field));
        }
        self.scheduler.check_supported(self.task_config.steps)
    }

    /// The bytes to upload and hash: compact JSON, fields in a fixed order,
    /// every default written out; absent optional sections (`version`,
    /// `lora`, `controlnet`, `refiner`, `scheduler.args`,
    /// `base_model.variant`) left out rather than written as `null`;
    /// `base_model` in the form it was given. Parsing these bytes gives back
    /// an equal `TaskArgs`, and serializing that gives the same bytes.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("task arguments serialize to JSON")
    }

    /// Blake2b-256 of [`TaskArgs::to_canonical_json`]: the `args_hash` an
    /// app puts on chain when it uploads those bytes.
    pub fn args_hash(&self) -> Hash {
        args_hash_of(&self.to_canonical_json())
    }

    /// The images the task produces, hence the pHashes in its result.
    pub fn num_images(&self) -> u32 {
        self.task_config.num_images
    }

    /// GPU memory a node needs for the task, in GB: see [`Requirements`]
    /// (the base model's family by [`ModelFamily::guess`], the image size,
    /// a LoRA); at least 8 for SD 1.x and 2.x, 10 for SDXL.
    pub fn min_vram_gb(&self) -> u32 {
        self.requirements().min_vram_gb()
    }

    /// The memory the task needs of a node, by part.
    pub fn requirements(&self) -> Requirements {
        Requirements::of(self)
    }
}

/// Blake2b-256 of uploaded task bytes, as they are: what a node compares
/// with the on-chain `args_hash` before it parses a download.
pub fn args_hash_of(uploaded: &[u8]) -> Hash {
    crate::types::blake2_256(uploaded)
}

/// The JSON Schema (draft 2020-12) of [`TaskArgs`], generated from the types.
///
/// Bounds the schema cannot say (a `dtype` other than `auto` is refused, a
/// `controlnet` is refused) are in the field descriptions; [`TaskArgs::validate`]
/// is the authority.
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(TaskArgs)
}

/// [`json_schema`] as the pretty-printed text of the published file.
pub fn json_schema_string() -> String {
    let mut text =
        serde_json::to_string_pretty(&json_schema()).expect("a JSON Schema serializes to JSON");
    text.push('\n');
    text
}

fn malformed(err: serde_path_to_error::Error<serde_json::Error>) -> TaskArgsError {
    let path = err.path().to_string();
    TaskArgsError::Malformed {
        path: if path == "." { String::new() } else { path },
        message: err.into_inner().to_string(),
    }
}
