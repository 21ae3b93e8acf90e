//! Writes diffusers' unit-test-sized model, in diffusers' folder layout, with
//! the tensor names, shapes and configs diffusers itself produced
//! (`data/tiny_reference.json`, from `scripts/tiny_reference.py`) and
//! weights from a formula that script shares.

#![allow(dead_code)]

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `(name, shape)` of every tensor of a component.
pub type Tensors = Vec<(String, Vec<usize>)>;
/// A change to a component's tensor list before it is written (rename, drop, add).
pub type Edit<'a> = &'a dyn Fn(&mut Tensors);

pub fn reference() -> Value {
    serde_json::from_str(include_str!("../data/tiny_reference.json")).expect("reference JSON")
}

/// `scripts/tiny_reference.py::formula`.
pub fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let phase = (name.bytes().map(u64::from).sum::<u64>() % 1000) as f64 * 0.01;
    (0..n)
        .map(|k| {
            let wave = (0.3 * k as f64 + phase).sin();
            let v = if shape.len() == 1 && name.ends_with(".weight") {
                1.0 + 0.1 * wave
            } else if shape.len() == 1 {
                0.02 * wave
            } else {
                wave * 1.5 / ((n / shape[0]) as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Variant {
    /// `diffusion_pytorch_model.safetensors`, f32.
    F32,
    /// `diffusion_pytorch_model.fp16.safetensors`, f16.
    Fp16,
}

pub struct TinyModel {
    pub dir: PathBuf,
}

impl Drop for TinyModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    cs.into_iter()
        .map(|c| char::from_u32(c).expect("char"))
        .collect()
}

/// Writes one component's safetensors file; `edit` may rename, drop or add tensors.
pub fn write_weights(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    variant: Variant,
    edit: Edit<'_>,
) {
    let mut tensors = tensors.to_vec();
    edit(&mut tensors);
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            // Values follow the diffusers name even when the stored name is an older alias.
            let source = name
                .trim_start_matches("text_model.")
                .replace(".query.", ".to_q.")
                .replace(".key.", ".to_k.")
                .replace(".value.", ".to_v.")
                .replace(".proj_attn.", ".to_out.0.");
            let values = formula(&source, shape);
            let bytes = match variant {
                Variant::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Variant::Fp16 => values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let dtype = if variant == Variant::F32 {
        Dtype::F32
    } else {
        Dtype::F16
    };
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(dtype, s.clone(), b).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

pub fn manifest(reference: &Value, component: &str) -> Vec<(String, Vec<usize>)> {
    reference["components"][component]["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            let shape = t[1]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            (t[0].as_str().expect("name").to_owned(), shape)
        })
        .collect()
}

/// The whole pipeline folder. `vae_edit` lets a test rename or corrupt VAE tensors.
pub fn write_tiny_model(name: &str, variant: Variant, vae_edit: Edit<'_>) -> TinyModel {
    write_tiny_model_with(name, variant, vae_edit, &|_| {})
}

/// As [`write_tiny_model`], with an edit of the text encoder's tensor names too.
pub fn write_tiny_model_with(
    name: &str,
    variant: Variant,
    vae_edit: Edit<'_>,
    text_edit: Edit<'_>,
) -> TinyModel {
    let r = reference();
    let dir = std::env::temp_dir().join(format!(
        "hydrogen-engine-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let suffix = if variant == Variant::Fp16 {
        ".fp16"
    } else {
        ""
    };
    for (component, stem) in [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ] {
        let d = dir.join(component);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join("config.json"),
            r["components"][component]["config"].to_string(),
        )
        .expect("config");
        let none = |_: &mut Vec<(String, Vec<usize>)>| {};
        let edit: Edit<'_> = match component {
            "vae" => vae_edit,
            "text_encoder" => text_edit,
            _ => &none,
        };
        write_weights(
            &d.join(format!("{stem}{suffix}.safetensors")),
            &manifest(&r, component),
            variant,
            edit,
        );
    }
    std::fs::create_dir_all(dir.join("scheduler")).expect("mkdir");
    std::fs::write(
        dir.join("scheduler/scheduler_config.json"),
        r["components"]["scheduler"]["config"].to_string(),
    )
    .expect("scheduler config");
    let tok = dir.join("tokenizer");
    std::fs::create_dir_all(&tok).expect("mkdir");
    let base = bytes_to_unicode();
    let merges: Vec<String> = r["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|m| m.as_str().expect("m").to_owned())
        .collect();
    let mut tokens: Vec<String> = base.iter().map(|c| c.to_string()).collect();
    tokens.extend(base.iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    let vocab: serde_json::Map<String, Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, json!(i)))
        .collect();
    std::fs::write(tok.join("vocab.json"), Value::Object(vocab).to_string()).expect("vocab");
    std::fs::write(
        tok.join("merges.txt"),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )
    .expect("merges");
    std::fs::write(
        dir.join("model_index.json"),
        r#"{"_class_name": "StableDiffusionPipeline"}"#,
    )
    .expect("index");
    TinyModel { dir }
}
