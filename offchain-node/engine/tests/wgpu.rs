//! The wgpu path on Mesa's lavapipe (Debian `mesa-vulkan-drivers`) against the
//! CPU backend: same task, same host noise; the images differ only by float
//! rounding, and their pHashes must stay within the consensus threshold.

mod common;

use common::{write_tiny_model, Variant};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use hydrogen_sdk::phash::{hamming, phash, DEFAULT_DISTANCE_THRESHOLD};

#[test]
fn lavapipe_and_cpu_agree_within_the_consensus_threshold() {
    let model = write_tiny_model("wgpu", Variant::F32, &|_| {});
    let req = Request {
        prompt: "a lighthouse on a cliff at dusk".into(),
        negative_prompt: "blurry".into(),
        width: 64,
        height: 64,
        steps: 4,
        guidance: 7.5,
        seed: 42,
        num_images: 2,
        scheduler: Method::DpmSolverMultistep,
        scheduler_args: Default::default(),
    };
    let cpu = StableDiffusion::load(&model.dir, &Backend::Cpu.device(), Precision::F32)
        .expect("load on CPU");
    let on_cpu = cpu.generate(&req, |_| {}).expect("generate on CPU");

    let device = Backend::WgpuSoftware.device();
    let gpu = StableDiffusion::load(&model.dir, &device, Precision::F32)
        .expect("load on wgpu (lavapipe)");
    println!(
        "wgpu adapter: {}",
        hydrogen_engine::device::describe(Backend::WgpuSoftware, &device)
    );
    let on_wgpu = gpu.generate(&req, |_| {}).expect("generate on wgpu");

    let worst = worst_distance("CPU vs lavapipe", &on_cpu, &on_wgpu);
    assert!(
        worst <= u32::from(DEFAULT_DISTANCE_THRESHOLD),
        "CPU and lavapipe differ by {worst} bits"
    );
}

/// Prints each image pair's pHash distance and largest pixel difference;
/// returns the largest distance.
fn worst_distance(label: &str, a: &[image::RgbImage], b: &[image::RgbImage]) -> u32 {
    let mut worst = 0;
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        let d = hamming(phash(a), phash(b));
        let max_level = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        println!(
            "image {i}: pHash distance {label} = {d} bits; max pixel difference {max_level} levels"
        );
        worst = worst.max(d);
    }
    worst
}
