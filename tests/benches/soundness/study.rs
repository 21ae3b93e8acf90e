//! Rendering one task the honest ways and the cheating ways, and the pHash
//! distance of each image pair.

use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use hydrogen_sdk::phash::{hamming, phash};
use image::imageops::FilterType;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Options {
    /// Tasks per model. Each gives `images` images, each image 6 honest
    /// pairs among the CPU renderings and 7 or 8 cheat pairs: 84 tasks of 2
    /// images give 1,008 and 1,344.
    pub tasks: PerModel,
    /// Images per task (default 2). A bigger batch buys no speed on the CPU
    /// backend (SD 1.5 at 64x64: 1 task of 8 images took 830 s, 4 tasks of
    /// 2 took 400 s), so more tasks, with more prompts and schedulers, is
    /// the better way to more pairs.
    pub images: PerModel,
    /// The first task's number (its seed and its prompt), so a long study
    /// can go on where an earlier, interrupted one stopped; tasks are
    /// deterministic, so the pairs match those an unbroken run gives.
    pub first_task: usize,
    pub sd15: Option<PathBuf>,
    pub lavapipe: bool,
    /// The first tasks also rendered on lavapipe (f32 and f16): about 25 s
    /// an image there, against under a second on the CPU backend.
    pub lavapipe_tasks: PerModel,
}

/// A count for every model (`84`) or per model (`shapes=84,sd15=4`; a
/// model left out gets 0).
#[derive(Debug, Clone)]
pub struct PerModel {
    all: Option<usize>,
    each: Vec<(String, usize)>,
}

impl PerModel {
    pub fn all(n: usize) -> PerModel {
        PerModel {
            all: Some(n),
            each: Vec::new(),
        }
    }

    pub fn of(&self, model: &str) -> usize {
        self.get(model).unwrap_or(0)
    }

    /// The count for `model`, if one was given for it or for all.
    pub fn get(&self, model: &str) -> Option<usize> {
        self.each
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, n)| *n)
            .or(self.all)
    }
}

