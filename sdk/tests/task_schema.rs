//! The Stable Diffusion task schema against tasks in the reference network's
//! format: parsing, defaults, bounds, unsupported and unknown fields,
//! canonical bytes, the args hash, and the published JSON Schema.

use std::path::PathBuf;

use hydrogen_sdk::task::{
    self, args_hash_of, BaseModel, Dtype, ModelFamily, SchedulerMethod, Strength, TaskArgs,
    TaskArgsError, TaskConfig, Version,
};
use serde_json::{json, Value};

/// A 1.x task: `base_model` an id, no version, no scheduler.
const SD15_TASK: &str = r#"{
    "base_model": "runwayml/stable-diffusion-v1-5",
    "prompt": "a lighthouse on a cliff at dusk, oil painting, dramatic clouds, (warm light)++",
    "negative_prompt": "blurry, low quality, watermark",
    "task_config": {
        "num_images": 9,
        "steps": 40
    }
}"#;

/// A later-format SDXL task: versioned, `base_model {name, variant}`, a
/// scheduler, a replacement VAE.
const SDXL_TASK: &str = r#"{
    "version": "2.5.0",
    "base_model": {
        "name": "stabilityai/stable-diffusion-xl-base-1.0",
        "variant": "fp16"
    },
    "prompt": "isometric diorama of a tiny bakery, soft studio lighting, highly detailed",
    "negative_prompt": "",
    "task_config": {
        "image_width": 1024,
        "image_height": 1024,
        "steps": 30,
        "seed": 58317,
        "num_images": 2,
        "safety_checker": false,
        "cfg": 7
    },
    "scheduler": {
        "method": "EulerAncestralDiscreteScheduler",
        "args": {}
    },
    "vae": "madebyollin/sdxl-vae-fp16-fix"
}"#;

/// A reference task with a LoRA by URL, its weight a percent.
const LORA_TASK: &str = r#"{
    "version": "2.1.0",
    "base_model": {"name": "runwayml/stable-diffusion-v1-5"},
    "prompt": "a cute corgi in a spacesuit, pixel art",
    "task_config": {"num_images": 4, "seed": 1024, "cfg": 7.5},
    "lora": {
        "model": "https://civitai.com/api/download/models/34562",
        "weight_file_name": "",
        "weight": 80
    },
    "textual_inversion": ""
}"#;

fn minimal() -> Value {
    json!({
        "base_model": "runwayml/stable-diffusion-v1-5",
        "prompt": "a cat",
        "task_config": {}
    })
}

/// `minimal()` with the value at JSON pointer `pointer` set to `value`.
fn with(pointer: &str, value: Value) -> String {
    let mut task = minimal();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    task.pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} is in the minimal task"))
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    task.to_string()
}

fn error_of(json: &str) -> TaskArgsError {
    TaskArgs::from_json(json).expect_err("the task should be refused")
}

#[test]
fn reference_sd15_task_parses_with_reference_defaults() {
    let args = TaskArgs::from_json(SD15_TASK).unwrap();
    assert_eq!(args.version, None);
    assert_eq!(
        args.base_model,
        BaseModel::from("runwayml/stable-diffusion-v1-5")
    );
    assert_eq!(args.negative_prompt, "blurry, low quality, watermark");
    assert_eq!(
        args.task_config,
        TaskConfig {
            num_images: 9,
            steps: 40,
            ..TaskConfig::default()
        }
    );
    assert_eq!(args.scheduler.method, SchedulerMethod::DpmSolverMultistep);
    assert_eq!(args.num_images(), 9);
    assert_eq!(args.min_vram_gb(), 8);
}

