//! The engine interface the daemon runs tasks through, the Burn engine
//! behind it, and (with the `test-engines` feature) engines that cheat or
//! fail on purpose, for network tests of slashing and local faults.

use hydrogen_engine::{Backend, Lora, Method, Precision, Progress, Request, StableDiffusion};
use hydrogen_sdk::task::TaskArgs;
use image::RgbImage;
use std::path::PathBuf;
use std::sync::Mutex;

/// Why this node cannot produce a result. Never reported on chain: the
/// contract treats silence as a miss (no fee, no slash), while a wrong vote
/// could be slashed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocalFault {
    #[error("model {0} was not found")]
    ModelMissing(String),
    #[error("model {model} cannot be fetched: {reason}")]
    ModelUnavailable { model: String, reason: String },
    #[error("model {model} does not load: {reason}")]
    ModelBroken { model: String, reason: String },
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("engine failed: {0}")]
    Engine(String),
}

/// Where the models a task names are on this node: resolved (models
/// directory, mirror or URL; see `sources`) before the engine runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskModels {
    /// The base model's diffusers folder.
    pub base: PathBuf,
    /// The LoRA's `.safetensors` file, when the task has one.
    pub lora: Option<PathBuf>,
    /// The replacement VAE's folder, when the task names one.
    pub vae: Option<PathBuf>,
    /// The textual inversion's `.safetensors` file, when the task names one.
    pub textual_inversion: Option<PathBuf>,
}

/// Runs validated Stable Diffusion task arguments. Synchronous and CPU- or
/// GPU-heavy: the daemon calls it on a blocking thread.
pub trait Engine: Send + Sync {
    /// `args` were validated by the SDK schema; `models` are where the
    /// models it names are. `progress` is called after every denoising step.
    fn generate(
        &self,
        args: &TaskArgs,
        models: &TaskModels,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<RgbImage>, LocalFault>;

    /// The peak memory `args` would take, in bytes, where the engine can
    /// tell (see `hydrogen_engine::memory`); a node declines a task that
    /// needs more than it has rather than be killed generating it.
    fn memory_needed(&self, _args: &TaskArgs, _models: &TaskModels) -> Option<u64> {
        None
    }

    /// Device memory the engine's allocator holds, in bytes, where the backend reports it.
    fn device_memory(&self) -> Option<u64> {
        None
    }
}

/// The engine request for validated task arguments.
pub fn request(args: &TaskArgs) -> Result<Request, LocalFault> {
    let c = &args.task_config;
    Ok(Request {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        width: c.image_width,
        height: c.image_height,
        steps: c.steps as usize,
        guidance: c.cfg,
        seed: c.seed,
        num_images: c.num_images,
        scheduler: args
            .scheduler
            .method
            .as_str()
            .parse::<Method>()
            .map_err(|e| LocalFault::Engine(e.to_string()))?,
        scheduler_args: args
            .scheduler
            .args
            .as_ref()
            .map(|a| a.to_json_map())
            .unwrap_or_default(),
    })
}

/// Hydrogen's Burn engine. Keeps the last model loaded, with its LoRA
/// merged, since consecutive tasks mostly use the same ones.
pub struct BurnEngine {
    backend: Backend,
    loaded: Mutex<Option<(PathBuf, StableDiffusion)>>,
}

impl BurnEngine {
    pub fn new(backend: Backend) -> Self {
        BurnEngine {
            backend,
            loaded: Mutex::new(None),
        }
    }

    /// Merges the task's LoRA (or none), swaps in its VAE (or the model's
    /// own) and adds its textual inversion's tokens (or none).
    fn adapt(
        sd: &mut StableDiffusion,
        args: &TaskArgs,
        models: &TaskModels,
    ) -> Result<(), LocalFault> {
        let broken = |model: &str, e: hydrogen_engine::Error| LocalFault::ModelBroken {
            model: model.to_owned(),
            reason: e.to_string(),
        };
        match (&args.lora, &models.lora) {
            (Some(lora), Some(path)) => {
                let scale = lora.weight.fraction() as f32;
                if sd.lora() != Some((path.as_path(), scale)) {
                    let file = Lora::open(path).map_err(|e| broken(&lora.model, e))?;
                    sd.set_lora(Some((&file, scale)))
                        .map_err(|e| broken(&lora.model, e))?;
                }
            }
            (Some(lora), None) => return Err(LocalFault::ModelMissing(lora.model.clone())),
            (None, _) => sd
                .set_lora(None)
                .map_err(|e| broken(args.base_model.name(), e))?,
        }
        match (args.vae.as_str(), &models.vae) {
            ("", _) => sd.set_vae(None),
            (_, Some(dir)) => sd.set_vae(Some(dir)),
            (vae, None) => return Err(LocalFault::ModelMissing(vae.to_owned())),
        }
        .map_err(|e| broken(&args.vae, e))?;
        let ti = args.textual_inversion.as_str();
        match (ti, &models.textual_inversion) {
            ("", _) => sd.set_textual_inversion(None),
            (_, Some(file)) => sd.set_textual_inversion(Some(file)),
            (ti, None) => return Err(LocalFault::ModelMissing(ti.to_owned())),
        }
        .map_err(|e| broken(ti, e))
    }
}

impl Engine for BurnEngine {
    fn memory_needed(&self, args: &TaskArgs, models: &TaskModels) -> Option<u64> {
        let c = &args.task_config;
        match hydrogen_engine::memory::estimate(
            &models.base,
            Precision::F32,
            c.image_width,
            c.image_height,
        ) {
            Ok(estimate) => Some(estimate.total()),
            Err(e) => {
                // Loading will name the broken file; no estimate is no refusal.
                tracing::debug!(error = %e, "no memory estimate");
                None
            }
        }
    }

