//! Hydrogen's diffusion engine: Stable Diffusion 1.x/2.x text-to-image in
//! Burn, on wgpu or the CPU, loading diffusers-layout safetensors.
//!
//! [`StableDiffusion::load`] reads a model folder; [`StableDiffusion::generate`]
//! runs a [`Request`]. Initial and ancestral noise is drawn on the host
//! ([`noise`]), so nodes on different backends start from identical latents and
//! differ only by floating-point rounding, which the network's pHash absorbs.

pub mod clip;
pub mod config;
pub mod cpu_kernels;
pub mod device;
pub mod error;
pub mod lora;
pub mod memory;
pub mod nn;
pub mod noise;
pub mod pipeline;
pub mod profile;
pub mod prompt;
pub mod resnet;
pub mod scheduler;
pub mod textual_inversion;
pub mod tiny;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

pub use device::Backend;
pub use error::{Error, Result};
pub use lora::Lora;
pub use pipeline::{resolve_model_dir, Progress, Request, StableDiffusion};
pub use scheduler::Method;
pub use weights::Precision;
