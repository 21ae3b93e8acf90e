//! Where one image's time goes, per component and per block.
//!
//!     cargo run --release -p hydrogen-engine --example profile -- \
//!         [MODEL|tiny] [BACKEND] [f16|f32] [--size PX] [--steps N]
//!
//! MODEL is a diffusers folder (default `tiny`: the built-in tiny model,
//! written to a temporary folder); BACKEND as `generate --backend` (default
//! `cpu`). One untimed image warms up (shader compilation, autotune,
//! allocator pools), then one image is generated with profiling on: every
//! block is timed after a device sync, so the table's milliseconds add up to
//! the image but the image itself is slower than unprofiled (the syncs stop
//! the GPU from running ahead). The unprofiled time of the same image is
//! printed first for that reason. FLOPs are counted from the layer shapes
//! (convolutions, linear layers, attention matmuls); TFLOP/s is FLOPs over
//! the span's time.

use hydrogen_engine::profile::{self, Session};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("profile: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut positional = Vec::new();
    let (mut size, mut steps) = (None, 2usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => size = Some(number(args.next(), "--size")?),
            "--steps" => steps = number(args.next(), "--steps")?,
            "-h" | "--help" => {
                println!("usage: profile [MODEL|tiny] [cpu|wgpu|wgpu-cpu|vulkan|cuda] [f16|f32] [--size PX] [--steps N]");
                return Ok(());
            }
            _ => positional.push(a),
        }
    }
    let model = positional.first().map(String::as_str).unwrap_or("tiny");
    let backend: Backend = positional
        .get(1)
        .map(String::as_str)
        .unwrap_or("cpu")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let precision = match positional.get(2).map(String::as_str).unwrap_or("f32") {
        "f32" => Precision::F32,
        "f16" => Precision::F16,
        other => return Err(format!("precision {other}: f16 or f32")),
    };

    let _tmp;
    let dir = if model == "tiny" {
        let d = std::env::temp_dir().join(format!("hydrogen-profile-{}", std::process::id()));
        hydrogen_engine::tiny::write_model(&d).map_err(|e| e.to_string())?;
        _tmp = TempDir(d.clone());
        d
    } else {
        PathBuf::from(model)
    };
    let device = backend.device();
    if precision == Precision::F16 && !backend.supports_f16(&device) {
        return Err(format!("{backend:?} has no f16 support on this adapter"));
    }
    let t0 = Instant::now();
    let sd = StableDiffusion::load(&dir, &device, precision).map_err(|e| e.to_string())?;
    let load = t0.elapsed().as_secs_f64();
    let px = size.unwrap_or(64 * sd.vae_scale_factor()) as u32;
    let req = Request {
        prompt: "a lighthouse on a cliff at dusk".into(),
        negative_prompt: String::new(),
        width: px,
        height: px,
        steps,
        guidance: 7.5,
        seed: 0,
        num_images: 1,
        scheduler: Method::DpmSolverMultistep,
        scheduler_args: Default::default(),
    };
    println!(
        "model {}; {}; {precision:?}; {px}x{px}, {steps} steps, CFG 7.5; loaded in {load:.2} s",
        dir.display(),
        hydrogen_engine::device::describe(backend, &device)
    );

    let generate = || sd.generate(&req, |_| {}).map_err(|e| e.to_string());
    generate()?; // warm-up
    let t0 = Instant::now();
    generate()?;
    println!(
        "image without profiling: {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );

    let session = Session::start(&device);
    let t0 = Instant::now();
    generate()?;
    let total = t0.elapsed().as_secs_f64();
    let records = session.finish();
    println!(
        "image with profiling:    {:.1} ms (spans below; unet is summed over {steps} steps)\n",
        total * 1e3
    );
    print!("{}", profile::table(&records, total));
    let counted: f64 = records
        .iter()
        .filter(|r| r.depth == 0)
        .map(|r| r.seconds)
        .sum();
    println!(
        "{:<44} {:>10.2} {:>9} {:>6.1}%",
        "(outside spans: host work, tokenizer, scheduler)",
        (total - counted) * 1e3,
        "",
        100.0 * (total - counted) / total
    );
    Ok(())
}

fn number(v: Option<String>, flag: &str) -> Result<usize, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number"))
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