#[test]
fn reference_sdxl_task_parses_with_model_spec_and_scheduler_then_sdxl_is_refused() {
    let err = error_of(SDXL_TASK);
    assert!(matches!(err, TaskArgsError::Unsupported { .. }), "{err:?}");
    assert_eq!(err.path(), "base_model.name");
    assert_eq!(
        err.to_string(),
        "`base_model.name` stabilityai/stable-diffusion-xl-base-1.0 looks like an SDXL model; \
         SDXL is not supported yet"
    );
    let args: TaskArgs = serde_json::from_str(SDXL_TASK).unwrap();
    assert_eq!(args.version, Some(Version::V2_5_0));
    assert_eq!(
        args.base_model.name(),
        "stabilityai/stable-diffusion-xl-base-1.0"
    );
    assert_eq!(args.base_model.variant(), Some("fp16"));
    assert_eq!(args.base_model.family(), ModelFamily::Sdxl);
    assert_eq!(
        args.scheduler.method,
        SchedulerMethod::EulerAncestralDiscrete
    );
    assert_eq!(args.vae, "madebyollin/sdxl-vae-fp16-fix");
    assert_eq!(args.task_config.cfg, 7.0);
    assert!(!args.task_config.safety_checker);
    assert_eq!(args.num_images(), 2);
    assert_eq!(
        args.min_vram_gb(),
        11,
        "SDXL at 1024 x 1024 needs more than its floor"
    );
}

/// The reference's own SD 1.5 examples (crynux-ai/stable-diffusion-task
/// 3.0.0, `examples/sd15*.py`), as their dicts serialize to JSON.
const REFERENCE_EXAMPLES: &[(&str, &str)] = &[
    (
        "sd15_lora",
        r#"{"version": "2.0.0", "base_model": {"name": "emilianJR/chilloutmix_NiPrunedFp32Fix", "variant": null},
            "prompt": "a portrait", "negative_prompt": "low quality",
            "task_config": {"num_images": 9, "safety_checker": false, "steps": 40},
            "lora": {"model": "https://civitai.com/api/download/models/31284", "weight": 70}}"#,
    ),
    (
        "sd15_lora_downloaded",
        r#"{"version": "2.0.0", "base_model": {"name": "emilianJR/chilloutmix_NiPrunedFp32Fix", "variant": null},
            "prompt": "a portrait", "negative_prompt": "low quality",
            "task_config": {"num_images": 9, "safety_checker": false, "cfg": 8, "seed": 2116617370, "steps": 28},
            "lora": {"model": "https://civitai.com/api/download/models/34562", "weight": 70}}"#,
    ),
    (
        "sd15_lcm_lora",
        r#"{"version": "2.0.0", "base_model": {"name": "runwayml/stable-diffusion-v1-5"},
            "prompt": "a portrait", "negative_prompt": "",
            "task_config": {"num_images": 9, "safety_checker": false, "steps": 4, "cfg": 1},
            "lora": {"model": "latent-consistency/lcm-lora-sdv1-5", "weight": 70},
            "scheduler": {"method": "LCMScheduler"}}"#,
    ),
    (
        "sd15_textual_inversion",
        r#"{"version": "2.0.0", "base_model": {"name": "runwayml/stable-diffusion-v1-5"},
            "prompt": "a <cat-toy> on a shelf", "textual_inversion": "sd-concepts-library/cat-toy",
            "task_config": {"num_images": 9, "steps": 40}}"#,
    ),
    (
        "sd15",
        r#"{"version": "2.0.0", "base_model": {"name": "runwayml/stable-diffusion-v1-5"},
            "prompt": "a portrait", "negative_prompt": "",
            "task_config": {"num_images": 9, "safety_checker": false, "cfg": 7, "seed": 99975892, "steps": 40}}"#,
    ),
];

#[test]
fn the_reference_sd15_examples_validate() {
    for (name, json) in REFERENCE_EXAMPLES {
        let args = TaskArgs::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(lora) = &args.lora {
            assert_eq!(lora.weight.fraction(), 0.7, "{name}");
        }
    }
}

#[test]
fn reference_lora_task_validates() {
    let parsed = TaskArgs::from_json(LORA_TASK).unwrap();
    let lora = parsed.lora.as_ref().unwrap();
    assert_eq!(lora.weight, Strength::Integer(80));
    assert_eq!(lora.weight.fraction(), 0.8);
    assert_eq!(parsed.task_config.cfg, 7.5);
}

