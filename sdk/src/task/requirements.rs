//! What a task needs of a node, computed once here: the app puts
//! [`TaskArgs::min_vram_gb`] on chain, the relay and every node check it
//! ([`super::acceptance`]), and the contract draws only nodes whose VRAM
//! class reaches it.
//!
//! The estimate is for the family's released architecture in f16:
//! - the weights (UNet, text encoders, VAE);
//! - the larger of the UNet's activations (classifier-free guidance runs a
//!   batch of two) and the VAE decoder's at the task's size, plus a quarter
//!   of the smaller (the engine's `memory::estimate` rule, there read from a
//!   model's files, here from the family's published configs);
//! - a second UNet while a LoRA is merged (the engine builds the merged UNet
//!   before it drops the last one, so a failed merge leaves the model whole);
//! - nothing per image: images are generated one after another.
//!
//! Add a fifth for the allocator's slack and round up; never below the
//! reference network's floor for the family (8 GB for SD 1.x and 2.x, 10 for
//! SDXL), which the reference's own tasks were written against.

use super::{ModelFamily, TaskArgs};

const GIB: u64 = 1 << 30;
/// f16.
const BYTES_PER_FLOAT: u64 = 2;

/// A family's released architecture, as far as memory goes.
struct Architecture {
    unet_params: u64,
    text_encoder_params: u64,
    vae_params: u64,
    unet_channels: &'static [u64],
    unet_layers_per_block: u64,
    vae_channels: &'static [u64],
}

impl Architecture {
    fn of(family: ModelFamily) -> Self {
        match family {
            // runwayml/stable-diffusion-v1-5: UNet 859.5 M, CLIP ViT-L 123.1 M, VAE 83.7 M.
            ModelFamily::Sd1 => Self {
                unet_params: 859_520_964,
                text_encoder_params: 123_060_480,
                vae_params: 83_653_863,
                unet_channels: &[320, 640, 1280, 1280],
                unet_layers_per_block: 2,
                vae_channels: &[128, 256, 512, 512],
            },
            // stabilityai/stable-diffusion-2-1: UNet 865.9 M, OpenCLIP ViT-H 340.4 M.
            ModelFamily::Sd2 => Self {
                unet_params: 865_910_724,
                text_encoder_params: 340_387_840,
                vae_params: 83_653_863,
                unet_channels: &[320, 640, 1280, 1280],
                unet_layers_per_block: 2,
                vae_channels: &[128, 256, 512, 512],
            },
            // stable-diffusion-xl-base-1.0: UNet 2.567 B, CLIP-L + OpenCLIP-bigG 817.8 M.
            ModelFamily::Sdxl => Self {
                unet_params: 2_567_463_684,
                text_encoder_params: 817_844_480,
                vae_params: 83_653_863,
                unet_channels: &[320, 640, 1280],
                unet_layers_per_block: 2,
                vae_channels: &[128, 256, 512, 512],
            },
        }
    }
}

/// The memory a task needs of a node, in bytes, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    /// The model's weights.
    pub weights: u64,
    /// The activations of one image at the task's size.
    pub activations: u64,
    /// A second UNet while a LoRA is merged; 0 without a LoRA.
    pub lora: u64,
    /// The family's floor, in GB.
    floor_gb: u32,
}

impl Requirements {
    /// The estimate for `args`.
    pub fn of(args: &TaskArgs) -> Self {
        let family = args.base_model.family();
        let arch = Architecture::of(family);
        let weights =
            (arch.unet_params + arch.text_encoder_params + arch.vae_params) * BYTES_PER_FLOAT;
        let c = &args.task_config;
        let pixels = u64::from(c.image_width) * u64::from(c.image_height);
        let channel = |c: &[u64], i: usize| c.get(i).or(c.last()).copied().unwrap_or(0);
        let v = arch.vae_channels;
        let vae = pixels * (2 * channel(v, 1) + 4 * channel(v, 0)) * BYTES_PER_FLOAT;
        let scale = 1u64 << (v.len() - 1);
        let latent = pixels / (scale * scale) * 2;
        let u = arch.unet_channels;
        let layers = arch.unet_layers_per_block + 1;
        let skips: u64 = (0..u.len())
            .map(|i| layers * channel(u, i) / (1u64 << (2 * i as u32)))
            .sum();
        let feed_forward = 14 * channel(u, 0);
        let unet = latent * (skips + feed_forward) * BYTES_PER_FLOAT;
        Self {
            weights,
            activations: vae.max(unet) + vae.min(unet) / 4,
            lora: if args.lora.is_some() {
                arch.unet_params * BYTES_PER_FLOAT
            } else {
                0
            },
            floor_gb: family.min_vram_gb(),
        }
    }

    /// Everything, in bytes.
    pub fn bytes(&self) -> u64 {
        self.weights + self.activations + self.lora
    }

    /// The GPU memory a node needs, in GB: [`Requirements::bytes`] plus a
    /// fifth, rounded up, at least the family's floor.
    pub fn min_vram_gb(&self) -> u32 {
        let with_slack = self.bytes() + self.bytes() / 5;
        let gb = u32::try_from(with_slack.div_ceil(GIB)).unwrap_or(u32::MAX);
        gb.max(self.floor_gb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(model: &str, side: u32, lora: bool) -> TaskArgs {
        let mut args = TaskArgs::new(model, "a cat");
        args.task_config.image_width = side;
        args.task_config.image_height = side;
        if lora {
            args.lora = Some(crate::task::Lora {
                model: "x/y".into(),
                weight_file_name: String::new(),
                weight: 80.into(),
            });
        }
        args
    }

    #[test]
    fn the_reference_sizes_keep_the_reference_floors() {
        for (model, side) in [
            ("runwayml/stable-diffusion-v1-5", 512),
            ("runwayml/stable-diffusion-v1-5", 768),
            ("stabilityai/stable-diffusion-2-1", 768),
        ] {
            for lora in [false, true] {
                assert_eq!(
                    task(model, side, lora).min_vram_gb(),
                    8,
                    "{model} {side} {lora}"
                );
            }
        }
    }

    #[test]
    fn large_images_and_loras_need_more() {
        let sd15 = "runwayml/stable-diffusion-v1-5";
        let at = |side, lora| task(sd15, side, lora).min_vram_gb();
        assert!(at(1536, false) > 8, "{}", at(1536, false));
        assert!(at(1536, true) > at(1536, false));
        assert!(at(2048, false) > at(1536, false));
        // One image or ten: generated one after another.
        let mut ten = task(sd15, 2048, false);
        ten.task_config.num_images = 10;
        assert_eq!(ten.min_vram_gb(), at(2048, false));
        let r = Requirements::of(&task(sd15, 512, false));
        assert_eq!(r.weights, 2_132_470_614);
        assert!(
            r.activations > 500 << 20 && r.activations < 600 << 20,
            "{r:?}"
        );
    }
}
