//! The fused attention (Burn's `module::attention`: Flex's flash kernel on the
//! CPU, CubeCL's flash kernels on wgpu) against the materialised scores with
//! an f32 softmax, on every head size Stable Diffusion uses: 40, 80 and 160
//! (SD 1.x UNet), 64 (SD 2.x UNet, CLIP), 512 (the VAE's single head), with
//! self- and cross-attention shapes and CLIP's causal mask.
//!
//! Burn's fused attention has been reported wrong on some backends
//! (tracel-ai/burn#4325); this is what lets the engine trust it where it runs.

use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};
use hydrogen_engine::nn::{attention_with, AttentionPath};
use hydrogen_engine::noise::{normal, Stream};
use hydrogen_engine::Backend;

/// `(label, batch, heads, head_dim, query length, key length, causal)`.
const CASES: &[(&str, usize, usize, usize, usize, usize, bool)] = &[
    ("SD1 320ch self", 2, 8, 40, 256, 256, false),
    ("SD1 320ch cross", 2, 8, 40, 256, 77, false),
    ("SD1 640ch self", 2, 8, 80, 64, 64, false),
    ("SD1 1280ch cross", 2, 8, 160, 16, 77, false),
    ("SD2 64-dim self", 2, 5, 64, 256, 256, false),
    ("VAE single head", 1, 1, 512, 64, 64, false),
    ("CLIP causal", 2, 12, 64, 77, 77, true),
    ("long keys (flash tiles)", 1, 2, 40, 96, 1024, false),
];

fn input(device: &Device, seed: u64, rows: usize, width: usize) -> Tensor<3> {
    // Scaled so the scores span a few units, like a trained model's logits.
    let v: Vec<f32> = normal(seed, 0, Stream::InitialLatents, rows * width)
        .into_iter()
        .map(|x| 0.5 * x)
        .collect();
    Tensor::from_data(TensorData::new(v, [1, rows, width]), device)
}

fn check(backend: Backend, dtype: DType, tolerance: f32) {
    let device = backend.device();
    let float = match dtype {
        DType::F16 => FloatDType::F16,
        _ => FloatDType::F32,
    };
    for (i, &(label, b, heads, d, s, t, causal)) in CASES.iter().enumerate() {
        let seed = 100 * i as u64;
        let q = input(&device, seed, b * s, heads * d)
            .reshape([b, s, heads * d])
            .cast(float);
        let k = input(&device, seed + 1, b * t, heads * d)
            .reshape([b, t, heads * d])
            .cast(float);
        let v = input(&device, seed + 2, b * t, heads * d)
            .reshape([b, t, heads * d])
            .cast(float);
        let run = |path| {
            attention_with(path, q.clone(), k.clone(), v.clone(), heads, causal)
                .cast(FloatDType::F32)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        let fused = run(AttentionPath::Fused);
        let reference = run(AttentionPath::Materialized);
        assert_eq!(fused.len(), b * s * heads * d, "{label}: output size");
        let worst = fused
            .iter()
            .zip(&reference)
            .map(|(a, r)| (a - r).abs())
            .fold(0.0f32, f32::max);
        let scale = reference.iter().map(|r| r.abs()).fold(0.0f32, f32::max);
        println!("{backend:?} {dtype:?} {label}: max |fused - materialised| = {worst:.2e} (outputs up to {scale:.2})");
        assert!(
            worst <= tolerance * scale.max(1.0),
            "{backend:?} {dtype:?} {label} (b={b} heads={heads} d={d} s={s} t={t} causal={causal}): fused attention differs by {worst}"
        );
    }
}

#[test]
fn fused_attention_matches_materialised_on_the_cpu() {
    check(Backend::Cpu, DType::F32, 1e-5);
}

#[test]
fn fused_attention_matches_materialised_on_lavapipe() {
    check(Backend::WgpuSoftware, DType::F32, 1e-4);
}

/// On the machine's GPU (`HYDROGEN_TEST_GPU=wgpu` or `cuda`), f32 and f16:
/// `scripts/gpu_session.sh` runs it where a GPU is lent. Without the variable
/// it says so and checks nothing: CI has no GPU.
#[test]
fn fused_attention_matches_materialised_on_the_gpu() {
    let Ok(name) = std::env::var("HYDROGEN_TEST_GPU") else {
        println!("no GPU named (HYDROGEN_TEST_GPU=wgpu|cuda): nothing checked");
        return;
    };
    let backend: Backend = name.parse().expect("HYDROGEN_TEST_GPU names a backend");
    check(backend, DType::F32, 1e-4);
    if backend.supports_f16(&backend.device()) {
        // f16 inputs: both paths round q, k and v alike; they differ by the
        // rounding of the probabilities and the output.
        check(backend, DType::F16, 1e-2);
    }
}
