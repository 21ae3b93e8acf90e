//! CPU benchmark: the engine vs PyTorch diffusers on the same model, weights
//! and noise (diffusers' unit-test-sized components, formula weights).
//!
//! `cargo bench -p hydrogen-engine --bench cpu`; set `HYDROGEN_BENCH_PYTHON`
//! to a Python with torch + diffusers (`scripts/bench_cpu.sh` makes one) to
//! time diffusers in the same run and print ours/theirs.

#[path = "../tests/common/mod.rs"]
mod common;

mod measure;

use burn::tensor::{Tensor, TensorData};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};

const LATENT: usize = 32;
const STEPS: usize = 10;
const REPEATS: usize = 5;

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
    let step = measure::unet_step(&sd, &x, &ctx, REPEATS);

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
        scheduler_args: Default::default(),
    };
    let image = measure::image(&sd, &req, REPEATS.div_ceil(2));
    let px = sd.vae_scale_factor() * LATENT;
    println!("config: diffusers unit-test UNet/VAE/CLIP, latent {LATENT}x{LATENT} ({px}x{px} px), CFG batch 2, DPM++ 2M {STEPS} steps");
    println!(
        "ours ({}): {:.1} ms per UNet step, {:.3} s per image",
        hydrogen_engine::device::describe(Backend::Cpu, &device),
        step * 1e3,
        image
    );

    let Ok(python) = std::env::var("HYDROGEN_BENCH_PYTHON") else {
        println!("diffusers: skipped (set HYDROGEN_BENCH_PYTHON, see scripts/bench_cpu.sh)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_diffusers.py");
    let theirs = measure::diffusers(
        &python,
        script,
        &[
            "--threads".into(),
            threads.clone(),
            "--latent".into(),
            LATENT.to_string(),
            "--steps".into(),
            STEPS.to_string(),
            "--repeats".into(),
            REPEATS.to_string(),
        ],
    );
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
    // One `ratio NAME VALUE` line per figure, ours/diffusers: below 1 is faster.
    println!("ratio unet_step_cpu {:.3}", step / t_step);
    println!("ratio image_cpu {:.3}", image / t_image);
}
