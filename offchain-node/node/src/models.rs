//! The local models directory: one diffusers-layout folder per model id
//! (`<dir>/runwayml/stable-diffusion-v1-5/{model_index.json,unet,vae,...}`),
//! or Hugging Face cache entries (`<dir>/models--runwayml--stable-diffusion-v1-5`).

use hydrogen_engine::{Backend, Precision, StableDiffusion};
use std::path::{Component, Path, PathBuf};

/// The folder of model `id` under `dir`, if it is there. Ids that would
/// leave the directory (`..`, absolute paths) are never found.
pub fn resolve(dir: &Path, id: &str) -> Option<PathBuf> {
    let relative = Path::new(id);
    if id.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let plain = dir.join(relative);
    if plain.join("model_index.json").is_file() {
        return Some(plain);
    }
    let cached = dir.join(format!("models--{}", id.replace('/', "--")));
    if cached.is_dir() {
        return hydrogen_engine::resolve_model_dir(&cached).ok();
    }
    None
}

/// The ids of the models under `dir`: every folder with a
/// `model_index.json` (its path relative to `dir`), and every Hugging Face
/// cache entry.
pub fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    walk(dir, dir, 0, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) -> std::io::Result<()> {
    if depth > 3 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if depth == 0 && name.starts_with("models--") {
            found.push(name.trim_start_matches("models--").replacen("--", "/", 1));
        } else if path.join("model_index.json").is_file() {
            let id = path.strip_prefix(root).unwrap_or(&path);
            found.push(id.to_string_lossy().into_owned());
        } else {
            walk(root, &path, depth + 1, found)?;
        }
    }
    Ok(())
}

/// Loads model `id` on the CPU backend to check every file and tensor; the
/// error says what is wrong.
pub fn verify(dir: &Path, id: &str) -> Result<(), String> {
    let folder =
        resolve(dir, id).ok_or_else(|| format!("{id}: not found under {}", dir.display()))?;
    StableDiffusion::load(&folder, &Backend::Cpu.device(), Precision::F32)
        .map(|_| ())
        .map_err(|e| format!("{id}: {e}"))
}

/// Writes the engine's tiny built-in model as `<dir>/hydrogen/tiny-sd`.
pub fn create_tiny(dir: &Path) -> Result<PathBuf, hydrogen_engine::Error> {
    let folder = dir.join(hydrogen_engine::tiny::MODEL_NAME);
    hydrogen_engine::tiny::write_model(&folder)?;
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_model_is_listed_resolved_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let folder = create_tiny(dir.path()).unwrap();
        let id = hydrogen_engine::tiny::MODEL_NAME;
        assert_eq!(list(dir.path()).unwrap(), vec![id.to_string()]);
        assert_eq!(resolve(dir.path(), id), Some(folder.clone()));
        verify(dir.path(), id).unwrap();
        assert_eq!(resolve(dir.path(), "../tiny-sd"), None);
        assert_eq!(resolve(dir.path(), "/etc"), None);
        assert!(verify(dir.path(), "runwayml/stable-diffusion-v1-5").is_err());

        std::fs::remove_file(folder.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
        let err = verify(dir.path(), id).unwrap_err();
        assert!(err.contains("vae"), "{err}");
    }
}
