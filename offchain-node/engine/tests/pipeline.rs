//! The whole pipeline on diffusers' unit-test-sized model, on the CPU backend:
//! loaded from diffusers-layout safetensors through the real loader and
//! compared with what diffusers itself generated from the same weights and noise.

mod common;

use common::{reference, write_tiny_model, write_tiny_model_with, Variant};
use hydrogen_engine::{Backend, Error, Method, Precision, Request, StableDiffusion};
use hydrogen_sdk::phash::{hamming, phash};
use image::RgbImage;

fn request(case: &serde_json::Value) -> Request {
    Request {
        prompt: case["prompt"].as_str().expect("prompt").into(),
        negative_prompt: case["negative_prompt"].as_str().expect("negative").into(),
        width: case["width"].as_u64().expect("width") as u32,
        height: case["height"].as_u64().expect("height") as u32,
        steps: case["steps"].as_u64().expect("steps") as usize,
        guidance: case["guidance"].as_f64().expect("guidance"),
        seed: case["seed"].as_u64().expect("seed"),
        num_images: case["num_images"].as_u64().expect("n") as u32,
        scheduler: case["scheduler"]
            .as_str()
            .expect("scheduler")
            .parse()
            .expect("method"),
        scheduler_args: Default::default(),
    }
}

fn load(dir: &std::path::Path) -> StableDiffusion {
    StableDiffusion::load(dir, &Backend::Cpu.device(), Precision::F32).expect("load tiny model")
}

/// Largest and mean absolute difference in 8-bit levels.
fn diff(ours: &RgbImage, theirs: &[u8]) -> (u8, f64) {
    assert_eq!(ours.as_raw().len(), theirs.len());
    let d: Vec<u8> = ours
        .as_raw()
        .iter()
        .zip(theirs)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    (
        *d.iter().max().expect("pixels"),
        d.iter().map(|&x| f64::from(x)).sum::<f64>() / d.len() as f64,
    )
}

