//! A task's `vae`: another AutoencoderKL decodes in place of the model's own,
//! as diffusers does with `pipe.vae = AutoencoderKL(...)`
//! (scripts/lora_reference.py writes the reference image).

mod common;

use common::{reference, reference_case_image, write_safetensors, write_tiny_model, Variant};
use hydrogen_engine::tiny::{formula, manifest};
use hydrogen_engine::{Backend, Precision, StableDiffusion};
use serde_json::Value;
use std::path::Path;

fn lora_reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lora_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("lora_reference.json"))
        .expect("json")
}

/// A VAE folder (`config.json` + weights) with the tiny VAE's shapes and
/// other values: `formula(name + ".ft")`, as the reference script fills it.
fn write_finetuned_vae(dir: &Path, config: &Value, tensors: &[(String, Vec<usize>)]) {
    std::fs::create_dir_all(dir).expect("vae dir");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let shapes: std::collections::HashMap<&str, &[usize]> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    write_safetensors(
        &dir.join("diffusion_pytorch_model.safetensors"),
        tensors,
        |name, _| formula(&format!("{name}.ft"), shapes[name]),
    );
}

fn image(sd: &StableDiffusion, data: &Value) -> Vec<u8> {
    reference_case_image(sd, data)
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("image")
        .iter()
        .map(|x| x.as_u64().expect("u8") as u8)
        .collect()
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .expect("pixels")
}

#[test]
fn a_swapped_vae_decodes_as_diffusers_and_swapping_back_restores_the_model() {
    let data = lora_reference();
    let model = write_tiny_model("vae-swap", Variant::F32, &|_| {});
    let vae_dir = model.dir.join("other-vae");
    let tiny = reference();
    write_finetuned_vae(
        &vae_dir,
        &tiny["components"]["vae"]["config"],
        &manifest(&tiny, "vae"),
    );
    let mut sd =
        StableDiffusion::load(&model.dir, &Backend::Cpu.device(), Precision::F32).expect("load");
    let own = image(&sd, &data);
    assert!(max_diff(&own, &bytes(&data["base"]["image_hwc_u8"])) <= 2);

    sd.set_vae(Some(&vae_dir)).expect("swap");
    let swapped = image(&sd, &data);
    let want = bytes(&data["vae_swap"]["image_hwc_u8"]);
    let levels = max_diff(&swapped, &want);
    println!("swapped VAE: max |ours - diffusers| = {levels} levels");
    assert!(
        levels <= 2,
        "swapped VAE differs from diffusers by {levels} levels"
    );
    assert!(max_diff(&swapped, &own) > 10, "the swap changed the image");

    sd.set_vae(None).expect("back");
    assert_eq!(image(&sd, &data), own, "the model's own VAE again");
}

#[test]
fn a_vae_that_does_not_fit_the_unet_is_refused_and_the_model_kept() {
    let data = lora_reference();
    let model = write_tiny_model("vae-refuse", Variant::F32, &|_| {});
    let tiny = reference();
    let mut config = tiny["components"]["vae"]["config"].clone();
    config["latent_channels"] = 8.into();
    let tensors: Vec<(String, Vec<usize>)> = manifest(&tiny, "vae")
        .into_iter()
        .map(|(name, mut shape)| {
            // The layers that touch the latents, resized for 8 channels.
            match name.as_str() {
                "encoder.conv_out.weight" | "encoder.conv_out.bias" => shape[0] = 16,
                "quant_conv.weight" => shape = vec![16, 16, 1, 1],
                "quant_conv.bias" => shape = vec![16],
                "post_quant_conv.weight" => shape = vec![8, 8, 1, 1],
                "post_quant_conv.bias" => shape = vec![8],
                "decoder.conv_in.weight" => shape[1] = 8,
                _ => {}
            }
            (name, shape)
        })
        .collect();
    let vae_dir = model.dir.join("eight-channel-vae");
    write_finetuned_vae(&vae_dir, &config, &tensors);
    let mut sd =
        StableDiffusion::load(&model.dir, &Backend::Cpu.device(), Precision::F32).expect("load");
    let before = image(&sd, &data);
    let err = sd.set_vae(Some(&vae_dir)).unwrap_err().to_string();
    assert!(err.contains("8 latent channels"), "{err}");
    assert_eq!(image(&sd, &data), before);
}
