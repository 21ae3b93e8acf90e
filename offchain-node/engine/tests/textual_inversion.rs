//! Textual inversion on the tiny model against diffusers'
//! `load_textual_inversion` (scripts/textual_inversion_reference.py): each
//! layout's token and ids, the prompt embeddings with the token in them, a
//! weighted prompt against compel; switching files or going back gives the
//! base embeddings bit for bit; pickles and unknown layouts are refused by name.

mod common;

use common::{floats, host, rel_error, write_ramp_safetensors, write_tiny_model, Variant};
use hydrogen_engine::{Backend, Lora, Precision, StableDiffusion};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn reference() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/textual_inversion_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference")).expect("json")
}

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/textual_inversion")
        .join(path)
}
fn load(dir: &Path) -> StableDiffusion {
    StableDiffusion::load(dir, &Backend::Cpu.device(), Precision::F32).expect("load")
}

fn embeds(sd: &StableDiffusion, prompt: &str) -> Vec<f32> {
    host(sd.try_encode_prompts(prompt, "").expect("encode").0)
}

#[test]
fn every_layout_matches_diffusers_load_textual_inversion() {
    let reference = reference();
    let model = write_tiny_model("ti-match", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    let (bos, eos) = (sd.tokenizer.bos(), sd.tokenizer.eos());
    for file in reference["files"].as_array().expect("files") {
        let given = file["path"].as_str().expect("path");
        sd.set_textual_inversion(Some(&data(given)))
            .unwrap_or_else(|e| panic!("{given}: {e}"));
        // The tokens diffusers added, with their ids.
        for (token, id) in file["added_tokens"].as_object().expect("tokens") {
            let id = id.as_u64().expect("id") as u32;
            assert_eq!(
                sd.tokenizer.encode(token).first(),
                Some(&id),
                "{given}: id of {token}"
            );
        }
        for case in file["prompts"].as_array().expect("prompts") {
            let prompt = case["prompt"].as_str().expect("prompt");
            let want: Vec<u32> = case["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_u64().expect("id") as u32)
                .collect();
            let ours = sd.tokenizer.chunks(prompt, 75, 1).remove(0);
            assert_eq!(ours, want, "{given}: ids of {prompt:?}");
            assert_eq!((ours[0], ours.contains(&eos)), (bos, true));
            let err = rel_error(&embeds(&sd, prompt), &floats(&case["embeds"]));
            println!("{given}: {prompt:?}: rel. error {err:.2e}");
            assert!(err <= 1e-3, "{given}: {prompt:?}: rel. error {err}");
        }
    }
}

#[test]
fn a_weighted_prompt_with_the_token_matches_compel() {
    let reference = reference();
    let case = &reference["weighted"];
    let model = write_tiny_model("ti-weighted", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    sd.set_textual_inversion(Some(&data(case["path"].as_str().expect("path"))))
        .expect("load");
    let (cond, uncond) = sd
        .try_encode_prompts(
            case["prompt"].as_str().expect("prompt"),
            case["negative"].as_str().expect("negative"),
        )
        .expect("encode");
    let err = rel_error(&host(cond), &floats(&case["cond"]));
    let err_neg = rel_error(&host(uncond), &floats(&case["uncond"]));
    println!("weighted: rel. error {err:.2e}, negative {err_neg:.2e}");
    assert!(err <= 1e-3 && err_neg <= 1e-3, "{err} {err_neg}");
}

#[test]
fn switching_gives_back_the_base_embeddings_bit_for_bit() {
    let model = write_tiny_model("ti-switch", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    let prompts = [
        "a photo of emb_params on the stairs",
        "a <cat-toy> on the stairs",
        "a cat on the stairs",
    ];
    let base: Vec<Vec<f32>> = prompts.iter().map(|p| embeds(&sd, p)).collect();
    let base_ids = sd.tokenizer.encode(prompts[0]);

    sd.set_textual_inversion(Some(&data("emb_params.safetensors")))
        .expect("kohya");
    let with_kohya: Vec<Vec<f32>> = prompts.iter().map(|p| embeds(&sd, p)).collect();
    assert_ne!(with_kohya[0], base[0], "the token is embedded");
    assert_eq!(with_kohya[1], base[1], "another file's token is text");
    assert_eq!(
        with_kohya[2], base[2],
        "a prompt without the token is untouched"
    );

    sd.set_textual_inversion(Some(&data("diffusers")))
        .expect("diffusers");
    assert_eq!(
        embeds(&sd, prompts[0]),
        base[0],
        "the last file's token is gone"
    );
    assert_ne!(embeds(&sd, prompts[1]), base[1]);

    sd.set_textual_inversion(Some(&data("emb_params.safetensors")))
        .expect("kohya again");
    assert_eq!(embeds(&sd, prompts[0]), with_kohya[0], "= a fresh load");

    sd.set_textual_inversion(None).expect("none");
    assert_eq!(sd.textual_inversion(), None);
    assert_eq!(sd.tokenizer.encode(prompts[0]), base_ids);
    for (prompt, want) in prompts.iter().zip(&base) {
        assert_eq!(&embeds(&sd, prompt), want, "{prompt}: base embeddings");
    }
}

#[test]
fn the_token_survives_a_lora_switch() {
    let model = write_tiny_model("ti-lora", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    let prompt = "a photo of emb_params on the stairs";
    sd.set_textual_inversion(Some(&data("emb_params.safetensors")))
        .expect("ti");
    let before = embeds(&sd, prompt);
    let lora_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lora/kohya.safetensors");
    let lora = Lora::open(&lora_file).expect("lora");
    sd.set_lora(Some((&lora, 0.8))).expect("merge");
    assert_ne!(
        embeds(&sd, prompt),
        before,
        "the LoRA changes the text encoder"
    );
    sd.set_lora(None).expect("unmerge");
    assert_eq!(embeds(&sd, prompt), before);
}
#[test]
fn pickles_and_unknown_layouts_are_refused_by_name_leaving_the_model_as_it_was() {
    let model = write_tiny_model("ti-refuse", Variant::F32, &|_| {});
    let mut sd = load(&model.dir);
    sd.set_textual_inversion(Some(&data("emb_params.safetensors")))
        .expect("kohya");
    let prompt = "a photo of emb_params on the stairs";
    let before = embeds(&sd, prompt);
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = |sd: &mut StableDiffusion, path: &Path| {
        let err = sd
            .set_textual_inversion(Some(path))
            .expect_err("refused")
            .to_string();
        println!("{err}");
        err
    };

    // A pickle, by name and by content.
    let pt = dir.path().join("charturner.pt");
    std::fs::write(&pt, b"\x80\x02}q\x00.").expect("write");
    let err = refused(&mut sd, &pt);
    assert!(
        err.contains("charturner.pt") && err.contains("pickle"),
        "{err}"
    );
    let disguised = dir.path().join("disguised.safetensors");
    std::fs::write(&disguised, b"PK\x03\x04 torch zip").expect("write");
    let err = refused(&mut sd, &disguised);
    assert!(
        err.contains("disguised.safetensors") && err.contains("pickle"),
        "{err}"
    );
    let folder = dir.path().join("concept");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("learned_embeds.bin"), b"\x80\x04").expect("write");
    let err = refused(&mut sd, &folder);
    assert!(
        err.contains("learned_embeds.bin") && err.contains("pickle"),
        "{err}"
    );

    // Not one tensor: SDXL's two encoders, or nothing.
    let sdxl = dir.path().join("sdxl.safetensors");
    write_ramp_safetensors(
        &sdxl,
        &[("clip_g", vec![2, 1280]), ("clip_l", vec![2, 768])],
    );
    let err = refused(&mut sd, &sdxl);
    assert!(
        err.contains("sdxl.safetensors") && err.contains("`clip_g`, `clip_l`"),
        "{err}"
    );
    // The wrong width, or a shape that is no list of vectors.
    let wide = dir.path().join("wide.safetensors");
    write_ramp_safetensors(&wide, &[("emb_params", vec![2, 64])]);
    let err = refused(&mut sd, &wide);
    assert!(
        err.contains("`emb_params`") && err.contains("64-dim"),
        "{err}"
    );
    let cube = dir.path().join("cube.safetensors");
    write_ramp_safetensors(&cube, &[("emb_params", vec![1, 2, 32])]);
    let err = refused(&mut sd, &cube);
    assert!(err.contains("`emb_params` has shape [1, 2, 32]"), "{err}");
    // A token the vocabulary has.
    let taken = dir.path().join("taken.safetensors");
    write_ramp_safetensors(&taken, &[("the</w>", vec![32])]);
    let err = refused(&mut sd, &taken);
    assert!(
        err.contains("`the</w>`") && err.contains("vocabulary"),
        "{err}"
    );
    let missing = dir.path().join("missing.safetensors");
    let err = refused(&mut sd, &missing);
    assert!(err.contains("missing.safetensors"), "{err}");

    assert_eq!(embeds(&sd, prompt), before, "the model is as it was");
}
