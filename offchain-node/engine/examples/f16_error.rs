//! How far each network drifts in f16 from f32 on one adapter: relative error
//! of the text encoder, the UNet at three timesteps and the VAE decoder on
//! identical inputs. Tells an f16 defect (one component far off) from a
//! model that is simply sensitive to rounding (every framework drifts).
//!
//!     cargo run --release -p hydrogen-engine --example f16_error -- [MODEL_DIR] [wgpu|wgpu-cpu]
//!
//! Without a model it uses the tiny test model. Measured on that model
//! (lavapipe): UNet 0.75 / 0.53 / 0.44 at t = 999 / 500 / 1, and PyTorch's own
//! fp16 drifts as far on it (0.67 / 0.70 / 0.14 on the CPU,
//! `scripts/f16_sensitivity.py`): its formula weights give attention logits of
//! 45-90, where f16's rounding of q and k moves the softmax by percents.

use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use hydrogen_engine::noise::{normal, Stream};
use hydrogen_engine::{Backend, Precision, StableDiffusion};
use std::path::PathBuf;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(FloatDType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

fn report(name: &str, half: Vec<f32>, full: Vec<f32>) {
    let diff: f64 = half
        .iter()
        .zip(&full)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = full.iter().map(|b| f64::from(*b).powi(2)).sum();
    println!(
        "{name:>14}: relative error f16 vs f32 {:.2e}",
        (diff / norm).sqrt()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tiny = std::env::temp_dir().join(format!("hydrogen-f16-error-{}", std::process::id()));
    let model = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => {
            hydrogen_engine::tiny::write_model(&tiny).expect("write the tiny model");
            tiny.clone()
        }
    };
    let backend: Backend = args
        .next()
        .unwrap_or_else(|| "wgpu".into())
        .parse()
        .expect("backend");
    let device = backend.device();
    assert!(backend.supports_f16(&device), "this adapter has no f16");
    println!(
        "adapter: {}",
        hydrogen_engine::device::describe(backend, &device)
    );
    let full = StableDiffusion::load(&model, &device, Precision::F32).expect("load in f32");
    let half = StableDiffusion::load(&model, &device, Precision::F16).expect("load in f16");

    let prompt = "a bowl of fruit on a wooden table";
    let (c32, _) = full.encode_prompts(prompt, "");
    let (c16, _) = half.encode_prompts(prompt, "");
    report("text encoder", values(c16.clone()), values(c32.clone()));

    let side = 32;
    let noise = normal(7, 0, Stream::InitialLatents, 4 * side * side);
    let x = Tensor::<4>::from_data(
        TensorData::new(noise, [1, 4, side, side]),
        (&device, DType::F32),
    );
    for t in [999.0, 500.0, 1.0] {
        let a = full.unet.forward(x.clone(), t, &c32);
        let b = half.unet.forward(x.clone().cast(FloatDType::F16), t, &c16);
        report(&format!("unet t={t}"), values(b), values(a));
    }
    let a = full.vae_decoder.decode(x.clone());
    let b = half.vae_decoder.decode(x.cast(FloatDType::F16));
    report("vae decoder", values(b), values(a));
    let _ = std::fs::remove_dir_all(&tiny);
}
