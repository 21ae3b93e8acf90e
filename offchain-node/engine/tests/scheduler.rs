//! Schedulers against diffusers 0.42.1: `data/scheduler_reference.json` was
//! written by `scripts/scheduler_reference.py` with diffusers' own classes.
//! A case `method/steps [label]` with `args` runs the config with those
//! overrides, as a task's `scheduler.args`.

use burn::tensor::{Device, Tensor, TensorData};
use hydrogen_engine::config::SchedulerConfig;
use hydrogen_engine::scheduler::{alphas_cumprod, Method, Scheduler};
use serde_json::{json, Value};

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

/// The scheduler of one reference case: its method, steps and config with the case's args.
fn scheduler(config: &Value, case: &str, want: &Value) -> (Method, Scheduler) {
    let (method, rest) = case.split_once('/').expect("method/steps");
    let steps = rest.split(' ').next().expect("steps");
    let method: Method = method.parse().expect("method");
    let mut cfg: SchedulerConfig = serde_json::from_value(config.clone()).expect("config");
    if let Some(args) = want.get("args") {
        cfg = cfg
            .with_overrides(args.as_object().expect("args object"))
            .expect("args");
    }
    let s = Scheduler::new(&cfg, method, steps.parse().expect("steps")).expect("scheduler");
    (method, s)
}

#[test]
fn alphas_cumprod_match_diffusers() {
    for (name, c) in reference()["configs"].as_object().expect("configs") {
        let cfg: SchedulerConfig = serde_json::from_value(c["config"].clone()).expect("config");
        // The reference's are DDIMScheduler's (the same for every class but for
        // the zero-SNR tweak of the sigma-based ones, which the sigmas check).
        close(
            &format!("{name} alphas_cumprod"),
            &alphas_cumprod(&cfg, Method::Ddim).expect("schedule"),
            &floats(&c["alphas_cumprod"]),
            1e-5,
        );
    }
}

#[test]
fn timesteps_sigmas_and_scales_match_diffusers() {
    for (name, c) in reference()["configs"].as_object().expect("configs") {
        for (case, want) in c["cases"].as_object().expect("cases") {
            let (method, s) = scheduler(&c["config"], case, want);
            let what = format!("{name} {case}");
            // Euler's Karras timesteps are fractional, interpolated between
            // log-sigmas that diffusers computes in f32 from an f32 schedule: they
            // agree to about a thousandth of a training step (the sigmas they come
            // from are checked to 1e-5 below), not exactly.
            let karras_euler =
                method == Method::Euler && want["args"]["use_karras_sigmas"] == Value::Bool(true);
            if karras_euler {
                let ts = floats(&want["timesteps"]);
                assert_eq!(s.timesteps().len(), ts.len(), "{what} timesteps: length");
                for (i, (g, w)) in s.timesteps().iter().zip(&ts).enumerate() {
                    assert!(
                        (g - w).abs() <= 2e-3,
                        "{what} timesteps[{i}]: got {g}, diffusers {w}"
                    );
                }
            } else {
                close(
                    &format!("{what} timesteps"),
                    s.timesteps(),
                    &floats(&want["timesteps"]),
                    1e-9,
                );
            }
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
            // DDIM and LCM have no sigmas.
            if !matches!(method, Method::Ddim | Method::Lcm) {
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
        for (case, want) in c["cases"].as_object().expect("cases") {
            let (_, mut s) = scheduler(&c["config"], case, want);
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

#[test]
fn unimplemented_options_are_refused_by_name() {
    let base = SchedulerConfig::default();
    let cases = [
        ("dpm++2m", json!({"solver_order": 4}), "solver_order"),
        (
            "dpm++2m",
            json!({"algorithm_type": "sde-dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"}),
            "solver_order",
        ),
        (
            "dpm++2m",
            json!({"algorithm_type": "dpmsolver"}),
            "final_sigmas_type",
        ),
        (
            "dpm++2m",
            json!({"algorithm_type": "deis"}),
            "final_sigmas_type",
        ),
        (
            "dpm++2m",
            json!({"algorithm_type": "edm"}),
            "algorithm_type",
        ),
        ("dpm++2m", json!({"solver_type": "euler"}), "solver_type"),
        (
            "dpm++2m",
            json!({"lambda_min_clipped": 100.0}),
            "lambda_min_clipped",
        ),
        (
            "euler",
            json!({"num_train_timesteps": 1}),
            "num_train_timesteps",
        ),
        ("dpm++2m", json!({"thresholding": true}), "thresholding"),
        (
            "dpm++2m",
            json!({"variance_type": "learned_range"}),
            "variance_type",
        ),
        (
            "dpm++2m",
            json!({"prediction_type": "flow_prediction"}),
            "prediction_type",
        ),
        (
            "dpm++2m",
            json!({"final_sigmas_type": "one"}),
            "final_sigmas_type",
        ),
        ("euler", json!({"use_beta_sigmas": true}), "use_beta_sigmas"),
        (
            "euler",
            json!({"interpolation_type": "log_linear"}),
            "interpolation_type",
        ),
        (
            "euler_a",
            json!({"prediction_type": "sample"}),
            "prediction_type",
        ),
        (
            "euler",
            json!({"timestep_spacing": "uniform"}),
            "timestep_spacing",
        ),
        ("ddim", json!({"beta_schedule": "sigmoid"}), "beta_schedule"),
        (
            "ddim",
            json!({"trained_betas": [0.1, 0.2]}),
            "trained_betas",
        ),
        ("ddim", json!({"steps_offset": 1000}), "steps_offset"),
        (
            "lcm",
            json!({"original_inference_steps": 20}),
            "original_inference_steps",
        ),
        ("lcm", json!({"thresholding": true}), "thresholding"),
    ];
    for (method, args, name) in cases {
        let cfg = base
            .with_overrides(args.as_object().expect("object"))
            .expect("known args");
        let err = match Scheduler::new(&cfg, method.parse().expect("method"), 25) {
            Ok(_) => panic!("{method} {args} should be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(name), "{method} {args}: {err}");
    }
}

#[test]
fn options_a_class_does_not_take_are_ignored_as_diffusers_does() {
    let base = SchedulerConfig::default();
    for (method, args) in [
        ("euler", json!({"thresholding": true, "solver_order": 9})),
        (
            "euler_a",
            json!({"use_karras_sigmas": true, "use_beta_sigmas": true}),
        ),
        (
            "ddim",
            json!({"use_karras_sigmas": true, "algorithm_type": "edm"}),
        ),
        (
            "lcm",
            json!({"final_sigmas_type": "one", "timestep_spacing": "uniform"}),
        ),
    ] {
        let cfg = base
            .with_overrides(args.as_object().expect("object"))
            .expect("known args");
        Scheduler::new(&cfg, method.parse().expect("method"), 4)
            .unwrap_or_else(|e| panic!("{method} {args}: {e}"));
    }
}
