//! Schedulers against diffusers 0.42.1: `data/scheduler_reference.json` was
//! written by `scripts/scheduler_reference.py` with diffusers' own classes.

use burn::tensor::{Device, Tensor, TensorData};
use hydrogen_engine::config::SchedulerConfig;
use hydrogen_engine::scheduler::{alphas_cumprod, Method, Scheduler};
use serde_json::Value;

const SHAPE: [usize; 4] = [1, 2, 2, 2];

fn reference() -> Value {
    serde_json::from_str(include_str!("data/scheduler_reference.json")).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(1.0);
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, diffusers {w}");
    }
}

fn tensor(values: Vec<f64>, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, SHAPE), device)
}

fn host(t: Tensor<4>) -> Vec<f64> {
    t.into_data()
        .try_to_vec::<f32>()
        .expect("f32")
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn alphas_cumprod_match_diffusers() {
    for (name, c) in reference()["configs"].as_object().expect("configs") {
        let cfg: SchedulerConfig = serde_json::from_value(c["config"].clone()).expect("config");
        close(
            &format!("{name} alphas_cumprod"),
            &alphas_cumprod(&cfg).expect("schedule"),
            &floats(&c["alphas_cumprod"]),
            1e-5,
        );
    }
}

#[test]
fn timesteps_sigmas_and_scales_match_diffusers() {
    for (name, c) in reference()["configs"].as_object().expect("configs") {
        let cfg: SchedulerConfig = serde_json::from_value(c["config"].clone()).expect("config");
        for (case, want) in c["cases"].as_object().expect("cases") {
            let (method, steps) = case.split_once('/').expect("method/steps");
            let s = Scheduler::new(
                &cfg,
                method.parse::<Method>().expect("method"),
                steps.parse().expect("steps"),
            )
            .expect("scheduler");
            let what = format!("{name} {case}");
            close(
                &format!("{what} timesteps"),
                s.timesteps(),
                &floats(&want["timesteps"]),
                1e-9,
            );
            close(
                &format!("{what} init_noise_sigma"),
                &[s.init_noise_sigma()],
                &[want["init_noise_sigma"].as_f64().expect("f")],
                1e-5,
            );
            let scales: Vec<f64> = (0..s.timesteps().len()).map(|i| s.input_scale(i)).collect();
            close(
                &format!("{what} input scales"),
                &scales,
                &floats(&want["input_scales"]),
                1e-5,
            );
            if method != "ddim" {
                close(
                    &format!("{what} sigmas"),
                    s.sigmas(),
                    &floats(&want["sigmas"]),
                    1e-5,
                );
            }
        }
    }
}

/// The synthetic denoiser of the reference script.
fn model(x: &[f64], t: f64) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(k, v)| 0.3 * v + 0.1 * (t / 100.0 + k as f64).sin())
        .collect()
}

#[test]
fn sampling_trajectories_match_diffusers() {
    let device = Device::flex();
    let r = reference();
    let start = floats(&r["start"]);
    for (name, c) in r["configs"].as_object().expect("configs") {
        let cfg: SchedulerConfig = serde_json::from_value(c["config"].clone()).expect("config");
        for (case, want) in c["cases"].as_object().expect("cases") {
            let (method, steps) = case.split_once('/').expect("method/steps");
            let mut s = Scheduler::new(
                &cfg,
                method.parse().expect("method"),
                steps.parse().expect("steps"),
            )
            .expect("scheduler");
            let mut x: Vec<f64> = start.iter().map(|v| v * s.init_noise_sigma()).collect();
            for i in 0..s.timesteps().len() {
                let out = model(&x, s.timesteps()[i]);
                let noise = s.needs_noise().then(|| {
                    tensor(
                        (0..8).map(|k| (k as f64 * 0.7 + i as f64).cos()).collect(),
                        &device,
                    )
                });
                x = host(s.step(i, tensor(x, &device), tensor(out, &device), noise));
            }
            close(
                &format!("{name} {case} final sample"),
                &x,
                &floats(&want["final"]),
                2e-4,
            );
        }
    }
}
