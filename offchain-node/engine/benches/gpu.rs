//! GPU benchmark at Stable Diffusion 1.5's shape: 512x512, 25 DPM++ 2M steps,
//! batch 1 with classifier-free guidance, in f32 and f16, against PyTorch
//! diffusers on the same GPU, the same weights and the same initial latents.
//!
//! Besides the times it writes each image and prints the pHash distances
//! between ours and diffusers' in both precisions: what the network's
//! consensus sees when nodes run different implementations or precisions.
//!
//! `scripts/bench_gpu.sh` makes the random-weight model and a Python with
//! diffusers, then runs this. By hand:
//!
//!     HYDROGEN_BENCH_MODEL=/tmp/sd15-random [HYDROGEN_BENCH_PYTHON=python3] \
//!         cargo bench -p hydrogen-engine --bench gpu
//!
//! Also read: `HYDROGEN_BENCH_BACKEND` (wgpu), `HYDROGEN_BENCH_PRECISIONS`
//! (`f32,f16`; f16 where the adapter has it), `HYDROGEN_BENCH_SIZE` (512),
//! `HYDROGEN_BENCH_STEPS` (25), `HYDROGEN_BENCH_REPEATS` (3) and
//! `HYDROGEN_BENCH_OUT` (where the images and `gpu-bench.json` go).

mod measure;

use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use hydrogen_sdk::phash::{hamming, phash};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

const PROMPT: &str = "a photograph of an astronaut riding a horse";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The diffusers script: beside this file when run from the source tree,
/// else under the working directory (a copied binary run from a checkout's root).
fn script() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_diffusers_model.py");
    if here.is_file() {
        here
    } else {
        PathBuf::from("offchain-node/engine/scripts/bench_diffusers_model.py")
    }
}

struct Run {
    label: String,
    load_s: Option<f64>,
    step_s: f64,
    decode_s: f64,
    image_s: f64,
    /// Device memory reserved after the timed images (ours: Burn's pools, which
    /// keep every page they ever took, so this is the peak; diffusers: torch's
    /// `max_memory_reserved`).
    peak_bytes: Option<u64>,
    phash: [u8; 8],
}

const GIB: f64 = (1u64 << 30) as f64;

