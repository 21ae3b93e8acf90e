//! LoRA on the tiny model, against diffusers + PEFT (scripts/lora_reference.py):
//! the same LoRA in kohya and in PEFT layout, merged at scale 0.8, must give
//! diffusers' text embeddings, UNet output and image; switching LoRAs must give
//! the same bits as merging into a freshly loaded model.

mod common;

use burn::tensor::{DType, Tensor, TensorData};
use common::{
    floats, host, reference_case_image, rel_error, write_ramp_safetensors, write_tiny_model,
    Variant,
};
use hydrogen_engine::{Backend, Lora, Precision, StableDiffusion};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lora_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("lora_reference.json"))
        .expect("json")
}

fn lora_file(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/lora/{format}.safetensors"))
}
struct Observed {
    text_hidden: Vec<f32>,
    unet_out: Vec<f32>,
    image: Vec<u8>,
}

/// What scripts/lora_reference.py's `observe` records, from our engine. The
/// UNet runs on diffusers' text embeddings (`context`) so the two checks are
/// apart.
fn observe(sd: &StableDiffusion, data: &Value, context: &[f32]) -> Observed {
    let prompt = data["prompt"].as_str().expect("prompt");
    let (cond, _) = sd.encode_prompts(prompt, "");
    let device = sd.device();
    let sample = Tensor::<4>::from_data(
        TensorData::new(floats(&data["sample"]), [1, 4, 8, 8]),
        (device, DType::F32),
    );
    let dims = [1, context.len() / 32, 32];
    let context = Tensor::<3>::from_data(
        TensorData::new(context.to_vec(), dims),
        (device, DType::F32),
    );
    let t = data["timestep"].as_f64().expect("t");
    let unet_out = host(sd.unet.forward(sample, t, &context));
    let image = reference_case_image(sd, data);
    Observed {
        text_hidden: host(cond),
        unet_out,
        image,
    }
}

fn assert_matches(what: &str, ours: &Observed, theirs: &Value) {
    let text = rel_error(&ours.text_hidden, &floats(&theirs["text_hidden"]));
    let unet = rel_error(&ours.unet_out, &floats(&theirs["unet_out"]));
    let want: Vec<u8> = theirs["image_hwc_u8"]
        .as_array()
        .expect("image")
        .iter()
        .map(|v| v.as_u64().expect("u8") as u8)
        .collect();
    let max_levels = ours
        .image
        .iter()
        .zip(&want)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .expect("pixels");
    println!("{what}: rel. error text {text:.2e}, UNet {unet:.2e}; image max {max_levels} levels");
    assert!(text <= 1e-3, "{what}: text encoder rel. error {text}");
    assert!(unet <= 1e-3, "{what}: UNet rel. error {unet}");
    assert!(
        max_levels <= 2,
        "{what}: image differs by {max_levels} levels"
    );
}

fn load(dir: &Path) -> StableDiffusion {
    StableDiffusion::load(dir, &Backend::Cpu.device(), Precision::F32).expect("load")
}

#[test]
fn kohya_and_peft_loras_merge_as_diffusers_fuses_them() {
    let data = reference();
    let scale = data["scale"].as_f64().expect("scale") as f32;
    let model = write_tiny_model("lora-match", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);

    let base = &data["base"];
    let ours_base = observe(&sd, &data, &floats(&base["text_hidden"]));
    assert_matches("no LoRA", &ours_base, base);

    for format in ["kohya", "peft"] {
        let lora = Lora::open(&lora_file(format)).expect("open LoRA");
        sd.set_lora(Some((&lora, scale))).expect("merge");
        let theirs = &data["lora"][format];
        let ours = observe(&sd, &data, &floats(&theirs["text_hidden"]));
        assert_matches(format, &ours, theirs);
        // The LoRA must matter, or the comparison above proves nothing.
        assert!(rel_error(&ours.unet_out, &ours_base.unet_out) > 1e-2);
        assert!(rel_error(&ours.text_hidden, &ours_base.text_hidden) > 1e-2);
    }
}

#[test]
fn switching_loras_gives_the_bits_of_a_fresh_merge() {
    let data = reference();
    let model = write_tiny_model("lora-switch", Variant::Fp16, &|_| {});
    let context = floats(&data["base"]["text_hidden"]);
    let kohya = Lora::open(&lora_file("kohya")).expect("kohya");
    let peft = Lora::open(&lora_file("peft")).expect("peft");

    let mut fresh = load(&model.dir);
    let pristine = observe(&fresh, &data, &context);
    fresh.set_lora(Some((&kohya, 0.5))).expect("merge");
    let at_half = observe(&fresh, &data, &context);

    let mut reused = load(&model.dir);
    reused.set_lora(Some((&peft, 1.0))).expect("peft");
    let full = observe(&reused, &data, &context);
    reused.set_lora(Some((&kohya, 0.5))).expect("kohya at 0.5");
    let switched = observe(&reused, &data, &context);
    assert_eq!(switched.unet_out, at_half.unet_out, "switch = fresh merge");
    assert_eq!(switched.text_hidden, at_half.text_hidden);
    assert_eq!(switched.image, at_half.image);
    assert_ne!(
        full.unet_out, at_half.unet_out,
        "the weight scales the LoRA"
    );

    reused.set_lora(None).expect("unmerge");
    let back = observe(&reused, &data, &context);
    assert_eq!(
        back.unet_out, pristine.unet_out,
        "no LoRA = the pristine model"
    );
    assert_eq!(back.text_hidden, pristine.text_hidden);
    assert_eq!(back.image, pristine.image);
}
#[test]
fn a_lora_that_does_not_fit_is_refused_by_name_and_leaves_the_model_as_it_was() {
    let data = reference();
    let model = write_tiny_model("lora-refuse", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    let context = floats(&data["base"]["text_hidden"]);
    let before = observe(&sd, &data, &context);
    let dir = tempfile::tempdir().expect("tempdir");
    let q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";

    let unknown = dir.path().join("unknown.safetensors");
    write_ramp_safetensors(
        &unknown,
        &[
            (&format!("{q}.lora_down.weight"), vec![2, 64]),
            (&format!("{q}.lora_up.weight"), vec![64, 2]),
            ("lora_unet_x.dora_scale", vec![1, 64]),
        ],
    );
    let err = Lora::open(&unknown).unwrap_err().to_string();
    assert!(err.contains("`lora_unet_x.dora_scale`"), "{err}");

    let absent = dir.path().join("absent.safetensors");
    write_ramp_safetensors(
        &absent,
        &[
            ("lora_unet_down_blocks_9_conv.lora_down.weight", vec![2, 64]),
            ("lora_unet_down_blocks_9_conv.lora_up.weight", vec![64, 2]),
        ],
    );
    let lora = Lora::open(&absent).expect("well-formed");
    let err = sd.set_lora(Some((&lora, 1.0))).unwrap_err().to_string();
    assert!(err.contains("`down_blocks_9_conv` names no layer"), "{err}");

    let misshaped = dir.path().join("misshaped.safetensors");
    write_ramp_safetensors(
        &misshaped,
        &[
            (&format!("{q}.lora_down.weight"), vec![2, 32]),
            (&format!("{q}.lora_up.weight"), vec![64, 2]),
        ],
    );
    let lora = Lora::open(&misshaped).expect("well-formed");
    let err = sd.set_lora(Some((&lora, 1.0))).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");

    let after = observe(&sd, &data, &context);
    assert_eq!(after.unet_out, before.unet_out);
    assert_eq!(after.image, before.image);
}
