//! Strict safetensors loading under diffusers key names.
//!
//! Every tensor a model asks for must exist with exactly the expected shape,
//! and every tensor in the files must be asked for: a checkpoint that does not
//! match its config is an error naming the first offending tensor, never a
//! silently random or ignored weight.

use crate::error::{Error, Result};
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The float precision a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// Weights and activations in f16; normalisation statistics and softmax in f32.
    F16,
}

impl Precision {
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
        }
    }
}

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// The tensors of one component (`unet`, `vae`, `text_encoder`), opened for loading.
pub struct Weights {
    component: String,
    files: Vec<(PathBuf, Mmap)>,
    entries: HashMap<String, Entry>,
    used: BTreeSet<String>,
    /// Updates added in f32 to tensors as they are read (a merged LoRA).
    patches: HashMap<String, Vec<f32>>,
    device: Device,
    precision: Precision,
}

impl Weights {
    /// Opens `files` (one checkpoint, possibly sharded) for `component`.
    pub fn open(
        component: &str,
        files: &[PathBuf],
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let mut maps = Vec::new();
        let mut entries: HashMap<String, Entry> = HashMap::new();
        for (index, path) in files.iter().enumerate() {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the file is opened read-only and model files are not rewritten while loading.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let parsed = SafeTensors::deserialize(&map).map_err(|e| Error::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let base = map.as_ptr() as usize;
            for (name, view) in parsed.tensors() {
                let start = view.data().as_ptr() as usize - base;
                let entry = Entry {
                    file: index,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start,
                    end: start + view.data().len(),
                };
                if let Some(old) = entries.insert(name.clone(), entry) {
                    return Err(Error::Duplicate {
                        name,
                        first: files[old.file].clone(),
                        second: path.clone(),
                    });
                }
            }
            maps.push((path.clone(), map));
        }
        Ok(Self {
            component: component.to_owned(),
            files: maps,
            entries,
            used: BTreeSet::new(),
            patches: HashMap::new(),
            device: device.clone(),
            precision,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn shape_of(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The names of every tensor in the files.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Adds `patches` (f32 values by tensor name, each the tensor's size) to
    /// the tensors as they are read, until [`Weights::finish`]: a LoRA is
    /// merged before the cast to the compute precision, whatever it is.
    pub fn set_patches(&mut self, patches: HashMap<String, Vec<f32>>) {
        self.patches = patches;
    }

    /// A tensor in the model's compute precision.
    pub fn get<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let t = self.get_f32(name, shape)?;
        Ok(match self.precision {
            Precision::F32 => t,
            Precision::F16 => t.cast(FloatDType::F16),
        })
    }

    /// A tensor kept in f32 whatever the model's precision (normalisation parameters).
    pub fn get_f32<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.read(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            (&self.device, DType::F32),
        ))
    }

    /// Reads `name` as f32 values after checking its shape; a stored shape that
    /// differs only by trailing 1s (a 1x1 conv stored where a linear is expected,
    /// as older VAE checkpoints do) is accepted.
    pub fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            component: self.component.clone(),
            name: name.to_owned(),
        })?;
        let trimmed = |s: &[usize]| {
            let mut v = s.to_vec();
            while v.len() > 1 && v.last() == Some(&1) {
                v.pop();
            }
            v
        };
        if entry.shape != shape && trimmed(&entry.shape) != trimmed(shape) {
            return Err(Error::Shape {
                component: self.component.clone(),
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let bytes = &self.files[entry.file].1[entry.start..entry.end];
        let values: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
                .collect(),
            other => {
                return Err(Error::DType {
                    component: self.component.clone(),
                    name: name.to_owned(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let values = match self.patches.get(name) {
            Some(delta) if delta.len() == values.len() => {
                values.iter().zip(delta).map(|(w, d)| w + d).collect()
            }
            Some(delta) => {
                return Err(Error::Shape {
                    component: format!("{} update", self.component),
                    name: name.to_owned(),
                    expected: vec![values.len()],
                    found: vec![delta.len()],
                })
            }
            None => values,
        };
        self.used.insert(name.to_owned());
        Ok(values)
    }

    /// Marks a tensor that carries no weights (a stored buffer) as consumed, if present.
    pub fn skip(&mut self, name: &str) {
        if self.entries.contains_key(name) {
            self.used.insert(name.to_owned());
        }
    }

    /// Fails if any tensor in the files was never asked for. Then forgets
    /// what was read and the patches, so the files can build the model again.
    pub fn finish(&mut self) -> Result<()> {
        let used = std::mem::take(&mut self.used);
        self.patches.clear();
        let mut unused: Vec<&String> = self.entries.keys().filter(|k| !used.contains(*k)).collect();
        unused.sort();
        match unused.first() {
            None => Ok(()),
            Some(first) => Err(Error::Unused {
                component: self.component.clone(),
                count: unused.len(),
                first: (*first).clone(),
            }),
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }
}

/// The safetensors file(s) of one component directory (`unet/`, `vae/`, `text_encoder/`),
/// preferring the precision asked for and falling back to the other.
pub fn component_files(dir: &Path, stem: &str, prefer_fp16: bool) -> Result<Vec<PathBuf>> {
    let plain = format!("{stem}.safetensors");
    let half = format!("{stem}.fp16.safetensors");
    let order = if prefer_fp16 {
        [&half, &plain]
    } else {
        [&plain, &half]
    };
    for name in order {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(vec![path]);
        }
    }
    // Sharded checkpoints: `<stem>[.fp16]-00001-of-0000N.safetensors` plus an index.
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with(stem) && n.contains("-of-") && n.ends_with(".safetensors")
        })
        .collect();
    if !shards.is_empty() {
        shards.sort();
        let wants_half = |p: &PathBuf| p.to_string_lossy().contains(".fp16");
        let preferred: Vec<PathBuf> = shards
            .iter()
            .filter(|p| wants_half(p) == prefer_fp16)
            .cloned()
            .collect();
        return Ok(if preferred.is_empty() {
            shards
        } else {
            preferred
        });
    }
    Err(Error::NoWeights {
        component: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir: dir.to_owned(),
        looked_for: format!("{plain} or {half}"),
    })
}
