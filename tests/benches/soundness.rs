//! The soundness study: how far apart the pHashes of honest results fall,
//! how far those of cheats, and so which agreement threshold catches cheats
//! without ever failing an honest node.
//!
//! `cargo bench -p hydrogen-tests --bench soundness -- [--tasks 84]
//!  [--models shapes,sd15] [--sd15 DIR] [--no-lavapipe] [--lavapipe-tasks 10]
//!  [--images 2] [--out DIR] [--from distances.csv]`; the counts also go
//! per model (`--tasks shapes=84,sd15=4`, `--images sd15=8`). `--from`
//! redoes the tables and the figure from earlier runs' pairs (`a.csv,b.csv`)
//! without rendering anything; with `--models` too, it renders those models
//! anew and keeps the earlier pairs of the others. Each finished task's pairs
//! also go to `progress-MODEL-from-N.csv` at once; `--first-task N` goes on
//! from task N, so a long run cut short loses nothing (merge with `--from`).
//!
//! For each model and task (a held-out prompt of the trained model, a seed,
//! one of the five schedulers, two images by default) it renders the task as honest
//! nodes would (the CPU backend on every core and on pools of 1, 3 and 4
//! threads; for the first `--lavapipe-tasks`, lavapipe in f32 and f16) and as cheats would (another seed, half the steps, another prompt,
//! another model, a half-size image upscaled, another scheduler, the honest
//! image JPEG-recompressed or blurred), then compares pHashes per image:
//! every pair of honest renderings, and every cheat against the reference
//! rendering (CPU, every core).
//!
//! Models: `shapes`, the trained small model (`offchain-node/engine/shapes`),
//! 64x64; `sd15`, SD 1.5's shape with random weights at 64x64, from
//! `--sd15 DIR` or `$HYDROGEN_SD15_DIR` (write it with
//! `offchain-node/engine/scripts/sd15_random.py`). Output under `--out`
//! (default `target/soundness`): `distances.csv` (one row per image pair),
//! `report.md` (the tables) and `histograms.png`.

#[path = "soundness/report.rs"]
mod report;
#[path = "soundness/study.rs"]
mod study;

use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("soundness: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = study::Options::default();
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/soundness");
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        out = PathBuf::from(dir).join("soundness");
    }
    let mut models = vec!["shapes".to_string(), "sd15".to_string()];
    let mut models_given = false;
    let mut from: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tasks" => opts.tasks = value()?.parse()?,
            "--images" => opts.images = value()?.parse()?,
            "--models" => {
                models = value()?.split(',').map(str::to_owned).collect();
                models_given = true;
            }
            "--sd15" => opts.sd15 = Some(value()?.into()),
            "--no-lavapipe" => opts.lavapipe = false,
            "--lavapipe-tasks" => opts.lavapipe_tasks = value()?.parse()?,
            "--out" => out = value()?.into(),
            "--from" => from = value()?.split(',').map(PathBuf::from).collect(),
            "--first-task" => opts.first_task = value()?.parse()?,
            // cargo bench passes --bench to every harness-less bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    std::fs::create_dir_all(&out)?;
    let mut pairs = Vec::new();
    if !from.is_empty() {
        // Earlier runs' pairs, less those of the models rendered anew.
        for csv in &from {
            pairs.extend(report::read_csv(csv)?);
        }
        if models_given {
            pairs.retain(|p| !models.contains(&p.model));
        } else {
            models.clear();
        }
    }
    for model in &models {
        let started = std::time::Instant::now();
        // Each finished task's pairs, kept should the run be cut short.
        let progress = out.join(format!("progress-{model}-from-{}.csv", opts.first_task));
        let _ = std::fs::remove_file(&progress);
        let found = study::run(model, &opts, &mut |done| {
            report::append_csv(&progress, done)
        })?;
        eprintln!(
            "{model}: {} pairs in {:.0} s",
            found.len(),
            started.elapsed().as_secs_f64()
        );
        pairs.extend(found);
    }
    report::write_csv(&out.join("distances.csv"), &pairs)?;
    let text = report::markdown(&pairs);
    std::fs::write(out.join("report.md"), &text)?;
    report::plot(&out.join("histograms.png"), &pairs)?;
    println!("{text}");
    println!("written: {}", out.display());
    Ok(())
}