#[test]
fn lora_weight_follows_the_reference_rule_and_is_kept_as_written() {
    // The reference's `FloatFractionAsInt`: above 1 a percent, else a fraction.
    for (weight, fraction) in [
        (json!(80), 0.8),
        (json!(80.0), 0.8),
        (json!(1.5), 0.015),
        (json!(0.8), 0.8),
        (json!(1.0), 1.0),
        (json!(1), 1.0),
        (json!(100), 1.0),
    ] {
        let json = with("/lora", json!({"model": "m", "weight": weight}));
        let args = TaskArgs::from_json(&json).unwrap_or_else(|e| panic!("{weight}: {e}"));
        assert_eq!(
            args.lora.as_ref().unwrap().weight.fraction(),
            fraction,
            "{weight}"
        );
        let canonical = String::from_utf8(args.to_canonical_json()).unwrap();
        assert!(
            canonical.contains(&format!(r#""weight":{weight}"#)),
            "{weight} is written as given: {canonical}"
        );
        assert_eq!(TaskArgs::from_json(&canonical).unwrap(), args);
    }
    for (weight, message) in [
        (json!(0), "lora.weight: must be between 1 and 100, got 0"),
        (
            json!(0.0),
            "lora.weight: must be above 0 and at most 100, got 0",
        ),
        (
            json!(100.5),
            "lora.weight: must be above 0 and at most 100, got 100.5",
        ),
        (
            json!(101),
            "lora.weight: must be between 1 and 100, got 101",
        ),
        (json!(-3), "must be above 0 and at most 100, got -3"),
        (json!("80"), "invalid type: string"),
    ] {
        let err = error_of(&with("/lora", json!({"model": "m", "weight": weight})));
        assert!(err.to_string().contains(message), "{weight}: {err}");
        assert!(err.path().starts_with("lora"), "{weight}: {}", err.path());
    }
}

#[test]
fn every_default_is_the_reference_default() {
    let args = TaskArgs::from_json(&minimal().to_string()).unwrap();
    assert_eq!(
        args,
        TaskArgs::new("runwayml/stable-diffusion-v1-5", "a cat")
    );
    let c = &args.task_config;
    assert_eq!((c.image_width, c.image_height), (512, 512));
    assert_eq!((c.steps, c.seed, c.num_images), (25, 0, 6));
    assert!(c.safety_checker);
    assert_eq!(c.cfg, 5.0);
    assert_eq!(args.negative_prompt, "");
    assert_eq!(args.vae, "");
    assert_eq!(args.textual_inversion, "");
    assert_eq!(args.dtype, Dtype::Auto);
    assert_eq!(args.scheduler.method, SchedulerMethod::DpmSolverMultistep);
    assert_eq!(args.scheduler.args, None);
}

#[test]
fn extension_defaults_are_the_reference_defaults() {
    let task =
        |field: &str, value: Value| serde_json::from_str::<TaskArgs>(&with(field, value)).unwrap();
    let lora = task("/lora", json!({"model": "m"})).lora.unwrap();
    assert_eq!(
        (lora.weight, lora.weight_file_name.as_str()),
        (Strength::Integer(100), "")
    );
    let controlnet = task(
        "/controlnet",
        json!({"model": "m", "image_dataurl": "data:image/png;base64,AAAA"}),
    )
    .controlnet
    .unwrap();
    assert_eq!((controlnet.weight, controlnet.preprocess), (70, None));
    let refiner = task("/refiner", json!({"model": "m"})).refiner.unwrap();
    assert_eq!((refiner.denoising_cutoff, refiner.steps), (80, 20));
}

#[test]
fn every_bound_violated_names_its_path() {
    let cases = [
        ("/prompt", json!(""), "prompt: must not be empty"),
        ("/base_model", json!(""), "base_model: must not be empty"),
        (
            "/base_model",
            json!({"name": ""}),
            "base_model.name: must not be empty",
        ),
        (
            "/task_config/image_width",
            json!(0),
            "task_config.image_width: must be a positive multiple of 8, got 0",
        ),
        (
            "/task_config/image_width",
            json!(500),
            "task_config.image_width: must be a positive multiple of 8, got 500",
        ),
        (
            "/task_config/image_height",
            json!(1023),
            "task_config.image_height: must be a positive multiple of 8, got 1023",
        ),
        (
            "/task_config/steps",
            json!(0),
            "task_config.steps: must be between 1 and 100, got 0",
        ),
        (
            "/task_config/steps",
            json!(101),
            "task_config.steps: must be between 1 and 100, got 101",
        ),
        (
            "/task_config/seed",
            json!(2147483648u64),
            "task_config.seed: must be between 0 and 2147483647, got 2147483648",
        ),
        (
            "/task_config/num_images",
            json!(0),
            "task_config.num_images: must be between 1 and 10, got 0",
        ),
        (
            "/task_config/num_images",
            json!(11),
            "task_config.num_images: must be between 1 and 10, got 11",
        ),
        (
            "/task_config/cfg",
            json!(-0.5),
            "task_config.cfg: must be between 0 and 20, got -0.5",
        ),
        (
            "/task_config/cfg",
            json!(20.5),
            "task_config.cfg: must be between 0 and 20, got 20.5",
        ),
        (
            "/lora",
            json!({"model": ""}),
            "lora.model: must not be empty",
        ),
        (
            "/lora",
            json!({"model": "m", "weight": 0}),
            "lora.weight: must be between 1 and 100, got 0",
        ),
        (
            "/lora",
            json!({"model": "m", "weight": 101}),
            "lora.weight: must be between 1 and 100, got 101",
        ),
        (
            "/controlnet",
            json!({"model": "m", "image_dataurl": "http://x/y.png"}),
            "controlnet.image_dataurl: must be a data URL, data:image/<type>;base64,<data>",
        ),
        (
            "/controlnet",
            json!({"model": "m", "image_dataurl": "data:image/png;base64,AA", "weight": 0}),
            "controlnet.weight: must be between 1 and 100, got 0",
        ),
        (
            "/refiner",
            json!({"model": "m", "denoising_cutoff": 0}),
            "refiner.denoising_cutoff: must be between 1 and 100, got 0",
        ),
        (
            "/refiner",
            json!({"model": "m", "steps": 101}),
            "refiner.steps: must be between 1 and 100, got 101",
        ),
    ];
    for (pointer, value, expected) in cases {
        let err = error_of(&with(pointer, value));
        assert!(
            matches!(err, TaskArgsError::Invalid { .. }),
            "{pointer}: {err:?}"
        );
        assert_eq!(err.to_string(), expected, "{pointer}");
    }
}

#[test]
fn bounds_are_inclusive() {
    let edges = [
        ("/task_config/steps", json!(1)),
        ("/task_config/steps", json!(100)),
        ("/task_config/seed", json!(2147483647u64)),
        ("/task_config/num_images", json!(1)),
        ("/task_config/num_images", json!(10)),
        ("/task_config/cfg", json!(0)),
        ("/task_config/cfg", json!(20.0)),
        ("/task_config/image_width", json!(8)),
    ];
    for (pointer, value) in edges {
        TaskArgs::from_json(&with(pointer, value.clone()))
            .unwrap_or_else(|e| panic!("{pointer} = {value}: {e}"));
    }
}

#[test]
fn values_of_the_wrong_type_name_their_path() {
    let cases = [
        ("/task_config/steps", json!(-1), "task_config.steps"),
        ("/task_config/seed", json!(-1), "task_config.seed"),
        ("/task_config/steps", json!(2.5), "task_config.steps"),
        (
            "/task_config/safety_checker",
            json!("yes"),
            "task_config.safety_checker",
        ),
        ("/prompt", json!(3), "prompt"),
        ("/base_model", json!(["a"]), "base_model"),
        ("/version", json!("9.9.9"), "version"),
        (
            "/scheduler",
            json!({"method": "PNDMScheduler"}),
            "scheduler.method",
        ),
        ("/dtype", json!("int8"), "dtype"),
    ];
    for (pointer, value, path) in cases {
        let err = error_of(&with(pointer, value));
        assert!(
            matches!(err, TaskArgsError::Malformed { .. }),
            "{pointer}: {err:?}"
        );
        assert_eq!(err.path(), path, "{err}");
        assert!(err.to_string().starts_with(&format!("{path}: ")), "{err}");
    }
}

#[test]
fn missing_required_fields_are_named() {
    for field in ["base_model", "prompt", "task_config"] {
        let mut task = minimal();
        task.as_object_mut().unwrap().remove(field);
        let err = error_of(&task.to_string());
        assert!(
            err.to_string()
                .contains(&format!("missing field `{field}`")),
            "{err}"
        );
    }
    let err = error_of(&with("/lora", json!({"weight": 50})));
    assert_eq!(err.path(), "lora");
    assert!(err.to_string().contains("missing field `model`"), "{err}");
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let cases = [
        (
            "/base_model",
            json!("stabilityai/sdxl-turbo"),
            "`base_model` stabilityai/sdxl-turbo looks like an SDXL model; SDXL is not supported yet",
        ),
        (
            "/controlnet",
            json!({
                "model": "lllyasviel/sd-controlnet-canny",
                "image_dataurl": "data:image/png;base64,iVBORw0KGgo=",
                "weight": 70,
                "preprocess": {"method": "canny", "args": {"low_threshold": 100, "high_threshold": 200}}
            }),
            "`controlnet` is not supported yet",
        ),
        (
            "/refiner",
            json!({"model": "stabilityai/stable-diffusion-xl-refiner-1.0", "variant": "fp16", "denoising_cutoff": 80, "steps": 20}),
            "`refiner` is not supported yet",
        ),
        (
            "/unet",
            json!("latent-consistency/lcm-sdxl"),
            "`unet` is not supported yet",
        ),
        ("/dtype", json!("float16"), "`dtype` is not supported yet"),
        (
            "/scheduler",
            json!({"method": "LCMScheduler", "args": {"thresholding": true}}),
            "`scheduler.args.thresholding` true is not supported yet: dynamic thresholding \
             is not implemented (false is)",
        ),
        (
            "/scheduler",
            json!({"method": "DPMSolverMultistepScheduler", "args": {
                "algorithm_type": "sde-dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"
            }}),
            "`scheduler.args.solver_order` 3 is not supported with algorithm_type \
             sde-dpmsolver (1 and 2 are; diffusers has no third order for it)",
        ),
        (
            "/scheduler",
            json!({"method": "EulerAncestralDiscreteScheduler", "args": {"prediction_type": "sample"}}),
            "`scheduler.args.prediction_type` sample is not supported by \
             EulerAncestralDiscreteScheduler (epsilon and v_prediction are)",
        ),
        (
            "/scheduler",
            json!({"args": {"variance_type": "learned_range"}}),
            "`scheduler.args.variance_type` a learned variance is not supported (SD's UNets \
             do not predict one; leave it unset)",
        ),
    ];
    for (pointer, value, expected) in cases {
        let json = with(pointer, value);
        serde_json::from_str::<TaskArgs>(&json)
            .unwrap_or_else(|e| panic!("{pointer} should parse: {e}"));
        let err = error_of(&json);
        assert!(
            matches!(err, TaskArgsError::Unsupported { .. }),
            "{pointer}: {err:?}"
        );
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn supported_values_of_unsupported_fields_pass() {
    for (pointer, value) in [
        ("/lora", json!(null)),
        (
            "/lora",
            json!({"model": "https://civitai.com/api/download/models/34562"}),
        ),
        ("/controlnet", json!(null)),
        ("/refiner", json!(null)),
        ("/textual_inversion", json!("")),
        ("/textual_inversion", json!("sd-concepts-library/cat-toy")),
        ("/unet", json!("")),
        ("/dtype", json!("auto")),
        (
            "/scheduler",
            json!({"method": "DDIMScheduler", "args": null}),
        ),
        (
            "/scheduler",
            json!({"method": "EulerDiscreteScheduler", "args": {}}),
        ),
        ("/scheduler", json!({})),
        ("/scheduler", json!({"method": "LCMScheduler"})),
        (
            "/scheduler",
            json!({"method": "DPMSolverMultistepScheduler", "args": {"use_karras_sigmas": true}}),
        ),
        ("/vae", json!("stabilityai/sd-vae-ft-mse")),
        ("/version", json!("1.0.0")),
        ("/version", json!("3.0.0")),
    ] {
        TaskArgs::from_json(&with(pointer, value.clone()))
            .unwrap_or_else(|e| panic!("{pointer} = {value}: {e}"));
    }
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let cases = [
        ("/guidance_scale", json!(7), "guidance_scale"),
        ("/task_config/sampler", json!("ddim"), "task_config.sampler"),
        (
            "/base_model",
            json!({"name": "m", "revision": "main"}),
            "base_model.revision",
        ),
        (
            "/scheduler",
            json!({"method": "DDIMScheduler", "eta": 0}),
            "scheduler.eta",
        ),
        (
            "/scheduler",
            json!({"args": {"eta": 0}}),
            "scheduler.args.eta",
        ),
        ("/lora", json!({"model": "m", "scale": 1}), "lora.scale"),
    ];
    for (pointer, value, path) in cases {
        let err = error_of(&with(pointer, value));
        assert!(matches!(err, TaskArgsError::Malformed { .. }), "{err:?}");
        assert_eq!(err.path(), path);
        let field = path.rsplit('.').next().unwrap();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{path}: unknown field `{field}`, expected ")),
            "{message}"
        );
    }
}

#[test]
fn trailing_text_and_non_json_are_refused() {
    assert!(matches!(
        error_of(&format!("{} {{}}", minimal())),
        TaskArgsError::Malformed { .. }
    ));
    assert!(matches!(
        error_of("not json"),
        TaskArgsError::Malformed { .. }
    ));
}

#[test]
fn canonical_json_round_trips() {
    // Parsed, not validated: an SDXL task (refused for now) keeps its bytes too.
    for text in [SD15_TASK, SDXL_TASK, LORA_TASK, &minimal().to_string()] {
        let args: TaskArgs = serde_json::from_str(text).unwrap();
        let bytes = args.to_canonical_json();
        let again: TaskArgs = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(again, args);
        assert_eq!(again.to_canonical_json(), bytes);
    }
}

#[test]
fn canonical_json_writes_every_default_in_a_fixed_order() {
    let args = TaskArgs::from_json(&minimal().to_string()).unwrap();
    assert_eq!(
        String::from_utf8(args.to_canonical_json()).unwrap(),
        concat!(
            r#"{"base_model":"runwayml/stable-diffusion-v1-5","dtype":"auto","unet":"","#,
            r#""prompt":"a cat","negative_prompt":"","#,
            r#""task_config":{"image_width":512,"image_height":512,"steps":25,"seed":0,"#,
            r#""num_images":6,"safety_checker":true,"cfg":5.0},"#,
            r#""scheduler":{"method":"DPMSolverMultistepScheduler"},"vae":"","textual_inversion":""}"#,
        )
    );
}

#[test]
fn args_hash_is_blake2_256_of_the_canonical_bytes_and_stable() {
    // Golden values cross-checked with Python's
    // `hashlib.blake2b(canonical_bytes, digest_size=32)`.
    let args = TaskArgs::from_json(SD15_TASK).unwrap();
    assert_eq!(args.args_hash(), args_hash_of(&args.to_canonical_json()));
    assert_eq!(
        hex::encode(args.args_hash()),
        "6a115499c7ce9dff7882e6c12add6c96fa1619f7c57e60469b3fd155508ee1d0",
        "the args hash of a fixed task changed: a protocol change"
    );
    let args = TaskArgs::from_json(&minimal().to_string()).unwrap();
    assert_eq!(
        hex::encode(args.args_hash()),
        "713c6801f15915bcc53eef17414f6fcfa23306a3d7cf4b837b426bc200ef3228"
    );
}

#[test]
fn args_hash_of_hashes_uploaded_bytes_as_they_are() {
    // A node checks what it downloaded, not a re-serialization of it: the
    // reference-format text and its canonical form hash differently.
    let args = TaskArgs::from_json(SD15_TASK).unwrap();
    assert_ne!(args_hash_of(SD15_TASK.as_bytes()), args.args_hash());
    assert_eq!(
        args_hash_of(SD15_TASK.as_bytes()),
        hydrogen_sdk::types::blake2_256(SD15_TASK.as_bytes())
    );
}

#[test]
fn an_image_no_node_class_can_hold_is_refused_before_payment() {
    let mut task = minimal();
    task["task_config"]["image_width"] = json!(8192);
    task["task_config"]["image_height"] = json!(8192);
    let err = error_of(&task.to_string());
    assert_eq!(err.path(), "task_config");
    assert!(
        err.to_string()
            .contains("no node class has more than 80 GB"),
        "{err}"
    );
    task["task_config"]["image_width"] = json!(1536);
    task["task_config"]["image_height"] = json!(1536);
    let args = TaskArgs::from_json(&task.to_string()).unwrap();
    assert!(args.min_vram_gb() > 8, "a larger image needs a larger GPU");
}

#[test]
fn min_vram_follows_the_model_family() {
    for (model, family, gb) in [
        ("runwayml/stable-diffusion-v1-5", ModelFamily::Sd1, 8),
        ("stabilityai/stable-diffusion-2-1", ModelFamily::Sd2, 8),
        (
            "stabilityai/stable-diffusion-xl-base-1.0",
            ModelFamily::Sdxl,
            10,
        ),
        // SDXL at 512 x 512 (`TaskArgs::new`'s size) keeps its floor.
        ("stabilityai/sdxl-turbo", ModelFamily::Sdxl, 10),
    ] {
        let args = TaskArgs::new(model, "a cat");
        assert_eq!(args.base_model.family(), family, "{model}");
        assert_eq!(args.min_vram_gb(), gb, "{model}");
    }
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/stable-diffusion-task.schema.json")
}

#[test]
fn published_json_schema_is_up_to_date() {
    let generated = task::json_schema_string();
    let path = schema_path();
    if std::env::var_os("HYDROGEN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with sdk/src/task/; refresh it with \
         `HYDROGEN_BLESS=1 cargo test -p hydrogen-sdk --test task_schema` and commit it",
        path.display()
    );
}

#[test]
fn json_schema_states_the_defaults_and_bounds() {
    let schema: Value = serde_json::to_value(task::json_schema()).unwrap();
    let config = &schema["$defs"]["TaskConfig"]["properties"];
    assert_eq!(config["steps"]["minimum"], 1);
    assert_eq!(config["steps"]["maximum"], 100);
    assert_eq!(config["steps"]["default"], 25);
    assert_eq!(config["num_images"]["default"], 6);
    assert_eq!(config["seed"]["maximum"], 2147483647);
    assert_eq!(config["image_width"]["multipleOf"], 8);
    assert_eq!(config["cfg"]["default"], 5.0);
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["base_model", "prompt", "task_config"]);
}

/// The reference's scheduler overrides Hydrogen's engine runs: SD-Turbo,
/// LCM-LoRA, zero-SNR v-prediction and DPM-Solver variants.
#[test]
fn scheduler_args_the_engine_runs_pass_and_keep_their_bytes() {
    for scheduler in [
        json!({"method": "EulerAncestralDiscreteScheduler", "args": {"timestep_spacing": "trailing"}}),
        json!({"method": "EulerDiscreteScheduler", "args": {"timestep_spacing": "trailing", "use_karras_sigmas": true}}),
        json!({"method": "LCMScheduler", "args": {"original_inference_steps": 50, "timestep_scaling": 10.0}}),
        json!({"method": "DDIMScheduler", "args": {
            "rescale_betas_zero_snr": true, "timestep_spacing": "trailing", "prediction_type": "v_prediction"
        }}),
        json!({"method": "DPMSolverMultistepScheduler", "args": {
            "solver_order": 3, "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true,
            "final_sigmas_type": "sigma_min", "lower_order_final": false, "euler_at_final": true
        }}),
        json!({"method": "DPMSolverMultistepScheduler", "args": {
            "algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min", "solver_type": "heun"
        }}),
        // Values only a class that ignores them would see, and fields that change nothing.
        json!({"method": "EulerAncestralDiscreteScheduler", "args": {"thresholding": true}}),
        json!({"method": "LCMScheduler", "args": {"clip_samples": 1, "clip_samples_range": 1.5}}),
    ] {
        let json = with("/scheduler", scheduler.clone());
        let args = TaskArgs::from_json(&json).unwrap_or_else(|e| panic!("{scheduler}: {e}"));
        let canonical = args.to_canonical_json();
        let value: Value = serde_json::from_slice(&canonical).unwrap();
        assert_eq!(
            value["scheduler"], scheduler,
            "the canonical JSON keeps the args"
        );
        assert_eq!(
            TaskArgs::from_json(std::str::from_utf8(&canonical).unwrap()).unwrap(),
            args
        );
    }
}

#[test]
fn scheduler_args_go_to_the_engine_as_given_but_the_no_ops() {
    let json = with(
        "/scheduler",
        json!({"method": "LCMScheduler", "args": {
            "original_inference_steps": 30, "beta_schedule": "scaled_linear", "clip_samples": 1
        }}),
    );
    let args = TaskArgs::from_json(&json).unwrap();
    let map = args.scheduler.args.as_ref().unwrap().to_json_map();
    assert_eq!(
        Value::Object(map),
        json!({"original_inference_steps": 30, "beta_schedule": "scaled_linear"})
    );
}

#[test]
fn scheduler_args_out_of_bounds_are_invalid_at_their_path() {
    let cases = [
        (
            json!({"solver_order": 4}),
            "scheduler.args.solver_order",
            "must be between 1 and 3, got 4",
        ),
        (
            json!({"solver_order": 0}),
            "scheduler.args.solver_order",
            "must be between 1 and 3, got 0",
        ),
        (
            json!({"timestep_spacing": "uniform"}),
            "scheduler.args.timestep_spacing",
            "must be one of linspace, leading, trailing, got \"uniform\"",
        ),
        (
            json!({"prediction_type": "flow_prediction"}),
            "scheduler.args.prediction_type",
            "must be one of epsilon, v_prediction, sample",
        ),
        (
            json!({"beta_schedule": "sigmoid"}),
            "scheduler.args.beta_schedule",
            "must be one of",
        ),
        (
            json!({"beta_end": 1.5}),
            "scheduler.args.beta_end",
            "below 1, got 1.5",
        ),
        (
            json!({"algorithm_type": "edm"}),
            "scheduler.args.algorithm_type",
            "must be one of",
        ),
        (
            json!({"solver_type": "euler"}),
            "scheduler.args.solver_type",
            "must be one of",
        ),
        (
            json!({"final_sigmas_type": "one"}),
            "scheduler.args.final_sigmas_type",
            "must be one of",
        ),
        (
            json!({"algorithm_type": "dpmsolver"}),
            "scheduler.args.final_sigmas_type",
            "must be sigma_min with algorithm_type dpmsolver",
        ),
        (
            json!({"num_train_timesteps": 1_000_000}),
            "scheduler.args.num_train_timesteps",
            "must be between 2 and 10000",
        ),
        (
            json!({"steps_offset": 1000}),
            "scheduler.args.steps_offset",
            "between 0 and 999",
        ),
        (
            json!({"original_inference_steps": 2000}),
            "scheduler.args.original_inference_steps",
            "between 1 and 1000",
        ),
        (
            json!({"timestep_scaling": -1.0}),
            "scheduler.args.timestep_scaling",
            "at least 0",
        ),
    ];
    for (scheduler_args, path, message) in cases {
        let json = with(
            "/scheduler",
            json!({"method": "DPMSolverMultistepScheduler", "args": scheduler_args}),
        );
        let err = error_of(&json);
        assert!(
            matches!(err, TaskArgsError::Invalid { .. }),
            "{scheduler_args}: {err:?}"
        );
        assert_eq!(err.path(), path, "{scheduler_args}");
        assert!(err.to_string().contains(message), "{scheduler_args}: {err}");
    }
    // LCM picks its steps among original_inference_steps (50 unless set).
    let mut task = minimal();
    task["scheduler"] = json!({"method": "LCMScheduler"});
    task["task_config"]["steps"] = json!(60);
    let err = error_of(&task.to_string());
    assert_eq!(err.path(), "task_config.steps");
    assert_eq!(
        err.to_string(),
        "task_config.steps: must be at most original_inference_steps (50) with LCMScheduler, got 60"
    );
    task["scheduler"]["args"] = json!({"original_inference_steps": 8});
    task["task_config"]["steps"] = json!(4);
    TaskArgs::from_json(&task.to_string()).unwrap();
}