    fn device_memory(&self) -> Option<u64> {
        if self.backend == Backend::Cpu {
            return None; // host memory; Flex keeps no pools
        }
        self.backend
            .device()
            .memory_pool_usage()
            .map(|u| u.bytes_reserved)
    }

    fn generate(
        &self,
        args: &TaskArgs,
        models: &TaskModels,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<RgbImage>, LocalFault> {
        let name = args.base_model.name();
        let request = request(args)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.as_ref().map(|(dir, _)| dir) != Some(&models.base) {
            *loaded = None;
            let sd = StableDiffusion::load(&models.base, &self.backend.device(), Precision::F32)
                .map_err(|e| LocalFault::ModelBroken {
                    model: name.to_owned(),
                    reason: e.to_string(),
                })?;
            *loaded = Some((models.base.clone(), sd));
        }
        let (_, sd) = loaded.as_mut().expect("loaded above");
        Self::adapt(sd, args, models)?;
        // A GPU allocation failure surfaces as a panic inside Burn/wgpu: it
        // is this machine's fault, never the task's.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sd.generate(&request, &mut *progress)
        }));
        match run {
            Ok(Ok(images)) => Ok(images),
            Ok(Err(e)) => Err(LocalFault::Engine(e.to_string())),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                *loaded = None;
                if message.to_lowercase().contains("memory") {
                    Err(LocalFault::OutOfMemory(message))
                } else {
                    Err(LocalFault::Engine(message))
                }
            }
        }
    }
}

/// Test engines: the real engine with a different seed (its pHashes disagree
/// with honest nodes, so the contract slashes it), one that always has a
/// local fault (out of memory), and the real engine taking a second a step
/// (so a test can act while it generates).
#[cfg(feature = "test-engines")]
pub mod test_engines {
    use super::*;

    pub struct Cheat(pub BurnEngine);

    impl Engine for Cheat {
        fn memory_needed(&self, args: &TaskArgs, models: &TaskModels) -> Option<u64> {
            self.0.memory_needed(args, models)
        }

        fn generate(
            &self,
            args: &TaskArgs,
            models: &TaskModels,
            progress: &mut dyn FnMut(Progress),
        ) -> Result<Vec<RgbImage>, LocalFault> {
            let mut args = args.clone();
            args.task_config.seed = args.task_config.seed.wrapping_add(1_000_003) % (1 << 31);
            self.0.generate(&args, models, progress)
        }
    }

    pub struct Slow(pub BurnEngine);

    impl Engine for Slow {
        fn memory_needed(&self, args: &TaskArgs, models: &TaskModels) -> Option<u64> {
            self.0.memory_needed(args, models)
        }

        fn generate(
            &self,
            args: &TaskArgs,
            models: &TaskModels,
            progress: &mut dyn FnMut(Progress),
        ) -> Result<Vec<RgbImage>, LocalFault> {
            self.0.generate(args, models, &mut |p| {
                std::thread::sleep(std::time::Duration::from_secs(1));
                progress(p)
            })
        }
    }

    pub struct Fail;

    impl Engine for Fail {
        fn generate(
            &self,
            _: &TaskArgs,
            _: &TaskModels,
            _: &mut dyn FnMut(Progress),
        ) -> Result<Vec<RgbImage>, LocalFault> {
            Err(LocalFault::OutOfMemory(
                "the `fail` test engine always runs out of memory".into(),
            ))
        }
    }
}

/// The engine named by the configuration.
pub fn from_config(name: &str, backend: Backend) -> anyhow::Result<Box<dyn Engine>> {
    let burn = || BurnEngine::new(backend);
    match name {
        "burn" => Ok(Box::new(burn())),
        #[cfg(feature = "test-engines")]
        "cheat" => Ok(Box::new(test_engines::Cheat(burn()))),
        #[cfg(feature = "test-engines")]
        "fail" => Ok(Box::new(test_engines::Fail)),
        #[cfg(feature = "test-engines")]
        "slow" => Ok(Box::new(test_engines::Slow(burn()))),
        other => anyhow::bail!("unknown engine {other:?} (this build knows: burn)"),
    }
}
