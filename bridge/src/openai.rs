//! `POST /v1/images/generations`, OpenAI's images API: its request and
//! answer, and the [`TaskArgs`] a request stands for.
//!
//! OpenAI's fields: `prompt`, `n`, `size` (`"WxH"`), `response_format`
//! (`url` or `b64_json`), `model`; `quality`, `style` and `user` are
//! accepted and ignored. Hydrogen's extensions: `negative_prompt`, `seed`,
//! `steps`, `guidance` (the task's `cfg`), `base_model`, `fee`. A `model`
//! that looks like a Hugging Face id (`org/name`) is the base model; any
//! other (`dall-e-3`) means the bridge's default model.

use hydrogen_sdk::task::{TaskArgs, TaskArgsError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An image generation request, OpenAI's format plus Hydrogen's extensions.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationRequest {
    /// What to draw.
    pub prompt: String,
    /// How many images (1 to 10); 1 when absent.
    #[serde(default)]
    pub n: Option<u32>,
    /// `"WxH"`, each side a multiple of 8; `512x512` when absent.
    #[serde(default)]
    pub size: Option<String>,
    /// `url` (the default) or `b64_json`.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// A Hugging Face model id (`org/name`) to use as the base model; any
    /// other name means the bridge's default model.
    #[serde(default)]
    pub model: Option<String>,
    /// Accepted for compatibility; ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub quality: Option<serde_json::Value>,
    /// Accepted for compatibility; ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub style: Option<serde_json::Value>,
    /// Accepted for compatibility; ignored.
    #[serde(default)]
    pub user: Option<String>,
    /// Hydrogen: what not to draw.
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// Hydrogen: the seed (0 to 2^31-1); the same seed gives the same images.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Hydrogen: denoising steps (1 to 100).
    #[serde(default)]
    pub steps: Option<u32>,
    /// Hydrogen: classifier-free guidance scale (the task's `cfg`, 0 to 20).
    #[serde(default)]
    pub guidance: Option<f64>,
    /// Hydrogen: the base model's Hugging Face id; wins over `model`.
    #[serde(default)]
    pub base_model: Option<String>,
    /// Hydrogen: the fee to escrow, in the token's smallest unit (decimal
    /// string); the contract's minimum per image when absent.
    #[serde(default)]
    pub fee: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    Url,
    B64Json,
}

/// OpenAI's answer: one entry per image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenerationResponse {
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub data: Vec<ImageData>,
}

/// One image: a URL or the PNG in base64, as `response_format` asked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b64_json: Option<String>,
}

/// A refusal of a request, at the request's field (`steps`, `size`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub param: String,
    pub message: String,
}

impl GenerationRequest {
    /// The task this request stands for, validated; errors name the
    /// request's field.
    pub fn to_task_args(&self, default_model: &str) -> Result<TaskArgs, FieldError> {
        let model = match (&self.base_model, &self.model) {
            (Some(base), _) => base.clone(),
            (None, Some(model)) if model.contains('/') => model.clone(),
            _ => default_model.to_owned(),
        };
        let mut args = TaskArgs::new(model, self.prompt.clone());
        let config = &mut args.task_config;
        config.num_images = self.n.unwrap_or(1);
        if let Some(size) = &self.size {
            let (w, h) = parse_size(size).ok_or_else(|| FieldError {
                param: "size".into(),
                message: format!("size must be WIDTHxHEIGHT (e.g. 512x512), got {size:?}"),
            })?;
            config.image_width = w;
            config.image_height = h;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(steps) = self.steps {
            config.steps = steps;
        }
        if let Some(guidance) = self.guidance {
            config.cfg = guidance;
        }
        if let Some(negative) = &self.negative_prompt {
            args.negative_prompt = negative.clone();
        }
        args.validate().map_err(|e| self.field_error(e))?;
        Ok(args)
    }

    /// A task error at the request field the value came from.
    fn field_error(&self, e: TaskArgsError) -> FieldError {
        let param = match e.path() {
            "task_config.num_images" => "n",
            "task_config.image_width" | "task_config.image_height" | "task_config" => "size",
            "task_config.steps" => "steps",
            "task_config.seed" => "seed",
            "task_config.cfg" => "guidance",
            "negative_prompt" => "negative_prompt",
            "prompt" => "prompt",
            p if p.starts_with("base_model") => {
                if self.base_model.is_some() {
                    "base_model"
                } else {
                    "model"
                }
            }
            _ => "",
        };
        // The task's wording names its own path; keep the message, drop it.
        let message = match &e {
            TaskArgsError::Invalid { message, .. } | TaskArgsError::Malformed { message, .. } => {
                message.clone()
            }
            TaskArgsError::Unsupported { .. } => e.to_string(),
        };
        FieldError {
            param: param.into(),
            message: if param.is_empty() {
                e.to_string()
            } else {
                format!("{param}: {message}")
            },
        }
    }
}

fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.trim().split_once(['x', 'X'])?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> GenerationRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_openai_request_becomes_a_task() {
        let req = request(serde_json::json!({
            "prompt": "a red fox", "n": 2, "size": "256x512", "model": "dall-e-3",
            "quality": "hd", "response_format": "b64_json",
            "seed": 7, "steps": 12, "guidance": 6.5, "negative_prompt": "blur"
        }));
        assert_eq!(req.response_format, Some(ResponseFormat::B64Json));
        let args = req.to_task_args("runwayml/stable-diffusion-v1-5").unwrap();
        assert_eq!(args.base_model.name(), "runwayml/stable-diffusion-v1-5");
        let c = &args.task_config;
        assert_eq!(
            (c.num_images, c.image_width, c.image_height, c.seed, c.steps),
            (2, 256, 512, 7, 12)
        );
        assert_eq!(c.cfg, 6.5);
        assert_eq!(args.negative_prompt, "blur");

        let req = request(serde_json::json!({"prompt": "x", "model": "org/model"}));
        assert_eq!(
            req.to_task_args("d/m").unwrap().base_model.name(),
            "org/model"
        );
        let req =
            request(serde_json::json!({"prompt": "x", "model": "org/model", "base_model": "b/m"}));
        assert_eq!(req.to_task_args("d/m").unwrap().base_model.name(), "b/m");
    }

    #[test]
    fn errors_name_the_request_field() {
        for (json, param) in [
            (serde_json::json!({"prompt": "x", "steps": 0}), "steps"),
            (serde_json::json!({"prompt": "x", "n": 11}), "n"),
            (
                serde_json::json!({"prompt": "x", "size": "500x512"}),
                "size",
            ),
            (serde_json::json!({"prompt": "x", "size": "big"}), "size"),
            (serde_json::json!({"prompt": "", }), "prompt"),
            (
                serde_json::json!({"prompt": "x", "guidance": 50.0}),
                "guidance",
            ),
        ] {
            let err = request(json.clone()).to_task_args("d/m").unwrap_err();
            assert_eq!(err.param, param, "{json}: {err:?}");
            assert!(err.message.starts_with(param), "{err:?}");
        }
        assert!(serde_json::from_value::<GenerationRequest>(
            serde_json::json!({"prompt": "x", "sampler": "ddim"})
        )
        .is_err());
    }
}
