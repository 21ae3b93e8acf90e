//! Prompt weighting in Compel's syntax against compel itself
//! (scripts/prompt_reference.py): the parse of many prompts, rule by rule, and
//! the conditioning tensors of weighted prompts on the tiny text encoder. A
//! prompt without weighting keeps the plain pipeline's embeddings, bit for bit.

mod common;

use common::{floats, host, rel_error, write_tiny_model, Variant};
use hydrogen_engine::prompt::{parse, Conjunction, Part, Piece};
use hydrogen_engine::{Backend, Method, Precision, Request, StableDiffusion};
use serde_json::{json, Value};
use std::path::Path;

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/prompt_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("prompt_reference.json"))
        .expect("json")
}
/// compel's negative conditioning in `case`: written out, or for an empty
/// negative the empty prompt's repeated to the case's length.
fn uncond(data: &Value, case: &Value) -> Vec<f32> {
    if let Some(values) = case.get("uncond") {
        return floats(values);
    }
    let empty = floats(&data["empty"]);
    let len = floats(&case["cond"]).len();
    empty.iter().copied().cycle().take(len).collect()
}
fn pieces_json(pieces: &[Piece]) -> Value {
    Value::Array(
        pieces
            .iter()
            .map(|p| match p {
                Piece::Fragment(f) => json!({"text": f.text, "weight": f.weight}),
                Piece::Swap { original, edited } => json!({"swap": {
                    "original": pieces_json(original),
                    "edited": pieces_json(edited),
                }}),
            })
            .collect(),
    )
}

/// Our parse in the layout the script writes compel's in.
fn conjunction_json(c: &Conjunction) -> Value {
    let parts = c
        .parts
        .iter()
        .map(|(part, weight)| match part {
            Part::Prompt(pieces) => json!({"weight": weight, "prompt": pieces_json(pieces)}),
            Part::Blend {
                prompts,
                weights,
                normalize,
            } => json!({"weight": weight, "blend": {
                "prompts": prompts.iter().map(|p| pieces_json(p)).collect::<Vec<_>>(),
                "weights": weights,
                "normalize": normalize,
            }}),
        })
        .collect::<Vec<_>>();
    json!({ "parts": parts })
}