#[test]
fn tiny_pipeline_matches_diffusers() {
    let model = write_tiny_model("match", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    for case in reference()["cases"].as_array().expect("cases") {
        let req = request(case);
        let mut steps_seen = 0;
        let images = sd.generate(&req, |_| steps_seen += 1).expect("generate");
        assert_eq!(images.len(), req.num_images as usize);
        assert_eq!(steps_seen, req.steps * req.num_images as usize);
        for (i, (img, want)) in images
            .iter()
            .zip(case["images_hwc_u8"].as_array().expect("images"))
            .enumerate()
        {
            assert_eq!((img.width(), img.height()), (req.width, req.height));
            let want: Vec<u8> = want
                .as_array()
                .expect("pixels")
                .iter()
                .map(|v| v.as_u64().expect("u8") as u8)
                .collect();
            let (max, mean) = diff(img, &want);
            println!(
                "{:?} image {i}: max |ours - diffusers| = {max} levels, mean {mean:.3}",
                req.scheduler
            );
            // Two f32 implementations summing in different orders: a pixel may round the other way.
            assert!(
                max <= 2 && mean < 0.05,
                "{:?} image {i}: max {max}, mean {mean}",
                req.scheduler
            );
        }
    }
}

#[test]
fn same_seed_is_byte_identical_and_other_seeds_differ() {
    let model = write_tiny_model("seeds", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let req = Request {
        prompt: "a red barn".into(),
        negative_prompt: String::new(),
        width: 64,
        height: 64,
        steps: 4,
        guidance: 7.5,
        seed: 1234,
        num_images: 2,
        scheduler: Method::EulerAncestral,
        scheduler_args: Default::default(),
    };
    let a = sd.generate(&req, |_| {}).expect("generate");
    let b = sd.generate(&req, |_| {}).expect("generate");
    assert_eq!(a[0].as_raw(), b[0].as_raw());
    assert_eq!(a[1].as_raw(), b[1].as_raw());
    // Image index is part of the noise key, so the two images of a task differ too.
    assert_ne!(a[0].as_raw(), a[1].as_raw());
    let other = sd
        .generate(
            &Request {
                seed: 99,
                ..req.clone()
            },
            |_| {},
        )
        .expect("generate");
    let d = hamming(phash(&a[0]), phash(&other[0]));
    println!("pHash distance between seeds 1234 and 99: {d} bits");
    assert!(d > 0);
}

/// The CPU backend splits its work across threads by rows and elements, never
/// inside a sum: a node's images must not depend on how many cores it has.
#[test]
fn cpu_images_do_not_depend_on_the_thread_count() {
    let model = write_tiny_model("threads", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let req = Request {
        prompt: "a lighthouse on a cliff at dusk".into(),
        negative_prompt: "blurry".into(),
        width: 64,
        height: 64,
        steps: 3,
        guidance: 7.5,
        seed: 5,
        num_images: 1,
        scheduler: Method::DpmSolverMultistep,
        scheduler_args: Default::default(),
    };
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| sd.generate(&req, |_| {}).expect("generate"))
    };
    let one = on(1);
    for threads in [2, 3] {
        assert_eq!(
            one[0].as_raw(),
            on(threads)[0].as_raw(),
            "1 vs {threads} threads"
        );
    }
}

#[test]
fn fp16_variant_files_and_older_key_names_load() {
    let rename = |t: &mut Vec<(String, Vec<usize>)>| {
        for (name, _) in t.iter_mut() {
            for (new, old) in [
                (".to_q.", ".query."),
                (".to_k.", ".key."),
                (".to_v.", ".value."),
                (".to_out.0.", ".proj_attn."),
            ] {
                *name = name.replace(new, old);
            }
        }
    };
    // Released checkpoints (saved by transformers 4) prefix the text encoder's keys with `text_model.`.
    let prefix = |t: &mut Vec<(String, Vec<usize>)>| {
        t.iter_mut()
            .for_each(|(n, _)| *n = format!("text_model.{n}"))
    };
    let model = write_tiny_model_with("fp16-old-names", Variant::Fp16, &rename, &prefix);
    let sd = load(&model.dir);
    let case = &reference()["cases"][0];
    let images = sd.generate(&request(case), |_| {}).expect("generate");
    let want: Vec<u8> = case["images_hwc_u8"][0]
        .as_array()
        .expect("px")
        .iter()
        .map(|v| v.as_u64().expect("u8") as u8)
        .collect();
    // f16-rounded weights computed in f32: close to, not equal to, the f32 reference.
    let (max, mean) = diff(&images[0], &want);
    println!("fp16 weight files: max {max} levels, mean {mean:.3}");
    assert!(mean < 2.0, "mean {mean}");
}

#[test]
fn loading_names_the_missing_extra_or_misshaped_tensor() {
    let missing = write_tiny_model("missing", Variant::F32, &|t| {
        t.retain(|(n, _)| n != "decoder.conv_in.bias")
    });
    let err = StableDiffusion::load(&missing.dir, &Backend::Cpu.device(), Precision::F32)
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name == "decoder.conv_in.bias"),
        "{err}"
    );

    let extra = write_tiny_model("extra", Variant::F32, &|t| {
        t.push(("decoder.stray.weight".into(), vec![3]))
    });
    let err = StableDiffusion::load(&extra.dir, &Backend::Cpu.device(), Precision::F32)
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("decoder.stray.weight"), "{err}");

    let shape = write_tiny_model("shape", Variant::F32, &|t| {
        for (n, s) in t.iter_mut() {
            if n == "decoder.conv_out.weight" {
                s[0] = 4;
            }
        }
    });
    let err = StableDiffusion::load(&shape.dir, &Backend::Cpu.device(), Precision::F32)
        .err()
        .expect("must fail");
    assert!(
        matches!(&err, Error::Shape { name, found, .. } if name == "decoder.conv_out.weight" && found[0] == 4),
        "{err}"
    );
}

#[test]
fn sizes_must_be_multiples_of_eight() {
    let model = write_tiny_model("sizes", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let req = request(&reference()["cases"][0]);
    let err = sd
        .generate(&Request { width: 60, ..req }, |_| {})
        .expect_err("must fail");
    assert!(matches!(err, Error::Request(_)), "{err}");
}

/// A task's `scheduler.args` reach the sampler (LCM on fewer distillation
/// steps picks other timesteps), and one no sampler takes is refused by name.
#[test]
fn scheduler_args_reach_the_sampler() {
    let model = write_tiny_model("scheduler-args", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let req = Request {
        prompt: "a red barn".into(),
        width: 64,
        height: 64,
        steps: 2,
        guidance: 1.0,
        seed: 7,
        num_images: 1,
        scheduler: Method::Lcm,
        ..Default::default()
    };
    let args = |v: serde_json::Value| v.as_object().expect("object").clone();
    let default = sd.generate(&req, |_| {}).expect("generate");
    let five = Request {
        scheduler_args: args(serde_json::json!({"original_inference_steps": 5})),
        ..req.clone()
    };
    let five = sd.generate(&five, |_| {}).expect("generate");
    assert_ne!(default[0].as_raw(), five[0].as_raw());
    let eta = Request {
        scheduler_args: args(serde_json::json!({"eta": 0.5})),
        ..req
    };
    let err = sd.generate(&eta, |_| {}).expect_err("refused");
    assert!(
        matches!(&err, Error::Request(m) if m.contains("`eta`")),
        "{err}"
    );
}
