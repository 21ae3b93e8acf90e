//! The engine's tiny model ([`hydrogen_engine::tiny`]) in a temporary folder
//! that is removed when the test is done with it.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use hydrogen_engine::tiny::{reference, Edit, Variant};
use std::path::PathBuf;

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