/// Structural equality, numbers to 1e-12 (JSON float text may round differently).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
            (x - y).abs() <= 1e-12 * y.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn the_parse_is_compels() {
    let data = reference();
    let entries = data["parse"].as_array().expect("parse entries");
    let mut wrong = Vec::new();
    for entry in entries {
        let prompt = entry["prompt"].as_str().expect("prompt");
        let theirs = &entry["result"];
        match (parse(prompt), theirs.get("error")) {
            (Ok(ours), None) => {
                let ours = conjunction_json(&ours);
                if !same(&ours, theirs) {
                    wrong.push(format!("{prompt:?}:\n  ours   {ours}\n  compel {theirs}"));
                }
            }
            (Err(_), Some(_)) => {}
            (Ok(ours), Some(e)) => wrong.push(format!(
                "{prompt:?}: compel refuses it ({e}), we parse {}",
                conjunction_json(&ours)
            )),
            (Err(e), None) => wrong.push(format!(
                "{prompt:?}: we refuse it ({e}), compel parses {theirs}"
            )),
        }
    }
    println!(
        "{} prompts parsed as compel parses them",
        entries.len() - wrong.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn load(dir: &Path) -> StableDiffusion {
    StableDiffusion::load(dir, &Backend::Cpu.device(), Precision::F32).expect("load")
}

#[test]
fn conditioning_matches_compel() {
    let data = reference();
    let model = write_tiny_model("prompt-weighting", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let (plain, _) = sd.encode_prompts_plain("a cat on the stairs", "");
    let plain = host(plain);
    for case in data["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let prompt = case["prompt"].as_str().expect("prompt");
        let negative = case["negative"].as_str().expect("negative");
        let (cond, uncond) = sd
            .try_encode_prompts(prompt, negative)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(cond.dims().to_vec(), shape, "{name}: conditioning shape");
        assert_eq!(uncond.dims().to_vec(), shape, "{name}: negative shape");
        let (cond, uncond) = (host(cond), host(uncond));
        let err = rel_error(&cond, &floats(&case["cond"]));
        let err_neg = rel_error(&uncond, &self::uncond(&data, case));
        println!("{name}: rel. error {err:.2e}, negative {err_neg:.2e}");
        assert!(err <= 1e-3, "{name}: conditioning rel. error {err}");
        assert!(err_neg <= 1e-3, "{name}: negative rel. error {err_neg}");
        if name != "plain" && name != "weighted_negative" && cond.len() == plain.len() {
            // The weighting must matter, or the comparison above proves little.
            assert_ne!(cond, plain, "{name}");
        }
    }
}

#[test]
fn prompts_without_weighting_keep_the_plain_embeddings_bit_for_bit() {
    let model = write_tiny_model("prompt-plain", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let long = "the red barn in the rain, an old oak tree on a hill, ".repeat(4);
    for (prompt, negative) in [
        ("a photo of an astronaut", ""),
        ("a cat on the stairs", "blurry, low quality"),
        ("", "blurry"),
        (long.as_str(), "blurry"),
        ("blurry", long.as_str()),
        ("  spaced   out \t words ", ""),
    ] {
        let (c, u) = sd.try_encode_prompts(prompt, negative).expect("encode");
        let (pc, pu) = sd.encode_prompts_plain(prompt, negative);
        assert_eq!(c.dims(), pc.dims(), "{prompt:?}");
        assert_eq!(host(c), host(pc), "{prompt:?}: conditioning");
        assert_eq!(host(u), host(pu), "{prompt:?}: negative");
    }
}

fn request(prompt: &str) -> Request {
    Request {
        prompt: prompt.into(),
        negative_prompt: "blurry".into(),
        width: 32,
        height: 32,
        steps: 2,
        guidance: 6.0,
        seed: 3,
        num_images: 1,
        scheduler: Method::Ddim,
        scheduler_args: Default::default(),
    }
}

#[test]
fn generate_weights_prompts_and_names_the_ones_compel_refuses() {
    let model = write_tiny_model("prompt-generate", Variant::F32, &|_| {});
    let sd = load(&model.dir);
    let image = |prompt: &str| {
        sd.generate(&request(prompt), |_| {})
            .expect("generate")
            .remove(0)
            .into_raw()
    };
    let plain = image("a cat on the stairs");
    assert_eq!(
        image("a  cat on the stairs"),
        plain,
        "whitespace is not weighting"
    );
    assert_ne!(
        image("a cat++ on the stairs"),
        plain,
        "`++` weights the cat"
    );

    let refused = r#"("a cat", "a dog").blend(1)"#;
    let err = sd
        .generate(&request(refused), |_| {})
        .expect_err("a blend with too few weights")
        .to_string();
    assert!(
        err.contains(refused) && err.contains("2 prompts but 1 weights"),
        "{err}"
    );
    // encode_prompts, which cannot fail, takes such a prompt as plain text.
    let (lenient, _) = sd.encode_prompts(refused, "");
    let (plain, _) = sd.encode_prompts_plain(refused, "");
    assert_eq!(host(lenient), host(plain));
}

/// The weighted paths (masked attention, the host arithmetic, the upload)
/// on wgpu, here Mesa's lavapipe, for a few cases (lavapipe compiles every
/// kernel anew, so each case costs seconds).
#[test]
fn conditioning_on_wgpu_matches_compel() {
    let data = reference();
    let model = write_tiny_model("prompt-wgpu", Variant::F32, &|_| {});
    let sd = StableDiffusion::load(&model.dir, &Backend::WgpuSoftware.device(), Precision::F32)
        .expect("load on wgpu");
    for case in data["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        if !["plain", "nested", "blend", "long"].contains(&name) {
            continue;
        }
        let (cond, uncond) = sd
            .try_encode_prompts(
                case["prompt"].as_str().expect("prompt"),
                case["negative"].as_str().expect("negative"),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = rel_error(&host(cond), &floats(&case["cond"]));
        let err_neg = rel_error(&host(uncond), &self::uncond(&data, case));
        println!("{name}: rel. error {err:.2e}, negative {err_neg:.2e}");
        assert!(err <= 1e-3 && err_neg <= 1e-3, "{name}: {err} {err_neg}");
    }
}
