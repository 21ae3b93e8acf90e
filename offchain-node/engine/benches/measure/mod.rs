//! Timing shared by the CPU and GPU benchmarks: medians of repeated runs,
//! each ended by reading the result back so queued GPU work is counted.

#![allow(dead_code)]

use burn::tensor::Tensor;
use hydrogen_engine::{Request, StableDiffusion};
use std::time::Instant;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `repeats` runs, after one untimed warm-up run.
pub fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats.max(1))
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Median seconds per UNet call on `x` (a CFG batch) with `context`.
pub fn unet_step(sd: &StableDiffusion, x: &Tensor<4>, context: &Tensor<3>, repeats: usize) -> f64 {
    time(repeats, || {
        sd.unet.forward(x.clone(), 500.0, context).into_data();
    })
}

/// Median seconds per whole image (prompt encoding, every step, VAE decode, pixels on the host).
pub fn image(sd: &StableDiffusion, req: &Request, repeats: usize) -> f64 {
    time(repeats, || {
        sd.generate(req, |_| {}).expect("generate");
    })
}

/// Runs a diffusers timing script with `python` and parses the JSON object on its last stdout line.
pub fn diffusers(python: &str, script: &str, args: &[String]) -> serde_json::Value {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run the diffusers benchmark");
    assert!(
        out.status.success(),
        "diffusers benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("diffusers JSON")
}
