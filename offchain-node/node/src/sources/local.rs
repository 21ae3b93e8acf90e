//! Models the operator put in the models directory: they win over any
//! download. Base models are found by [`crate::models::resolve`]; this file
//! finds the single-file models (LoRA, textual inversion) and VAEs.

use super::names::relative;
use std::path::{Path, PathBuf};

/// A LoRA or textual inversion `id` with weight file `file`:
/// `<dir>/<id>` itself when it is a file (`my-lora.safetensors`),
/// `<dir>/<id>.safetensors`, `<dir>/<id>/<file>`, or `<file>` in the
/// snapshot of a Hugging Face cache entry `<dir>/models--org--name`.
pub fn single_file(dir: &Path, id: &str, file: &Path) -> Option<PathBuf> {
    let relative = relative(id)?;
    let plain = dir.join(relative);
    let candidates = [
        plain.clone(),
        dir.join(format!("{id}.safetensors")),
        plain.join(file),
    ];
    if let Some(found) = candidates.into_iter().find(|p| is_weights(p)) {
        return Some(found);
    }
    hf_snapshot(dir, id)
        .map(|s| s.join(file))
        .filter(|p| is_weights(p))
}

/// A VAE `id`: a folder with `config.json` and
/// `diffusion_pytorch_model(.fp16).safetensors`, or such a folder as the
/// `vae/` of a pipeline, under `<dir>/<id>` or a Hugging Face cache entry.
pub fn vae(dir: &Path, id: &str) -> Option<PathBuf> {
    let relative = relative(id)?;
    let roots = [Some(dir.join(relative)), hf_snapshot(dir, id)];
    roots
        .into_iter()
        .flatten()
        .flat_map(|root| [root.clone(), root.join("vae")])
        .find(|folder| is_vae_folder(folder))
}

/// Whether `folder` holds a VAE the engine can load.
pub fn is_vae_folder(folder: &Path) -> bool {
    folder.join("config.json").is_file()
        && ["", ".fp16"].iter().any(|v| {
            folder
                .join(format!("diffusion_pytorch_model{v}.safetensors"))
                .is_file()
        })
}

/// A safetensors file (the engine reads nothing else; a pickle dropped in
/// the models directory is not picked up by name).
fn is_weights(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "safetensors")
}

/// The snapshot `refs/main` of the Hugging Face cache entry for `org/name`
/// points at (what `huggingface-cli download` leaves), if there is one.
fn hf_snapshot(dir: &Path, id: &str) -> Option<PathBuf> {
    let entry = dir.join(format!("models--{}", id.replace('/', "--")));
    let hash = std::fs::read_to_string(entry.join("refs/main")).ok()?;
    let hash = hash.trim();
    relative(hash)?;
    let snapshot = entry.join("snapshots").join(hash);
    snapshot.is_dir().then_some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_folders_and_hf_cache_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = Path::new("pytorch_lora_weights.safetensors");
        assert_eq!(single_file(d, "org/lora", file), None);

        std::fs::create_dir_all(d.join("org/lora")).unwrap();
        std::fs::write(d.join("org/lora").join(file), b"x").unwrap();
        assert_eq!(
            single_file(d, "org/lora", file),
            Some(d.join("org/lora").join(file))
        );

        std::fs::write(d.join("civitai-123.safetensors"), b"x").unwrap();
        let direct = Some(d.join("civitai-123.safetensors"));
        assert_eq!(single_file(d, "civitai-123", file), direct);
        assert_eq!(single_file(d, "civitai-123.safetensors", file), direct);
        std::fs::write(d.join("old.ckpt"), b"x").unwrap();
        assert_eq!(single_file(d, "old.ckpt", file), None);
        assert_eq!(single_file(d, "../x", file), None);

        let snapshot = d.join("models--org--hf/snapshots/abc");
        std::fs::create_dir_all(snapshot.join("vae")).unwrap();
        std::fs::create_dir_all(d.join("models--org--hf/refs")).unwrap();
        std::fs::write(d.join("models--org--hf/refs/main"), b"abc\n").unwrap();
        std::fs::write(snapshot.join(file), b"x").unwrap();
        assert_eq!(single_file(d, "org/hf", file), Some(snapshot.join(file)));

        assert_eq!(vae(d, "org/hf"), None);
        std::fs::write(snapshot.join("vae/config.json"), b"{}").unwrap();
        std::fs::write(
            snapshot.join("vae/diffusion_pytorch_model.fp16.safetensors"),
            b"x",
        )
        .unwrap();
        assert_eq!(vae(d, "org/hf"), Some(snapshot.join("vae")));
    }
}
