//! Text-to-image: tokenize, encode, denoise with classifier-free guidance,
//! decode. All noise comes from [`crate::noise`], so every backend starts
//! from the same latents.

use crate::clip::{AddedEmbeddings, ClipTextModel};
use crate::config::{read_json, ClipConfig, SchedulerConfig, UNetConfig, VaeConfig};
use crate::error::{Error, Result};
use crate::lora::{Lora, Target};
use crate::nn::cast_to;
use crate::noise::{self, Stream};
use crate::prompt::PromptEncoder;
use crate::scheduler::{Method, Scheduler};
use crate::textual_inversion::TextualInversion;
use crate::tokenizer::ClipTokenizer;
use crate::unet::UNet;
use crate::vae::{Decoder, Encoder};
use crate::weights::{component_files, Precision, Weights};
use burn::tensor::{DType, Device, Tensor, TensorData};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// One text-to-image job.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub prompt: String,
    pub negative_prompt: String,
    /// Multiples of 8.
    pub width: u32,
    pub height: u32,
    pub steps: usize,
    /// Classifier-free guidance scale; at or below 1 the unconditional pass is skipped.
    pub guidance: f64,
    pub seed: u64,
    pub num_images: u32,
    pub scheduler: Method,
    /// The task's `scheduler.args`, applied to the model's scheduler config
    /// ([`SchedulerConfig::with_overrides`]); empty for none.
    pub scheduler_args: serde_json::Map<String, serde_json::Value>,
}

impl Request {
    fn validate(&self) -> Result<()> {
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(8)
            || !self.height.is_multiple_of(8)
        {
            return Err(Error::Request(format!(
                "{}x{} is not a positive multiple of 8",
                self.width, self.height
            )));
        }
        if self.steps == 0 {
            return Err(Error::Request("steps must be at least 1".into()));
        }
        if self.num_images == 0 {
            return Err(Error::Request("num_images must be at least 1".into()));
        }
        Ok(())
    }
}

/// Progress of a job, reported after every denoising step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub image: u32,
    pub step: usize,
    pub steps: usize,
}

/// A loaded Stable Diffusion model (diffusers layout).
pub struct StableDiffusion {
    pub tokenizer: ClipTokenizer,
    pub text_encoder: ClipTextModel,
    pub unet: UNet,
    pub vae_decoder: Decoder,
    pub vae_encoder: Encoder,
    pub scheduler_config: SchedulerConfig,
    /// The UNet's and text encoder's files, kept mapped: a LoRA switch
    /// rebuilds from these pristine weights, never from a fresh read of disk
    /// nor by subtracting the last LoRA (which would not give the same bits).
    unet_weights: Weights,
    text_weights: Weights,
    unet_config: UNetConfig,
    clip_config: ClipConfig,
    /// The LoRA merged now: its file, its scale, the models it touched.
    lora: Option<AppliedLora>,
    /// The folder of the VAE in use when it is not the model's own.
    vae_source: Option<PathBuf>,
    /// The textual inversion whose tokens the tokenizer holds now.
    textual_inversion: Option<AppliedTextualInversion>,
    root: PathBuf,
    device: Device,
    precision: Precision,
}

/// A textual inversion in use: the path it was asked for by, and its token
/// rows, which the text encoder looks up past its own table (so the table,
/// and a LoRA merged into the encoder, stay as they are).
struct AppliedTextualInversion {
    path: PathBuf,
    rows: AddedEmbeddings,
}

#[derive(Debug, Clone, PartialEq)]
struct AppliedLora {
    path: PathBuf,
    scale: f32,
    unet: bool,
    text_encoder: bool,
}

fn open_component(
    root: &Path,
    name: &str,
    stem: &str,
    device: &Device,
    precision: Precision,
) -> Result<Weights> {
    let dir = root.join(name);
    let files = component_files(&dir, stem, precision == Precision::F16)?;
    Weights::open(name, &files, device, precision)
}

/// Builds a model from `w` and checks every tensor was used.
fn build<T>(w: &mut Weights, build: impl FnOnce(&mut Weights) -> Result<T>) -> Result<T> {
    let model = build(w);
    // Forget a half-built pass even on error, so the files can build again.
    let finished = w.finish();
    let model = model?;
    finished?;
    Ok(model)
}

