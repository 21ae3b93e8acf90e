//! `generate --model DIR --prompt TEXT --out DIR [...]`: run the engine directly.

use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "usage: generate --model DIR --prompt TEXT --out DIR [--negative TEXT] [--width 512] [--height 512]
                [--steps 25] [--guidance 7.5] [--seed 0] [--num-images 1]
                [--scheduler dpm++2m|ddim|euler|euler_a] [--backend wgpu|wgpu-cpu|cpu] [--f16]";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut out, mut prompt) = (None, None, None);
    let mut req = Request {
        prompt: String::new(),
        negative_prompt: String::new(),
        width: 512,
        height: 512,
        steps: 25,
        guidance: 7.5,
        seed: 0,
        num_images: 1,
        scheduler: Method::DpmSolverMultistep,
        scheduler_args: Default::default(),
    };
    let mut backend = Backend::Wgpu;
    let mut precision = Precision::F32;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--prompt" => prompt = Some(value()?),
            "--negative" => req.negative_prompt = value()?,
            "--width" => req.width = value()?.parse()?,
            "--height" => req.height = value()?.parse()?,
            "--steps" => req.steps = value()?.parse()?,
            "--guidance" => req.guidance = value()?.parse()?,
            "--seed" => req.seed = value()?.parse()?,
            "--num-images" => req.num_images = value()?.parse()?,
            "--scheduler" => req.scheduler = value()?.parse()?,
            "--backend" => backend = value()?.parse()?,
            "--f16" => precision = Precision::F16,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    let (Some(model), Some(out), Some(prompt)) = (model, out, prompt) else {
        return Err(USAGE.into());
    };
    req.prompt = prompt;
    let device = backend.device();
    if precision == Precision::F16 && !backend.supports_f16(&device) {
        return Err("this backend has no f16 support; drop --f16".into());
    }
    let started = Instant::now();
    let sd = StableDiffusion::load(&model, &device, precision)?;
    eprintln!(
        "device: {}",
        hydrogen_engine::device::describe(backend, &device)
    );
    eprintln!(
        "loaded {} in {:.1}s",
        model.display(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let images = sd.generate(&req, |p| {
        eprintln!("image {} step {}/{}", p.image, p.step, p.steps)
    })?;
    eprintln!(
        "generated {} image(s) in {:.1}s",
        images.len(),
        started.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&out)?;
    for (i, img) in images.iter().enumerate() {
        let path = out.join(format!("{i}.png"));
        img.save(&path)?;
        println!("{}", path.display());
    }
    Ok(())
}