impl std::str::FromStr for PerModel {
    type Err = String;
    fn from_str(s: &str) -> Result<PerModel, String> {
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        if !s.contains('=') {
            return Ok(PerModel::all(number(s)?));
        }
        let each = s
            .split(',')
            .map(|part| {
                let (model, n) = part
                    .split_once('=')
                    .ok_or(format!("{part}: expected model=count"))?;
                Ok((model.to_owned(), number(n)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(PerModel { all: None, each })
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tasks: PerModel::all(84),
            images: PerModel::all(IMAGES),
            first_task: 0,
            sd15: std::env::var_os("HYDROGEN_SD15_DIR").map(PathBuf::from),
            lavapipe: true,
            lavapipe_tasks: PerModel::all(10),
        }
    }
}

/// One compared pair of images.
pub struct Pair {
    pub model: String,
    pub task: usize,
    pub image: usize,
    pub scheduler: &'static str,
    pub honest: bool,
    /// What differs between the two renderings ("cpu 1 thread vs lavapipe f16", "another seed"...).
    pub variant: String,
    pub distance: u32,
}

const SCHEDULERS: [(Method, &str); 5] = [
    (Method::DpmSolverMultistep, "dpm++2m"),
    (Method::Euler, "euler"),
    (Method::EulerAncestral, "euler_a"),
    (Method::Ddim, "ddim"),
    (Method::Lcm, "lcm"),
];
const IMAGES: usize = 2;

/// The study's name of a scheduler, as `distances.csv` spells it.
pub fn scheduler_name(name: &str) -> Option<&'static str> {
    SCHEDULERS.iter().map(|(_, n)| *n).find(|n| *n == name)
}

/// A loaded model on one backend, with the rayon pool it computes in (None: the global one).
struct Renderer {
    name: &'static str,
    /// Shared by the CPU renderings (SD 1.5 is 4 GB in f32).
    sd: Arc<StableDiffusion>,
    pool: Option<rayon::ThreadPool>,
}

impl Renderer {
    fn load(
        name: &'static str,
        dir: &Path,
        backend: Backend,
        precision: Precision,
        threads: Option<usize>,
    ) -> Result<Renderer, Box<dyn std::error::Error>> {
        let sd = Arc::new(StableDiffusion::load(dir, &backend.device(), precision)?);
        Renderer::with(name, sd, threads)
    }

    /// `sd` again, computing in a pool of `threads` (None: the global pool).
    fn with(
        name: &'static str,
        sd: Arc<StableDiffusion>,
        threads: Option<usize>,
    ) -> Result<Renderer, Box<dyn std::error::Error>> {
        let pool = match threads {
            Some(n) => Some(rayon::ThreadPoolBuilder::new().num_threads(n).build()?),
            None => None,
        };
        Ok(Renderer { name, sd, pool })
    }

    fn render(&self, req: &Request) -> Vec<RgbImage> {
        let run = || {
            self.sd
                .generate(req, |_| {})
                .expect("the study's requests are valid")
        };
        match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }
}

struct Model {
    dir: PathBuf,
    steps: usize,
    guidance: f64,
    /// The other model a cheat runs instead.
    other: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model(name: &str, opts: &Options) -> Result<Model, Box<dyn std::error::Error>> {
    let shapes = repo().join("offchain-node/engine/shapes/model");
    match name {
        "shapes" => {
            let tmp = tempfile::tempdir()?;
            hydrogen_engine::tiny::write_model(tmp.path())?;
            Ok(Model {
                dir: shapes,
                steps: 12,
                guidance: 5.0,
                other: tmp.path().to_owned(),
                _tmp: Some(tmp),
            })
        }
        "sd15" => {
            let dir = opts.sd15.clone().ok_or(
                "the sd15 study needs SD 1.5's shape with random weights: \
                 python3 offchain-node/engine/scripts/sd15_random.py --out DIR, then --sd15 DIR",
            )?;
            Ok(Model {
                dir,
                steps: 4,
                guidance: 7.5,
                other: shapes,
                _tmp: None,
            })
        }
        other => Err(format!("unknown model {other} (shapes, sd15)").into()),
    }
}

/// The held-out prompts of the trained model (`shapes/prompts.json`).
fn prompts() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let path = repo().join("offchain-node/engine/shapes/prompts.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    Ok(list
        .iter()
        .filter_map(|p| p["prompt"].as_str().map(str::to_owned))
        .collect())
}

/// Renders `name`'s tasks and returns their pairs, handing each task's pairs
/// to `done` as soon as the task is finished (so an interrupted run keeps
/// what it did).
pub fn run(
    name: &str,
    opts: &Options,
    done: &mut dyn FnMut(&[Pair]) -> std::io::Result<()>,
) -> Result<Vec<Pair>, Box<dyn std::error::Error>> {
    let m = model(name, opts)?;
    let prompts = prompts()?;
    let all_cores = Renderer::load("cpu all cores", &m.dir, Backend::Cpu, Precision::F32, None)?;
    let cpu = |label, threads| Renderer::with(label, all_cores.sd.clone(), threads);
    // The CPU backend on every core, then on pools of other sizes (a node
    // with other cores splits the work otherwise).
    let mut honest = vec![
        cpu("cpu 1 thread", Some(1))?,
        cpu("cpu 3 threads", Some(3))?,
        cpu("cpu 4 threads", Some(4))?,
    ];
    honest.insert(0, all_cores);
    let cpu_renderers = honest.len();
    let tasks = opts.tasks.of(name);
    let lavapipe_tasks = if opts.lavapipe {
        opts.lavapipe_tasks.of(name)
    } else {
        0
    };
    if lavapipe_tasks > 0 {
        honest.push(Renderer::load(
            "lavapipe f32",
            &m.dir,
            Backend::WgpuSoftware,
            Precision::F32,
            None,
        )?);
        let device = Backend::WgpuSoftware.device();
        if Backend::WgpuSoftware.supports_f16(&device) {
            honest.push(Renderer::load(
                "lavapipe f16",
                &m.dir,
                Backend::WgpuSoftware,
                Precision::F16,
                None,
            )?);
        } else {
            eprintln!("{name}: lavapipe has no f16 here; no f16 renderings");
        }
    }
    let other = Renderer::load(
        "another model",
        &m.other,
        Backend::Cpu,
        Precision::F32,
        None,
    )?;
    let mut pairs = Vec::new();
    let first = opts.first_task;
    for task in first..first + tasks {
        let task_pairs = pairs.len();
        let (method, sched_name) = SCHEDULERS[task % SCHEDULERS.len()];
        let req = Request {
            prompt: prompts[task % prompts.len()].clone(),
            width: 64,
            height: 64,
            steps: m.steps,
            guidance: m.guidance,
            seed: task as u64,
            num_images: opts.images.get(name).unwrap_or(IMAGES) as u32,
            scheduler: method,
            ..Request::default()
        };
        let renderers = if task - first < lavapipe_tasks {
            &honest[..]
        } else {
            &honest[..cpu_renderers]
        };
        let renders: Vec<(&str, Vec<RgbImage>)> =
            renderers.iter().map(|r| (r.name, r.render(&req))).collect();
        let mut push = |honest: bool, variant: String, a: &[RgbImage], b: &[RgbImage]| {
            for (image, (x, y)) in a.iter().zip(b).enumerate() {
                pairs.push(Pair {
                    model: name.into(),
                    task,
                    image,
                    scheduler: sched_name,
                    honest,
                    variant: variant.clone(),
                    distance: hamming(phash(x), phash(y)),
                });
            }
        };
        for (i, (a, x)) in renders.iter().enumerate() {
            for (b, y) in &renders[i + 1..] {
                push(true, format!("{a} vs {b}"), x, y);
            }
        }
        let reference = &renders[0].1;
        let reference_cpu = &honest[0];
        let mut cheats: Vec<(&str, Vec<RgbImage>)> = vec![
            (
                "another seed",
                reference_cpu.render(&Request {
                    seed: req.seed + 1_000_000,
                    ..req.clone()
                }),
            ),
            (
                "half the steps",
                reference_cpu.render(&Request {
                    steps: (req.steps / 2).max(1),
                    ..req.clone()
                }),
            ),
            (
                "another prompt",
                reference_cpu.render(&Request {
                    prompt: prompts[(task + 1) % prompts.len()].clone(),
                    ..req.clone()
                }),
            ),
            ("another model", other.render(&req)),
            (
                "another scheduler",
                reference_cpu.render(&Request {
                    scheduler: SCHEDULERS[(task + 1) % SCHEDULERS.len()].0,
                    ..req.clone()
                }),
            ),
            (
                "JPEG q75 of the honest image",
                reference.iter().map(|i| jpeg(i, 75)).collect(),
            ),
            (
                "blurred (sigma 1) honest image",
                reference
                    .iter()
                    .map(|i| image::imageops::blur(i, 1.0))
                    .collect(),
            ),
        ];
        if let Some(images) = half_size_upscaled(reference_cpu, &req) {
            cheats.push(("half size, upscaled", images));
        }
        for (variant, images) in &cheats {
            push(false, variant.to_string(), reference, images);
        }
        done(&pairs[task_pairs..])?;
        let n = task + 1 - first;
        if n.is_multiple_of(10) || n == tasks {
            eprintln!("{name}: {n}/{tasks} tasks");
        }
    }
    Ok(pairs)
}

/// The task at half the width and height, scaled back up as a cheat would;
/// None where half the size is below the smallest the model takes (its
/// latent must halve once per UNet downsampling, down to 2x2).
fn half_size_upscaled(r: &Renderer, req: &Request) -> Option<Vec<RgbImage>> {
    let smallest = r.sd.vae_scale_factor() as u32 * 8;
    let (w, h) = (req.width / 2, req.height / 2);
    if w < smallest || h < smallest || w % smallest != 0 || h % smallest != 0 {
        return None;
    }
    let small = r.render(&Request {
        width: w,
        height: h,
        ..req.clone()
    });
    Some(
        small
            .iter()
            .map(|i| image::imageops::resize(i, req.width, req.height, FilterType::Lanczos3))
            .collect(),
    )
}

fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(img)
        .expect("JPEG-encoding an RGB image");
    image::load_from_memory(&bytes)
        .expect("decoding our own JPEG")
        .to_rgb8()
}