impl StableDiffusion {
    /// Loads every component from a diffusers folder (or a Hugging Face cache
    /// entry, see [`resolve_model_dir`]). Loading is strict: see [`Weights`].
    pub fn load(model: &Path, device: &Device, precision: Precision) -> Result<Self> {
        let root = resolve_model_dir(model)?;
        let unet_cfg_path = root.join("unet/config.json");
        let unet_cfg: UNetConfig = read_json(&unet_cfg_path)?;
        unet_cfg.check_supported(&unet_cfg_path)?;
        let vae_cfg: VaeConfig = read_json(&root.join("vae/config.json"))?;
        let clip_cfg: ClipConfig = read_json(&root.join("text_encoder/config.json"))?;
        let scheduler_config =
            SchedulerConfig::read(&root.join("scheduler/scheduler_config.json"))?;
        let tokenizer = ClipTokenizer::from_dir(&root.join("tokenizer"))?;

        let mut text_weights = open_component(&root, "text_encoder", "model", device, precision)?;
        let text_encoder = build(&mut text_weights, |w| ClipTextModel::load(&clip_cfg, w))?;
        let mut unet_weights =
            open_component(&root, "unet", "diffusion_pytorch_model", device, precision)?;
        let unet = build(&mut unet_weights, |w| UNet::load(&unet_cfg, w))?;
        let (vae_decoder, vae_encoder) = load_vae(&root.join("vae"), &vae_cfg, device, precision)?;
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            vae_decoder,
            vae_encoder,
            scheduler_config,
            unet_weights,
            text_weights,
            unet_config: unet_cfg,
            clip_config: clip_cfg,
            lora: None,
            vae_source: None,
            textual_inversion: None,
            root,
            device: device.clone(),
            precision,
        })
    }

    /// Merges `lora` at `scale` (the task's `lora.weight` / 100) into the
    /// UNet and text encoder in place of the LoRA merged before, or restores
    /// the pristine model for `None`. Only the models either LoRA touches are
    /// rebuilt, from the kept files; asking for what is merged already costs
    /// nothing. On error the model is left as it was.
    pub fn set_lora(&mut self, lora: Option<(&Lora, f32)>) -> Result<()> {
        let wanted = lora.map(|(l, scale)| AppliedLora {
            path: l.path().to_owned(),
            scale,
            unet: l.touches(Target::Unet),
            text_encoder: l.touches(Target::TextEncoder),
        });
        if wanted == self.lora {
            return Ok(());
        }
        let before = self.lora.clone();
        let touched = |target: Target| {
            [&before, &wanted].iter().any(|a| {
                a.as_ref().is_some_and(|a| match target {
                    Target::Unet => a.unet,
                    Target::TextEncoder => a.text_encoder,
                })
            })
        };
        let deltas = |target: Target, w: &Weights| match lora {
            Some((l, scale)) => l.deltas(target, w, scale),
            None => Ok(Default::default()),
        };
        let unet = if touched(Target::Unet) {
            let d = deltas(Target::Unet, &self.unet_weights)?;
            self.unet_weights.set_patches(d);
            let config = &self.unet_config;
            Some(build(&mut self.unet_weights, |w| UNet::load(config, w))?)
        } else {
            None
        };
        let text_encoder = if touched(Target::TextEncoder) {
            let d = deltas(Target::TextEncoder, &self.text_weights)?;
            self.text_weights.set_patches(d);
            let config = &self.clip_config;
            Some(build(&mut self.text_weights, |w| {
                ClipTextModel::load(config, w)
            })?)
        } else {
            None
        };
        if let Some(unet) = unet {
            self.unet = unet;
        }
        if let Some(text_encoder) = text_encoder {
            self.text_encoder = text_encoder;
        }
        self.lora = wanted;
        Ok(())
    }

    /// The LoRA merged now and its scale.
    pub fn lora(&self) -> Option<(&Path, f32)> {
        self.lora.as_ref().map(|l| (l.path.as_path(), l.scale))
    }

    /// Decodes with the AutoencoderKL in `vae` (a folder with `config.json`
    /// and its weights, or a pipeline folder with `vae/`) in place of the
    /// model's own, or goes back to the model's own for `None`.
    pub fn set_vae(&mut self, vae: Option<&Path>) -> Result<()> {
        if vae.map(Path::to_owned) == self.vae_source {
            return Ok(());
        }
        let dir = match vae {
            Some(dir) if dir.join("vae/config.json").is_file() => dir.join("vae"),
            Some(dir) => dir.to_owned(),
            None => self.root.join("vae"),
        };
        let config: VaeConfig = read_json(&dir.join("config.json"))?;
        let (decoder, encoder) = load_vae(&dir, &config, &self.device, self.precision)?;
        if decoder.scale_factor() != self.vae_decoder.scale_factor()
            || config.latent_channels != self.unet_config.in_channels
        {
            return Err(Error::Config {
                path: dir,
                message: format!(
                    "this VAE maps {} latent channels at 1/{} scale; the UNet works on {} at 1/{}",
                    config.latent_channels,
                    decoder.scale_factor(),
                    self.unet_config.in_channels,
                    self.vae_decoder.scale_factor()
                ),
            });
        }
        self.vae_decoder = decoder;
        self.vae_encoder = encoder;
        self.vae_source = vae.map(Path::to_owned);
        Ok(())
    }

    /// Adds the tokens of the textual inversion in `ti` (a safetensors file,
    /// or a folder holding `learned_embeds.safetensors`; see
    /// [`crate::textual_inversion`]) for the prompts that follow, in place of
    /// the one added before, or goes back to the model's own tokenizer and
    /// embeddings for `None`. The token ids follow the vocabulary, as
    /// diffusers' `load_textual_inversion` gives them. Asking for what is in
    /// use already costs nothing; on error the model is left as it was.
    pub fn set_textual_inversion(&mut self, ti: Option<&Path>) -> Result<()> {
        if ti == self.textual_inversion.as_ref().map(|t| t.path.as_path()) {
            return Ok(());
        }
        let Some(path) = ti else {
            self.tokenizer.set_added_tokens(Vec::new());
            self.textual_inversion = None;
            return Ok(());
        };
        let file = TextualInversion::open(path)?;
        let refuse = |message: String| Error::Config {
            path: file.path().to_owned(),
            message: format!("textual inversion: {message}"),
        };
        let hidden = self.text_encoder.hidden_size();
        if file.dim() != hidden {
            return Err(refuse(format!(
                "`{}` holds {}-dim vectors; this text encoder embeds tokens in {hidden} dims",
                file.token(),
                file.dim()
            )));
        }
        // diffusers refuses a token, or its second vector's, that the vocabulary has.
        let second = format!("{}_1", file.token());
        if let Some(taken) = [file.token(), second.as_str()]
            .into_iter()
            .find(|t| self.tokenizer.in_vocab(t))
        {
            return Err(refuse(format!(
                "the token `{taken}` is in the tokenizer's vocabulary already"
            )));
        }
        let first_id = u32::try_from(self.tokenizer.vocab_len())
            .map_err(|_| refuse("the vocabulary has no room for more ids".into()))?;
        let rows = self
            .text_encoder
            .added_embeddings(first_id, file.values().to_vec())?;
        self.tokenizer.set_added_tokens(file.added_tokens(first_id));
        self.textual_inversion = Some(AppliedTextualInversion {
            path: path.to_owned(),
            rows,
        });
        Ok(())
    }

    /// The textual inversion in use, as it was asked for.
    pub fn textual_inversion(&self) -> Option<&Path> {
        self.textual_inversion.as_ref().map(|t| t.path.as_path())
    }

    /// Pixels per latent along each side: 2^(VAE blocks - 1), 8 for every released SD model.
    pub fn vae_scale_factor(&self) -> usize {
        self.vae_decoder.scale_factor()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        match self.precision {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }

    /// Text embeddings `[1, chunks*77, d]` for the prompt and the negative
    /// prompt in Compel's weighting syntax ([`crate::prompt`]), padded to the
    /// same chunk count. A prompt without weighting gives the embeddings of
    /// [`Self::encode_prompts_plain`], bit for bit. A prompt compel refuses is
    /// an error naming it.
    pub fn try_encode_prompts(
        &self,
        prompt: &str,
        negative: &str,
    ) -> Result<(Tensor<3>, Tensor<3>)> {
        let encoder = PromptEncoder::new(
            &self.tokenizer,
            &self.text_encoder,
            self.textual_inversion.as_ref().map(|t| &t.rows),
        );
        let (prompt, negative) = (encoder.encode(prompt)?, encoder.encode(negative)?);
        encoder.pad_pair(prompt, negative)
    }

    /// [`Self::try_encode_prompts`], with prompts it refuses encoded as plain text.
    pub fn encode_prompts(&self, prompt: &str, negative: &str) -> (Tensor<3>, Tensor<3>) {
        self.try_encode_prompts(prompt, negative)
            .unwrap_or_else(|_| self.encode_prompts_plain(prompt, negative))
    }

    /// Text embeddings of the prompts as plain text, no weighting syntax.
    pub fn encode_prompts_plain(&self, prompt: &str, negative: &str) -> (Tensor<3>, Tensor<3>) {
        let window = self.text_encoder.max_positions() - 2;
        let n = self
            .tokenizer
            .chunks(prompt, window, 1)
            .len()
            .max(self.tokenizer.chunks(negative, window, 1).len());
        let embed = |text: &str| {
            let chunks = self.tokenizer.chunks(text, window, n);
            let added = self.textual_inversion.as_ref().map(|t| &t.rows);
            let e = crate::profile::span("text_encoder", || {
                self.text_encoder.forward_with(&chunks, added, None)
            });
            let [c, s, d] = e.dims();
            e.reshape([1, c * s, d])
        };
        (embed(prompt), embed(negative))
    }

    /// Runs `request`, calling `progress` after every step; returns `num_images` RGB images.
    pub fn generate(
        &self,
        request: &Request,
        mut progress: impl FnMut(Progress),
    ) -> Result<Vec<RgbImage>> {
        request.validate()?;
        let scheduler_config = self
            .scheduler_config
            .with_overrides(&request.scheduler_args)?;
        let (cond, uncond) = self.try_encode_prompts(&request.prompt, &request.negative_prompt)?;
        let guided = request.guidance > 1.0;
        let context = if guided {
            Tensor::cat(vec![uncond, cond], 0)
        } else {
            cond
        };
        let conditioning = self.unet.condition(&context);
        let f = self.vae_scale_factor();
        let (lh, lw) = (request.height as usize / f, request.width as usize / f);
        let channels = self.unet.config().in_channels;
        let shape = [1, channels, lh, lw];
        let mut images = Vec::new();
        for image in 0..request.num_images {
            let mut scheduler =
                Scheduler::new(&scheduler_config, request.scheduler, request.steps)?;
            let steps = scheduler.timesteps().len();
            // The latents and the scheduler's arithmetic stay in f32 (as diffusers' schedulers
            // upcast): only the networks compute in f16, so an f16 node's trajectory differs
            // from an f32 node's by the networks' rounding alone.
            let mut x = self
                .host_noise(request.seed, image, Stream::InitialLatents, shape)
                .mul_scalar(scheduler.init_noise_sigma());
            for i in 0..steps {
                let t = scheduler.timesteps()[i];
                let input = cast_to(x.clone().mul_scalar(scheduler.input_scale(i)), self.dtype());
                let input = if guided {
                    Tensor::cat(vec![input.clone(), input], 0)
                } else {
                    input
                };
                let out = crate::profile::span("unet", || {
                    cast_to(
                        self.unet.forward_conditioned(input, t, &conditioning),
                        DType::F32,
                    )
                });
                let out = if guided {
                    let u = out.clone().slice([0..1, 0..channels, 0..lh, 0..lw]);
                    let c = out.slice([1..2, 0..channels, 0..lh, 0..lw]);
                    u.clone() + (c - u).mul_scalar(request.guidance)
                } else {
                    out
                };
                let noise = scheduler.needs_noise().then(|| {
                    self.host_noise(request.seed, image, Stream::Ancestral { step: i }, shape)
                });
                x = scheduler.step(i, x, out, noise);
                progress(Progress {
                    image,
                    step: i + 1,
                    steps,
                });
            }
            let pixels = crate::profile::span("vae_decoder", || {
                self.vae_decoder.decode(cast_to(x, self.dtype()))
            });
            images.push(self.to_image(pixels)?);
        }
        Ok(images)
    }

    /// Host noise as an f32 tensor on the model's device.
    fn host_noise(&self, seed: u64, image: u32, stream: Stream, shape: [usize; 4]) -> Tensor<4> {
        let values = noise::normal(seed, image, stream, shape.iter().product());
        Tensor::<4>::from_data(TensorData::new(values, shape), (&self.device, DType::F32))
    }

    /// `[1, 3, h, w]` in `[-1, 1]` to 8-bit RGB, rounding as diffusers' `numpy_to_pil` does.
    fn to_image(&self, pixels: Tensor<4>) -> Result<RgbImage> {
        let [_, _, h, w] = pixels.dims();
        let data = cast_to(pixels, DType::F32)
            .div_scalar(2.0)
            .add_scalar(0.5)
            .clamp(0.0, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Device(format!("reading the image back: {e:?}")))?;
        let plane = h * w;
        Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = y as usize * w + x as usize;
            let px = |c: usize| (data[c * plane + at] * 255.0).round() as u8;
            image::Rgb([px(0), px(1), px(2)])
        }))
    }
}

