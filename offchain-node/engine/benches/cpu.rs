//! CPU benchmark: the engine vs PyTorch diffusers on the same model, weights
//! and noise (diffusers' unit-test-sized components, formula weights).
//!
//! `cargo bench -p hydrogen-engine --bench cpu`; set `HYDROGEN_BENCH_PYTHON`
//! to a Python with torch + diffusers (`scripts/bench_cpu.sh` makes one) to
//! time diffusers in the same run and print ours/theirs.

#[path = "../tests/common/mod.rs"]
mod common;

use burn::tensor::{Tensor, TensorData};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use std::time::Instant;

const LATENT: usize = 32;
const STEPS: usize = 10;
const REPEATS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads = std::env::var("HYDROGEN_BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let model = common::write_tiny_model("bench", common::Variant::F32, &|_| {});
    let device = Backend::Cpu.device();
    let sd = StableDiffusion::load(&model.dir, &device, Precision::F32).expect("load");

    let values = hydrogen_engine::noise::normal(
        0,
        0,
        hydrogen_engine::noise::Stream::InitialLatents,
        2 * 4 * LATENT * LATENT,
    );
    let x = Tensor::<4>::from_data(TensorData::new(values, [2, 4, LATENT, LATENT]), &device);
    let ctx = Tensor::<3>::zeros([2, 77, 32], &device);
    let sync = |t: Tensor<4>| t.into_data();
    sync(sd.unet.forward(x.clone(), 500.0, &ctx));
    let step = median(
        (0..REPEATS)
            .map(|_| {
                let t0 = Instant::now();
                sync(sd.unet.forward(x.clone(), 500.0, &ctx));
                t0.elapsed().as_secs_f64()
            })
            .collect(),
    );

    let req = Request {
        prompt: "a photo of an astronaut".into(),
        negative_prompt: String::new(),
        width: (sd.vae_scale_factor() * LATENT) as u32,
        height: (sd.vae_scale_factor() * LATENT) as u32,
        steps: STEPS,
        guidance: 7.5,
        seed: 0,
        num_images: 1,
        scheduler: Method::DpmSolverMultistep,
    };
    sd.generate(&req, |_| {}).expect("warm-up");
    let image = median(
        (0..REPEATS.div_ceil(2))
            .map(|_| {
                let t0 = Instant::now();
                sd.generate(&req, |_| {}).expect("generate");
                t0.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let px = sd.vae_scale_factor() * LATENT;
    println!("config: diffusers unit-test UNet/VAE/CLIP, latent {LATENT}x{LATENT} ({px}x{px} px), CFG batch 2, DPM++ 2M {STEPS} steps");
    println!(
        "ours (Burn Flex CPU): {:.1} ms per UNet step, {:.3} s per image",
        step * 1e3,
        image
    );

    let Ok(python) = std::env::var("HYDROGEN_BENCH_PYTHON") else {
        println!("diffusers: skipped (set HYDROGEN_BENCH_PYTHON, see scripts/bench_cpu.sh)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_diffusers.py");
    let out = std::process::Command::new(python)
        .args([
            script,
            "--threads",
            &threads,
            "--latent",
            &LATENT.to_string(),
            "--steps",
            &STEPS.to_string(),
        ])
        .args(["--repeats", &REPEATS.to_string()])
        .output()
        .expect("run diffusers benchmark");
    assert!(
        out.status.success(),
        "diffusers benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let theirs: serde_json::Value =
        serde_json::from_str(line.lines().last().unwrap_or("")).expect("diffusers JSON");
    let (t_step, t_image) = (
        theirs["unet_step_s"].as_f64().expect("step"),
        theirs["image_s"].as_f64().expect("image"),
    );
    println!(
        "diffusers (torch {}, {threads} threads): {:.1} ms per UNet step, {:.3} s per image",
        theirs["torch"],
        t_step * 1e3,
        t_image
    );
    println!(
        "ratio ours/diffusers: UNet step {:.2}, image {:.2}",
        step / t_step,
        image / t_image
    );
}
