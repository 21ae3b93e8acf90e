//! The engine's tiny model ([`hydrogen_engine::tiny`]) in a temporary folder
//! that is removed when the test is done with it.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use hydrogen_engine::tiny::{reference, Edit, Variant};
use std::path::{Path, PathBuf};

pub struct TinyModel {
    pub dir: PathBuf,
}

impl Drop for TinyModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
    let dir = std::env::temp_dir().join(format!(
        "hydrogen-engine-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    hydrogen_engine::tiny::write_model_with(&dir, variant, vae_edit, text_edit)
        .expect("write the tiny model");
    TinyModel { dir }
}

/// `tests/data/<name>`, parsed.
pub fn data_json(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("reference data"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of numbers as f32.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// A tensor's values as f32 on the host.
pub fn host<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.cast(burn::tensor::FloatDType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

/// max |ours - theirs| / max |theirs|.
pub fn rel_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(theirs)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    err / scale
}

/// An f32 safetensors file with `tensors` (name, shape), each filled by
/// `values(name, element count)`.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    values: impl Fn(&str, usize) -> Vec<f32>,
) {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let bytes = values(name, n)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

/// [`write_safetensors`] with a ramp `0.01·i` in each tensor.
pub fn write_ramp_safetensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let tensors: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    write_safetensors(path, &tensors, |_, n| {
        (0..n).map(|i| 0.01 * i as f32).collect()
    });
}

/// The one DDIM image `lora_reference.json` records for its `case` and
/// `prompt` (scripts/lora_reference.py's `observe`), as RGB bytes.
pub fn reference_case_image(
    sd: &hydrogen_engine::StableDiffusion,
    data: &serde_json::Value,
) -> Vec<u8> {
    let case = &data["case"];
    let request = hydrogen_engine::Request {
        prompt: data["prompt"].as_str().expect("prompt").into(),
        width: case["width"].as_u64().expect("w") as u32,
        height: case["height"].as_u64().expect("h") as u32,
        steps: case["steps"].as_u64().expect("steps") as usize,
        guidance: case["guidance"].as_f64().expect("cfg"),
        seed: case["seed"].as_u64().expect("seed"),
        num_images: 1,
        scheduler: hydrogen_engine::Method::Ddim,
        ..Default::default()
    };
    sd.generate(&request, |_| {})
        .expect("generate")
        .remove(0)
        .into_raw()
}