fn load_vae(
    dir: &Path,
    config: &VaeConfig,
    device: &Device,
    precision: Precision,
) -> Result<(Decoder, Encoder)> {
    let files = component_files(dir, "diffusion_pytorch_model", precision == Precision::F16)?;
    let mut w = Weights::open("vae", &files, device, precision)?;
    build(&mut w, |w| {
        Ok((Decoder::load(config, w)?, Encoder::load(config, w)?))
    })
}

/// The diffusers folder for `model`: the folder itself if it holds
/// `model_index.json`; for a Hugging Face cache entry (`models--org--name`, or
/// `org/name` looked up under `$HF_HUB_CACHE`, `$HF_HOME/hub` or
/// `~/.cache/huggingface/hub`), the snapshot `refs/main` points at.
pub fn resolve_model_dir(model: &Path) -> Result<PathBuf> {
    if model.join("model_index.json").is_file() {
        return Ok(model.to_owned());
    }
    let mut candidates = vec![model.to_owned()];
    let id = model.to_string_lossy();
    if id.matches('/').count() == 1 && !model.exists() {
        let cache_name = format!("models--{}", id.replace('/', "--"));
        let mut roots = Vec::new();
        if let Ok(c) = std::env::var("HF_HUB_CACHE") {
            roots.push(PathBuf::from(c));
        }
        if let Ok(h) = std::env::var("HF_HOME") {
            roots.push(PathBuf::from(h).join("hub"));
        }
        if let Ok(home) = std::env::var("HOME") {
            roots.push(PathBuf::from(home).join(".cache/huggingface/hub"));
        }
        candidates.extend(roots.into_iter().map(|r| r.join(&cache_name)));
    }
    for entry in candidates {
        let snapshots = entry.join("snapshots");
        if !snapshots.is_dir() {
            continue;
        }
        let refs = entry.join("refs/main");
        if let Ok(hash) = std::fs::read_to_string(&refs) {
            let dir = snapshots.join(hash.trim());
            if dir.join("model_index.json").is_file() {
                return Ok(dir);
            }
        }
        // No usable ref: take the only snapshot that is a complete pipeline.
        let found: Vec<PathBuf> = std::fs::read_dir(&snapshots)
            .map_err(|e| Error::io(&snapshots, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("model_index.json").is_file())
            .collect();
        if found.len() == 1 {
            return Ok(found[0].clone());
        }
    }
    Err(Error::ModelNotFound(format!(
        "{} (no model_index.json there, nor a Hugging Face cache entry for it)",
        model.display()
    )))
}