fn main() {
    let Ok(model) = std::env::var("HYDROGEN_BENCH_MODEL") else {
        println!(
            "gpu bench skipped: set HYDROGEN_BENCH_MODEL to a diffusers folder \
             (scripts/bench_gpu.sh makes a random-weight SD 1.5 one and runs this)"
        );
        return;
    };
    let backend: Backend = env_or("HYDROGEN_BENCH_BACKEND", "wgpu".to_string())
        .parse()
        .expect("HYDROGEN_BENCH_BACKEND");
    let size: u32 = env_or("HYDROGEN_BENCH_SIZE", 512);
    let steps: usize = env_or("HYDROGEN_BENCH_STEPS", 25);
    let repeats: usize = env_or("HYDROGEN_BENCH_REPEATS", 3);
    let out = PathBuf::from(env_or(
        "HYDROGEN_BENCH_OUT",
        std::env::temp_dir()
            .join("hydrogen-gpu-bench")
            .display()
            .to_string(),
    ));
    std::fs::create_dir_all(&out).expect("create the output folder");
    let python = std::env::var("HYDROGEN_BENCH_PYTHON").ok();

    let device = backend.device();
    let adapter = hydrogen_engine::device::describe(backend, &device);
    println!("adapter: {adapter}");
    println!(
        "config: {model}, {size}x{size}, DPM++ 2M {steps} steps, CFG 7.5 (UNet batch 2), median of {repeats}"
    );
    let wanted = env_or("HYDROGEN_BENCH_PRECISIONS", "f32,f16".to_string());
    let precisions: Vec<Precision> = [("f32", Precision::F32), ("f16", Precision::F16)]
        .into_iter()
        .filter(|(name, _)| wanted.split(',').any(|w| w.trim() == *name))
        .filter(|(_, p)| *p == Precision::F32 || backend.supports_f16(&device))
        .map(|(_, p)| p)
        .collect();

    let mut runs = Vec::new();
    for precision in precisions {
        let (name, dtype) = match precision {
            Precision::F32 => ("f32", DType::F32),
            Precision::F16 => ("f16", DType::F16),
        };
        let t0 = Instant::now();
        let sd = StableDiffusion::load(Path::new(&model), &device, precision).expect("load");
        let load_s = t0.elapsed().as_secs_f64();
        println!(
            "loaded {name}: {}",
            hydrogen_engine::device::describe(backend, &device)
        );

        let (cond, uncond) = sd.encode_prompts(PROMPT, "");
        let context = Tensor::cat(vec![uncond, cond], 0);
        let l = size as usize / sd.vae_scale_factor();
        let noise = hydrogen_engine::noise::normal(
            0,
            0,
            hydrogen_engine::noise::Stream::InitialLatents,
            2 * 4 * l * l,
        );
        let mut x = Tensor::<4>::from_data(TensorData::new(noise, [2, 4, l, l]), &device);
        if dtype == DType::F16 {
            x = x.cast(FloatDType::F16);
        }
        let step_s = measure::unet_step(&sd, &x, &context, repeats);
        let latent = x.clone().slice([0..1, 0..4, 0..l, 0..l]);
        let decode_s = measure::time(repeats, || {
            sd.vae_decoder.decode(latent.clone()).into_data();
        });
        let encode_s = measure::time(repeats, || {
            sd.encode_prompts(PROMPT, "").0.into_data();
        });
        let request = Request {
            prompt: PROMPT.into(),
            negative_prompt: String::new(),
            width: size,
            height: size,
            steps,
            guidance: 7.5,
            seed: 0,
            num_images: 1,
            scheduler: Method::DpmSolverMultistep,
            scheduler_args: Default::default(),
        };
        let mut last = None;
        let image_s = measure::time(repeats, || {
            last = Some(sd.generate(&request, |_| {}).expect("generate").remove(0));
        });
        let image = last.expect("at least one run");
        image
            .save(out.join(format!("ours-{name}.png")))
            .expect("write the image");
        let peak_bytes = device.memory_pool_usage().map(|u| u.bytes_reserved);
        println!(
            "ours {name}: load {load_s:.1} s, {:.1} ms per UNet step, {image_s:.2} s per image \
             (of which VAE decode {decode_s:.2} s, prompt encoding {encode_s:.3} s); \
             device memory reserved {}",
            step_s * 1e3,
            peak_bytes.map_or("unknown".into(), |b| format!("{:.2} GiB", b as f64 / GIB))
        );
        let ours = Run {
            label: format!("ours {name}"),
            load_s: Some(load_s),
            step_s,
            decode_s,
            image_s,
            peak_bytes,
            phash: phash(&image),
        };
        drop(sd);

        let Some(python) = &python else {
            runs.push(ours);
            continue;
        };
        let theirs = measure::diffusers(
            python,
            &script().display().to_string(),
            &[
                "--model".into(),
                model.clone(),
                "--dtype".into(),
                name.into(),
                "--size".into(),
                size.to_string(),
                "--steps".into(),
                steps.to_string(),
                "--repeats".into(),
                repeats.to_string(),
                "--out".into(),
                out.display().to_string(),
            ],
        );
        let path = theirs["image"].as_str().expect("image path");
        let image = image::open(path).expect("diffusers' image").to_rgb8();
        let (step_t, decode_t, image_t) = (
            theirs["unet_step_s"].as_f64().expect("step"),
            theirs["vae_decode_s"].as_f64().expect("decode"),
            theirs["image_s"].as_f64().expect("image"),
        );
        let peak_t = theirs["peak_reserved_bytes"].as_u64();
        println!(
            "diffusers {name} (torch {}, {}): {:.1} ms per UNet step, {image_t:.2} s per image \
             (VAE decode {decode_t:.2} s); peak memory reserved {}",
            theirs["torch"],
            theirs["device"],
            step_t * 1e3,
            peak_t.map_or("unknown".into(), |b| format!("{:.2} GiB", b as f64 / GIB))
        );
        // One `ratio NAME VALUE` line per figure, ours/diffusers: below 1 is faster.
        println!("ratio unet_step_gpu_{name} {:.3}", step_s / step_t);
        println!("ratio vae_decode_gpu_{name} {:.3}", decode_s / decode_t);
        println!("ratio image_gpu_{name} {:.3}", image_s / image_t);
        if let (Some(a), Some(b)) = (ours.peak_bytes, peak_t) {
            println!("ratio peak_memory_gpu_{name} {:.3}", a as f64 / b as f64);
        }
        runs.push(ours);
        runs.push(Run {
            label: format!("diffusers {name}"),
            load_s: None,
            step_s: step_t,
            decode_s: decode_t,
            image_s: image_t,
            peak_bytes: peak_t,
            phash: phash(&image),
        });
    }

    println!("pHash distances (bits of 64):");
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            println!(
                "  {} vs {}: {}",
                a.label,
                b.label,
                hamming(a.phash, b.phash)
            );
        }
    }
    let summary = json!({
        "adapter": adapter,
        "size": size,
        "steps": steps,
        "runs": runs.iter().map(|r| json!({
            "label": r.label,
            "load_s": r.load_s,
            "unet_step_s": r.step_s,
            "vae_decode_s": r.decode_s,
            "image_s": r.image_s,
            "peak_reserved_bytes": r.peak_bytes,
            "phash": hex(&r.phash),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("gpu-bench.json"),
        serde_json::to_string_pretty(&summary).expect("JSON"),
    )
    .expect("write gpu-bench.json");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
