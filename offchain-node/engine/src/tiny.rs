//! The built-in tiny model: diffusers' unit-test-sized Stable Diffusion
//! pipeline, written in diffusers' folder layout with the tensor names,
//! shapes and configs diffusers itself produced (`tiny_reference.json`, from
//! `scripts/tiny_reference.py`) and weights from a formula that script shares.
//!
//! It draws nothing recognisable, but it runs every part of the engine in a
//! fraction of a second, so a node, a test network or a demo can run real
//! tasks without downloading gigabytes. The engine's tests compare it with
//! what diffusers generated from the same weights.

use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::path::Path;

/// The name under which nodes and the local network refer to the tiny model
/// (a task's `base_model`).
pub const MODEL_NAME: &str = "hydrogen/tiny-sd";

/// `(name, shape)` of every tensor of a component.
pub type Tensors = Vec<(String, Vec<usize>)>;
/// A change to a component's tensor list before it is written (rename, drop, add).
pub type Edit<'a> = &'a dyn Fn(&mut Tensors);

/// The diffusers reference: configs, tensor manifests, tokenizer merges and
/// diffusers' own outputs for a few requests.
pub fn reference() -> Value {
    serde_json::from_str(include_str!("../tests/data/tiny_reference.json"))
        .expect("the embedded tiny_reference.json is JSON")
}

/// `scripts/tiny_reference.py::formula`: deterministic weights of a tensor.
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

/// The weights' file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `diffusion_pytorch_model.safetensors`, f32.
    F32,
    /// `diffusion_pytorch_model.fp16.safetensors`, f16.
    Fp16,
}

/// GPT-2's byte-to-character table, which CLIP's BPE vocabulary is written in.
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
        .map(|c| char::from_u32(c).expect("the table holds valid chars"))
        .collect()
}

/// Writes one component's safetensors file; `edit` may rename, drop or add tensors.
pub fn write_weights(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    variant: Variant,
    edit: Edit<'_>,
) -> Result<()> {
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
    let dtype = match variant {
        Variant::F32 => Dtype::F32,
        Variant::Fp16 => Dtype::F16,
    };
    let bad = |message: String| Error::Safetensors {
        path: path.to_owned(),
        message,
    };
    let views = buffers
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(dtype, s.clone(), b)
                .map(|view| (n.clone(), view))
                .map_err(|e| bad(format!("tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| bad(e.to_string()))
}

/// `(name, shape)` of every tensor of `component` in the reference.
pub fn manifest(reference: &Value, component: &str) -> Tensors {
    reference["components"][component]["tensors"]
        .as_array()
        .expect("the reference lists each component's tensors")
        .iter()
        .map(|t| {
            let shape = t[1]
                .as_array()
                .expect("a tensor's shape is an array")
                .iter()
                .map(|d| d.as_u64().expect("a dimension is a number") as usize)
                .collect();
            (
                t[0].as_str()
                    .expect("a tensor's name is a string")
                    .to_owned(),
                shape,
            )
        })
        .collect()
}

/// Writes the tiny model, f32, into `dir` (created if missing; files in it
/// are replaced). The folder then loads with [`crate::StableDiffusion::load`].
pub fn write_model(dir: &Path) -> Result<()> {
    write_model_with(dir, Variant::F32, &|_| {}, &|_| {})
}

/// As [`write_model`], in `variant`, with edits of the VAE's and the text
/// encoder's tensor lists (for tests of the loader's refusals).
pub fn write_model_with(
    dir: &Path,
    variant: Variant,
    vae_edit: Edit<'_>,
    text_edit: Edit<'_>,
) -> Result<()> {
    let r = reference();
    let write = |path: &Path, contents: String| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(path, contents).map_err(|e| Error::io(path, e))
    };
    let suffix = match variant {
        Variant::F32 => "",
        Variant::Fp16 => ".fp16",
    };
    for (component, stem) in [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ] {
        let d = dir.join(component);
        write(
            &d.join("config.json"),
            r["components"][component]["config"].to_string(),
        )?;
        let none = |_: &mut Tensors| {};
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
        )?;
    }
    write(
        &dir.join("scheduler/scheduler_config.json"),
        r["components"]["scheduler"]["config"].to_string(),
    )?;
    let base = bytes_to_unicode();
    let merges: Vec<String> = r["merges"]
        .as_array()
        .expect("the reference lists the tokenizer merges")
        .iter()
        .map(|m| m.as_str().expect("a merge is a string").to_owned())
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
    write(
        &dir.join("tokenizer/vocab.json"),
        Value::Object(vocab).to_string(),
    )?;
    write(
        &dir.join("tokenizer/merges.txt"),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )?;
    write(
        &dir.join("model_index.json"),
        r#"{"_class_name": "StableDiffusionPipeline"}"#.into(),
    )
}
