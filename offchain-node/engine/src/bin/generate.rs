//! `generate --model DIR --prompt TEXT --out DIR [...]`: run the engine directly.
//!
//! With `--prompts FILE` (a JSON list of `{"prompt": ..., "seed": ...}`, the
//! seed optional) it loads the model once and writes `<out>/<k>.png` for the
//! k-th entry (`<k>-<i>.png` with several images), k as four digits.

use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "usage: generate --model DIR (--prompt TEXT | --prompts FILE) --out DIR [--negative TEXT] [--width 512] [--height 512]
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
    let (mut model, mut out, mut prompt, mut prompts) = (None, None, None, None);
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
            "--prompts" => prompts = Some(PathBuf::from(value()?)),
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
    let (Some(model), Some(out)) = (model, out) else {
        return Err(USAGE.into());
    };
    // (prompt, seed, file stem) of each job.
    let jobs: Vec<(String, u64, Option<String>)> = match (prompt, prompts) {
        (Some(p), None) => vec![(p, req.seed, None)],
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let list: Vec<serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            list.iter()
                .enumerate()
                .map(|(k, v)| {
                    let p = v["prompt"].as_str().ok_or_else(|| {
                        format!("{}: entry {k} has no \"prompt\" string", file.display())
                    })?;
                    let seed = v["seed"].as_u64().unwrap_or(req.seed);
                    Ok((p.to_owned(), seed, Some(format!("{k:04}"))))
                })
                .collect::<Result<_, String>>()?
        }
        _ => return Err(format!("give one of --prompt and --prompts\n{USAGE}").into()),
    };
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
    std::fs::create_dir_all(&out)?;
    for (prompt, seed, stem) in jobs {
        req.prompt = prompt;
        req.seed = seed;
        let started = Instant::now();
        let images = sd.generate(&req, |p| {
            eprintln!("image {} step {}/{}", p.image, p.step, p.steps)
        })?;
        eprintln!(
            "generated {} image(s) in {:.1}s",
            images.len(),
            started.elapsed().as_secs_f64()
        );
        for (i, img) in images.iter().enumerate() {
            let name = match (&stem, images.len()) {
                (Some(stem), 1) => format!("{stem}.png"),
                (Some(stem), _) => format!("{stem}-{i}.png"),
                (None, _) => format!("{i}.png"),
            };
            let path = out.join(name);
            img.save(&path)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
